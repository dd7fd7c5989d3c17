import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../atomic-write.js';
import type { Clock } from '../../clock.js';
import { isSha256Hex, sha256Hex } from '../../digest.js';
import { acquireLease, describeHolder } from '../../download/lease.js';
import { readSmall } from '../../download/safe-fs.js';
import { ModelPullError } from '../../errors.js';
import { ensureDirs } from '../../fs-dirs.js';
import type { Logger } from '../../report/logger.js';

/**
 * The OCI image layout at `oci-dir` (docs/oci-artifacts.md, "Where models land"), which skopeo,
 * oras and containerd read:
 *   oci-layout                  {"imageLayoutVersion":"1.0.0"}
 *   index.json                  an image index; one entry per pulled reference, named by the
 *                               `org.opencontainers.image.ref.name` annotation
 *   blobs/sha256/<hex>          manifests, configs and layers, shared by every model
 * and beside it, ours: `models/` (one folder per model) and the engine's staging folder.
 */
export const REF_NAME = 'org.opencontainers.image.ref.name';
const INDEX_TYPE = 'application/vnd.oci.image.index.v1+json';
const LAYOUT_FILE = '{"imageLayoutVersion":"1.0.0"}';
/** index.json grows by one entry per reference; far beyond any real store, small for memory. */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

export interface LayoutDescriptor {
  readonly mediaType: string;
  readonly hex: string;
  readonly size: number;
  readonly artifactType?: string;
}

export function blobPath(root: string, hex: string): string {
  if (!isSha256Hex(hex))
    throw new ModelPullError('ERR_BAD_MANIFEST', `not a sha256 digest: "${hex.slice(0, 80)}"`);
  return join(root, 'blobs', 'sha256', hex);
}

/** The engine's staging folder: same filesystem as `blobs/`, outside it. */
export function ingestDir(root: string): string {
  return join(root, '.model-pull-ingest');
}

/** The stored bytes of a blob when they hash to `hex` (a manifest or index kept from a pull). */
export async function readVerifiedBlob(
  root: string,
  hex: string,
  limit: number,
): Promise<Buffer | undefined> {
  const bytes = await readSmall(blobPath(root, hex), limit);
  return bytes && sha256Hex(bytes) === hex ? bytes : undefined;
}

/** Stores small verified bytes (a manifest) as a blob, unless the blob is already right. */
export async function writeBlob(root: string, hex: string, bytes: Uint8Array): Promise<void> {
  if (sha256Hex(bytes) !== hex)
    throw new ModelPullError(
      'ERR_DIGEST_MISMATCH',
      `refusing to store bytes as sha256:${hex}: they hash differently`,
    );
  if (await readVerifiedBlob(root, hex, bytes.length)) return;
  await writeFileAtomic(blobPath(root, hex), bytes, { mode: 0o644, tempDir: ingestDir(root) });
}

/**
 * Names `descriptor` `refName` in index.json (replacing an older entry of that name), creating
 * the layout files on first use. Several processes may share the folder: the read-change-write
 * happens under a lease, and the file is replaced whole.
 */
export async function addReference(
  root: string,
  refName: string,
  descriptor: LayoutDescriptor,
  ctx: { readonly clock: Clock; readonly log: Logger; readonly signal?: AbortSignal },
): Promise<void> {
  await ensureDirs(join(root, 'blobs', 'sha256'));
  await ensureDirs(ingestDir(root));
  const lease = await acquireLease(join(ingestDir(root), 'index.json.lock'), `the index of ${root}`, {
    clock: ctx.clock,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    onWait: (holder) =>
      ctx.log.info(`waiting for ${describeHolder(holder)} to update ${join(root, 'index.json')}`),
  });
  try {
    const layoutFile = join(root, 'oci-layout');
    if (await lstat(layoutFile).catch(() => undefined))
      checkLayoutFile(layoutFile, await readSmall(layoutFile, 4096));
    else await writeFileAtomic(layoutFile, LAYOUT_FILE, { mode: 0o644 });
    const index = await readIndex(join(root, 'index.json'));
    const manifests = index.manifests.filter(
      (m) => (m as { annotations?: Record<string, unknown> }).annotations?.[REF_NAME] !== refName,
    );
    manifests.push({
      mediaType: descriptor.mediaType,
      ...(descriptor.artifactType ? { artifactType: descriptor.artifactType } : {}),
      digest: `sha256:${descriptor.hex}`,
      size: descriptor.size,
      annotations: { [REF_NAME]: refName },
    });
    const text = JSON.stringify({ ...index, schemaVersion: 2, mediaType: INDEX_TYPE, manifests });
    await writeFileAtomic(join(root, 'index.json'), text, { mode: 0o644 });
  } finally {
    await lease.release();
  }
}

function checkLayoutFile(path: string, bytes: Buffer | undefined): void {
  let version: unknown;
  try {
    version = (JSON.parse(bytes?.toString('utf8') ?? '') as { imageLayoutVersion?: unknown })
      .imageLayoutVersion;
  } catch {
    version = undefined;
  }
  if (version !== '1.0.0') {
    throw new ModelPullError(
      'ERR_FILESYSTEM',
      `${path} is not an OCI image layout version 1.0.0 marker; oci-dir must be an OCI layout or a new folder`,
    );
  }
}

/** index.json as another tool (or process) left it: an object with a `manifests` array, or none yet. */
async function readIndex(path: string): Promise<{ manifests: unknown[]; [key: string]: unknown }> {
  const info = await lstat(path).catch(() => undefined);
  if (!info) return { schemaVersion: 2, manifests: [] };
  const bytes = info.isFile() ? await readSmall(path, MAX_INDEX_BYTES) : undefined;
  let doc: unknown;
  try {
    doc = bytes ? JSON.parse(bytes.toString('utf8')) : undefined;
  } catch {
    doc = undefined;
  }
  const manifests = (doc as { manifests?: unknown } | undefined)?.manifests;
  if (!bytes || typeof doc !== 'object' || doc === null || Array.isArray(doc) || !Array.isArray(manifests)) {
    throw new ModelPullError(
      'ERR_FILESYSTEM',
      `${path} is not an OCI image index; move it away (the models in ${join(path, '..', 'models')} stay usable)`,
    );
  }
  return { ...(doc as Record<string, unknown>), manifests };
}
