import { chmod, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import { isSha256Hex } from '../digest.js';
import { readSmall } from '../download/safe-fs.js';
import { ModelPullError } from '../errors.js';
import { ensureDirs } from '../fs-dirs.js';
import { MAX_MANIFEST_BYTES } from '../registry/manifest.js';

/**
 * Ollama's store (docs/layouts.md, "Ollama's store"):
 *   <root>/blobs/sha256-<hex>                          every layer and the config, 0644
 *   <root>/manifests/<host>/<namespace>/<model>/<tag>  the manifest bytes exactly as served
 * Folders are 0755. Partial data never goes inside `blobs/`, because the server deletes names
 * there that are not digests; our staging folder sits beside it and Ollama never scans it.
 */
export const INGEST_FOLDER = '.model-pull-ingest';

export interface StoreName {
  readonly host: string;
  readonly namespace: string;
  readonly model: string;
  readonly tag: string;
}

export interface StoreBlob {
  readonly hex: string;
  readonly size: number;
}

export function blobPath(root: string, hex: string): string {
  if (!isSha256Hex(hex))
    throw new ModelPullError('ERR_BAD_MANIFEST', `not a sha256 digest: "${hex.slice(0, 80)}"`);
  return join(root, 'blobs', `sha256-${hex}`);
}

/** The manifest file; the name parts were validated by the reference parser (no `/`, no `..`). */
export function manifestPath(root: string, name: StoreName): string {
  return join(root, 'manifests', name.host, name.namespace, name.model, name.tag);
}

/** The engine's staging folder: same filesystem as `blobs/` (atomic rename), outside it. */
export function ingestDir(root: string): string {
  return join(root, INGEST_FOLDER);
}

/** The stored manifest bytes, or undefined when there is none. */
export async function readStoredManifest(root: string, name: StoreName): Promise<Buffer | undefined> {
  // The store is shared: a planted link, FIFO or endless file reads as no manifest.
  return readSmall(manifestPath(root, name), MAX_MANIFEST_BYTES);
}

/**
 * Makes verified blobs a model Ollama lists and runs: every blob present at its size, 0644, mtime
 * now (Ollama prunes unreferenced blobs older than an hour at start; a blob restored from a cache
 * carries an old mtime, and until the manifest lands it is unreferenced), then the manifest,
 * last, through a temporary file and a rename, so a reader never sees half a manifest and a
 * manifest never names a blob that is not there.
 */
export async function commitOllamaModel(
  root: string,
  name: StoreName,
  manifest: Uint8Array,
  blobs: readonly StoreBlob[],
  now: Date = new Date(),
): Promise<void> {
  await ensureDirs(join(root, 'blobs'));
  for (const blob of blobs) {
    const path = blobPath(root, blob.hex);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      throw new ModelPullError(
        'ERR_NOT_FOUND',
        `blob ${path} is missing; cannot write the manifest of ${label(name)}`,
      );
    }
    if (size !== blob.size) {
      throw new ModelPullError(
        'ERR_SIZE_MISMATCH',
        `blob ${path} has ${size} bytes, the manifest of ${label(name)} says ${blob.size}`,
      );
    }
    await chmod(path, 0o644);
    await utimes(path, now, now);
  }
  // The temporary name lives in our staging folder: Ollama lists every file under manifests/.
  await writeFileAtomic(manifestPath(root, name), manifest, { mode: 0o644, tempDir: ingestDir(root) });
}

function label(name: StoreName): string {
  return `${name.host}/${name.namespace}/${name.model}:${name.tag}`;
}
