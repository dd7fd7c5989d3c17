import { join } from 'node:path';
import { sha256Hex } from '../../digest.js';
import { ModelPullError } from '../../errors.js';
import {
  type Identity,
  type ModelFile,
  type PlanEntry,
  recordedIdentityError,
  type Source,
  type SourceContext,
} from '../../plan.js';
import type { RegistryOptions } from '../../registry/client.js';
import {
  type Descriptor,
  type ImageManifest,
  MANIFEST_OR_INDEX_ACCEPT,
  MAX_MANIFEST_BYTES,
  MediaTypes,
  parseImageManifest,
  parseManifestOrIndex,
} from '../../registry/manifest.js';
import { repositoryRoutes } from '../../registry/mirror-route.js';
import { recordedManifest, recordedManifestHex } from '../../registry/recorded.js';
import { type BlobRoute, registryBlob } from '../../registry/session.js';
import { checkPlacedPaths, commitFolder, type FolderFile, layerName } from './folder.js';
import { layoutOf, notAModel, type Placement, singleGguf } from './formats.js';
import { addReference, blobPath, ingestDir, readVerifiedBlob, writeBlob } from './layout.js';
import { type OciRef, ociName } from './ref.js';
import { pickModel } from './select.js';

export interface OciSourceOptions extends RegistryOptions {
  /** `oci-dir`: the OCI image layout and the model folders. */
  readonly root: string;
  /** How a model folder already in place is checked (`verify`). */
  readonly verify: 'full' | 'size';
}

/** The folder of one model: `models/<host>/<repository>/<manifest hex>`. */
export function modelDir(root: string, ref: OciRef, hex: string): string {
  return join(root, 'models', ref.host, ...ref.repository.split('/'), hex);
}

/**
 * Resolves `oci:` references: CNCF ModelPack and Docker Model Runner artifacts (directly or
 * behind an image index) from any OCI distribution registry, into the OCI image layout at
 * `oci-dir` plus one folder per model (docs/oci-artifacts.md).
 */
export function createOciSource(options: OciSourceOptions): Source<OciRef> {
  const { root } = options;
  // Each line's repository, through the user's registry-mirror for its host when there is one.
  const routeFor = repositoryRoutes(options, (ref: OciRef) => ref.repository);
  /** Manifest or index bytes by digest: the layout's own copy when it is there, else the registry. */
  const byDigest = async (ref: OciRef, hex: string, ctx: SourceContext): Promise<Buffer> =>
    (await readVerifiedBlob(root, hex, MAX_MANIFEST_BYTES)) ??
    routeFor(ref).manifest(ctx, `sha256:${hex}`, {
      name: ociName(ref),
      expectHex: hex,
      accept: MANIFEST_OR_INDEX_ACCEPT,
    });

  return {
    async identify(ref, ctx) {
      const name = ociName(ref);
      const bytes =
        ref.pin !== undefined
          ? await byDigest(ref, ref.pin, ctx)
          : await routeFor(ref).manifest(ctx, ref.tag, {
              name,
              accept: MANIFEST_OR_INDEX_ACCEPT,
            });
      const doc = parseManifestOrIndex(bytes, name);
      if (doc.kind === 'manifest') return identityOf(ref, doc, sha256Hex(bytes));
      const chosen = await pickModel(doc, name, async (entry) => {
        const entryBytes = await byDigest(ref, entry.hex, ctx);
        return { bytes: entryBytes, manifest: parseImageManifest(entryBytes, name) };
      });
      ctx.log.info(`${ref.line}: the index ${name} names the model manifest sha256:${chosen.entry.hex}`);
      return identityOf(ref, chosen.manifest, chosen.entry.hex, doc.text);
    },

    async plan(ref, identity, ctx) {
      const { hex, index } = recorded(ref, identity);
      const manifest = await manifestFor(ref, identity, hex, () => byDigest(ref, hex, ctx));
      const route = routeFor(ref).blobs(hex, ociName(ref));
      return planEntry(ref, identity, hex, manifest, index, options, route, ctx, routeFor(ref).mirrored);
    },
  };
}

function identityOf(ref: OciRef, manifest: ImageManifest, hex: string, index?: string): Identity {
  return {
    source: 'oci',
    ref: ref.line,
    name: ociName(ref),
    pin: `sha256:${hex}`,
    contentDigest: hex,
    // The manifest (and the index it came through) let plan() and a lock file skip requests;
    // plan() checks their digests again.
    detail: { manifest: manifest.text, ...(index === undefined ? {} : { index }) },
  };
}

/**
 * The manifest digest of an identity from identify() or a lock file, once it is known to name
 * the line's artifact and pin. A pin may name the index the manifest was chosen from: then the
 * recorded index must hash to the pin and list the manifest.
 */
