import { sha256Hex } from '../../digest.js';
import { blobPath, commitOllamaModel, ingestDir, readStoredManifest } from '../../layouts/ollama.js';
import {
  type Identity,
  type PlanEntry,
  recordedIdentityError,
  type Source,
  type SourceContext,
} from '../../plan.js';
import type { RegistryOptions } from '../../registry/client.js';
import { repositoryRoutes } from '../../registry/mirror-route.js';
import { recordedManifest, recordedManifestHex } from '../../registry/recorded.js';
import { type BlobRoute, registryBlob } from '../../registry/session.js';
import { type Descriptor, layerKind, type OllamaManifest, parseManifest, weightsLayer } from './manifest.js';
import { type OllamaRef, ollamaName, repositoryOf } from './ref.js';

export interface OllamaSourceOptions extends RegistryOptions {
  /** The Ollama store root (`ollama-models`). */
  readonly modelsRoot: string;
}

/** Resolves `ollama:` references against Ollama's registry or any OCI-distribution registry. */
export function createOllamaSource(options: OllamaSourceOptions): Source<OllamaRef> {
  // Each line's repository, through the user's registry-mirror for its host when there is one.
  const routeFor = repositoryRoutes(options, repositoryOf);

  return {
    async identify(ref, ctx) {
      // A pin whose manifest is already in the store needs no request at all (offline reruns).
      if (ref.pin !== undefined) {
        const stored = await readStoredManifest(options.modelsRoot, ref);
        if (stored && sha256Hex(stored) === ref.pin)
          return identityOf(ref, parseManifest(stored, ollamaName(ref)), ref.pin);
      }
      const bytes = await routeFor(ref).manifest(ctx, ref.pin ? `sha256:${ref.pin}` : ref.tag, {
        name: ollamaName(ref),
        ...(ref.pin ? { expectHex: ref.pin } : {}),
      });
      return identityOf(ref, parseManifest(bytes, ollamaName(ref)), sha256Hex(bytes));
    },

    async plan(ref, identity, ctx) {
      const hex = recordedHex(ref, identity);
      // Settled only when a request is made: a pinned model complete on disk asks nothing.
      const route = routeFor(ref).blobs(hex, ollamaName(ref));
      const manifest = await manifestFor(ref, identity, hex, options.modelsRoot, () =>
        routeFor(ref).manifest(ctx, `sha256:${hex}`, { name: ollamaName(ref), expectHex: hex }),
      );
      return planEntry(ref, identity, manifest, options.modelsRoot, route, ctx, routeFor(ref).mirrored);
    },
  };
}

function identityOf(ref: OllamaRef, manifest: OllamaManifest, hex: string): Identity {
  return {
    source: 'ollama',
    ref: ref.line,
    name: ollamaName(ref),
    pin: `sha256:${hex}`,
    contentDigest: hex,
    // The manifest text lets plan() and a lock file skip a second request; plan() re-hashes it.
    detail: { manifest: manifest.text },
  };
}

/**
 * The manifest digest of an identity from identify() or a lock file, once it is known to name
 * the line's model (and its pin, if the line has one).
 */
function recordedHex(ref: OllamaRef, identity: Identity): string {
  const hex = recordedManifestHex(identity, ollamaName(ref));
  if (ref.pin !== undefined && hex !== ref.pin)
    throw recordedIdentityError(identity, `it is pinned to ${identity.pin}, the line to sha256:${ref.pin}`);
  return hex;
}

/** The manifest bytes for a known digest: recorded text, else the store, else the registry. */
async function manifestFor(
  ref: OllamaRef,
  identity: Identity,
  hex: string,
  root: string,
  fetch: () => Promise<Buffer>,
): Promise<OllamaManifest> {
  const name = ollamaName(ref);
  const recorded = recordedManifest(identity, name, hex);
  if (recorded) return parseManifest(recorded, name);
  const stored = await readStoredManifest(root, ref);
  if (stored && sha256Hex(stored) === hex) return parseManifest(stored, name);
  return parseManifest(await fetch(), name);
}

function planEntry(
  ref: OllamaRef,
  identity: Identity,
  manifest: OllamaManifest,
  root: string,
  route: BlobRoute,
  ctx: SourceContext,
  /** Blobs may come from a registry-mirror (see BlobSpec.probeRanges). */
  probeRanges: boolean,
): PlanEntry {
  const all: readonly Descriptor[] = [manifest.config, ...manifest.layers];
  const blobs = all.map((d) =>
    registryBlob(route, ctx, d, {
      label: `${ref.line} ${d === manifest.config ? 'config' : layerKind(d.mediaType)}`,
      target: blobPath(root, d.hex),
      ingestDir: ingestDir(root),
      probeRanges,
    }),
  );
  const files = all.map((d) => ({ path: blobPath(root, d.hex), digest: `sha256:${d.hex}`, size: d.size }));
  const bytes = Buffer.from(manifest.text, 'utf8');
  return {
    identity: { ...identity, name: ollamaName(ref), detail: { ...identity.detail, manifest: manifest.text } },
    path: blobPath(root, weightsLayer(manifest).hex),
    size: manifest.totalSize,
    files,
    blobs,
    // Blobs only: a restored manifest would name blobs before they are verified (the manifest is
    // written last, by commit(), from the identity's bytes).
    cachePaths: files.map((f) => f.path),
    commit: () => commitOllamaModel(root, ref, bytes, all, new Date(ctx.clock.now())),
  };
}