function recorded(ref: OciRef, identity: Identity): { hex: string; index?: string } {
  const name = ociName(ref);
  const hex = recordedManifestHex(identity, name);
  const index = identity.detail?.index;
  if (index !== undefined && typeof index !== 'string')
    throw recordedIdentityError(identity, 'its recorded index is not text');
  if (ref.pin === undefined || ref.pin === hex) return { hex, ...(index === undefined ? {} : { index }) };
  if (index !== undefined && sha256Hex(index) === ref.pin) {
    const doc = parseManifestOrIndex(Buffer.from(index, 'utf8'), name);
    if (doc.kind === 'index' && doc.manifests.some((e) => e.hex === hex)) return { hex, index };
  }
  throw recordedIdentityError(identity, `it is pinned to ${identity.pin}, the line to sha256:${ref.pin}`);
}

/** The manifest bytes for a known digest: the recorded text, else the layout, else the registry. */
async function manifestFor(
  ref: OciRef,
  identity: Identity,
  hex: string,
  fetch: () => Promise<Buffer>,
): Promise<ImageManifest> {
  const name = ociName(ref);
  const recorded = recordedManifest(identity, name, hex);
  if (recorded) return parseImageManifest(recorded, name);
  return parseImageManifest(await fetch(), name);
}

function planEntry(
  ref: OciRef,
  identity: Identity,
  hex: string,
  manifest: ImageManifest,
  index: string | undefined,
  options: OciSourceOptions,
  route: BlobRoute,
  ctx: SourceContext,
  /** Blobs may come from a registry-mirror (see BlobSpec.probeRanges). */
  probeRanges: boolean,
): PlanEntry {
  const { root } = options;
  const name = ociName(ref);
  const refused = notAModel(manifest);
  if (refused)
    throw new ModelPullError('ERR_BAD_MANIFEST', `${name} cannot be pulled as a model: ${refused}`);
  const { placements } = layoutOf(manifest);
  checkPlacedPaths(placements, name);
  placements.forEach((p, i) => {
    if (p.kind === 'blob')
      ctx.log.warning(`${ref.line}: ${layerName(p, i)} is kept as a blob in the OCI layout only (${p.why})`);
  });
  const dir = modelDir(root, ref, hex);
  const blobs = uniqueBlobs([manifest.config, ...manifest.layers]);
  const gguf = singleGguf(placements);
  const inFolder = placements.filter((p): p is Exclude<Placement, { kind: 'blob' }> => p.kind !== 'blob');
  // Layers kept only as blobs are listed too, so the output shows every byte that was pulled.
  const blobsOnly = placements.flatMap((p) =>
    p.kind === 'blob'
      ? [{ path: blobPath(root, p.layer.hex), digest: `sha256:${p.layer.hex}`, size: p.layer.size }]
      : [],
  );
  // Files known before the pull (raw layers); commit() returns them with what the archives hold.
  const files: readonly ModelFile[] = [
    ...inFolder.flatMap((p) =>
      p.kind === 'file'
        ? [{ path: join(dir, p.path), digest: `sha256:${p.layer.hex}`, size: p.layer.size }]
        : [],
    ),
    ...blobsOnly,
  ];
  const manifestBytes = Buffer.from(manifest.text, 'utf8');
  return {
    identity: { ...identity, name, detail: { ...identity.detail, manifest: manifest.text } },
    path: gguf ? join(dir, gguf.path) : dir,
    size: manifest.totalSize,
    files,
    blobs: blobs.map((d) =>
      registryBlob(route, ctx, d, {
        label: `${ref.line} ${d === manifest.config ? 'config' : kindOf(d)}`,
        target: blobPath(root, d.hex),
        ingestDir: ingestDir(root),
        probeRanges,
      }),
    ),
    // Blobs only: the manifest, the folder and the index entry are written by commit() from
    // verified blobs and the identity's bytes.
    cachePaths: blobs.map((d) => blobPath(root, d.hex)),
    async commit() {
      await writeBlob(root, hex, manifestBytes);
      if (index !== undefined) await writeBlob(root, sha256Hex(index), Buffer.from(index, 'utf8'));
      const placed = await commitFolder(
        { dir, placements: inFolder, blobPath: (h) => blobPath(root, h), verify: options.verify },
        ctx,
      );
      const all = [...placed.map((f) => fileOf(dir, f)), ...blobsOnly];
      await addReference(
        root,
        name,
        {
          mediaType: manifest.mediaType ?? MediaTypes.OciManifest,
          hex,
          size: manifestBytes.length,
          ...(manifest.artifactType ? { artifactType: manifest.artifactType } : {}),
        },
        ctx,
      );
      return { files: all };
    },
  };
}

function fileOf(dir: string, file: FolderFile): ModelFile {
  return { path: join(dir, file.path), digest: `sha256:${file.hex}`, size: file.size };
}

/** A layer listed twice (one license under two names) is fetched once. */
function uniqueBlobs(all: readonly Descriptor[]): Descriptor[] {
  const byHex = new Map<string, Descriptor>();
  for (const d of all) if (!byHex.has(d.hex)) byHex.set(d.hex, d);
  return [...byHex.values()];
}

/** `weight.v1.raw`, `gguf.v3`, …: the end of the media type, for progress labels. */
function kindOf(d: Descriptor): string {
  const m = /^application\/vnd\.(?:cncf\.model|docker\.ai)\.(.+)$/.exec(d.mediaType);
  return m ? m[1]! : d.mediaType;
}
