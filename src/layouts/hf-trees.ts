import { join } from 'node:path';
import { isSha1Hex, isSha256Hex } from '../digest.js';
import { readSmall } from '../download/safe-fs.js';
import { type HfRepoPaths, repoPathProblem } from './hf.js';

/** A whole commit's listing as huggingface_hub writes it; more is not a trees file (absent). */
const MAX_TREES_BYTES = 256 * 1024 * 1024;

/**
 * `<repo folder>/trees/<commit>.json`: huggingface_hub (≥ 1.x) caches a commit's whole file
 * listing there and, for a commit revision, reads it instead of calling the tree API. Offline
 * (`HF_HUB_OFFLINE=1`) `snapshot_download(repo, revision=<commit>)` fails without it; with it, the
 * reader also tells a complete snapshot from a partial one. So it must list every file of the
 * commit, never just an `include=` selection (a partial listing would make a later online
 * `snapshot_download(revision=<commit>)` silently return a partial snapshot).
 *
 * The bytes are what huggingface_hub writes: `{"format_version": 1, "files": {…}}` with the paths
 * sorted by code point, one-space indentation, non-ASCII escaped as `\uXXXX`, no final newline,
 * mode 0600 (it writes through a private temporary file). `commitSnapshot` writes it.
 */

export const TREES_FORMAT_VERSION = 1;

/** One file of a commit, with the fields the Hub's tree API gives for it. */
export interface TreeCacheFile {
  readonly path: string;
  readonly size: number;
  /** The git object id from the tree API (for an LFS file, the pointer's sha1). */
  readonly blobId: string;
  /** LFS files only: the sha256 of the content (its size is `size`). */
  readonly lfsSha256?: string;
  /** Files stored on Xet, when the listing named their hash. */
  readonly xetHash?: string;
}

export function treesPath(paths: Pick<HfRepoPaths, 'folder'>, commit: string): string {
  return join(paths.folder, 'trees', `${commit}.json`);
}

/** The file's exact bytes for a listing, as huggingface_hub would write them. */
export function treesContent(files: readonly TreeCacheFile[]): string {
  const sorted = [...files].sort((a, b) => compareCodePoints(a.path, b.path));
  const entries: [string, Record<string, unknown>][] = sorted.map((f) => {
    const info: Record<string, unknown> = { size: f.size, blob_id: f.blobId };
    if (f.lfsSha256 !== undefined) {
      info.lfs_sha256 = f.lfsSha256;
      info.lfs_size = f.size;
    }
    if (f.xetHash !== undefined) info.xet_hash = f.xetHash;
    return [f.path, info];
  });
  // Built from entries so that a path such as "__proto__" stays an ordinary key.
  const json = JSON.stringify(
    { format_version: TREES_FORMAT_VERSION, files: Object.fromEntries(entries) },
    null,
    1,
  );
  // Python's json.dump escapes every non-ASCII UTF-16 unit (and DEL); JSON.stringify keeps them.
  return json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The listing in an existing trees file (ours or huggingface_hub's), or undefined when it is
 * absent, of another format, or has any entry that is not a sound file description.
 */
export async function readTrees(
  paths: Pick<HfRepoPaths, 'folder'>,
  commit: string,
): Promise<TreeCacheFile[] | undefined> {
  let data: { format_version?: unknown; files?: unknown };
  try {
    data = JSON.parse(String(await readSmall(treesPath(paths, commit), MAX_TREES_BYTES))) as typeof data;
  } catch {
    return undefined;
  }
  if (data?.format_version !== TREES_FORMAT_VERSION) return undefined;
  if (typeof data.files !== 'object' || data.files === null || Array.isArray(data.files)) return undefined;
  const files: TreeCacheFile[] = [];
  for (const [path, raw] of Object.entries(data.files as Record<string, unknown>)) {
    const file = treeCacheFile(path, raw);
    if (!file) return undefined;
    files.push(file);
  }
  return files;
}

function treeCacheFile(path: string, raw: unknown): TreeCacheFile | undefined {
  const info = raw as Record<string, unknown> | null;
  if (repoPathProblem(path) || info === null || typeof info !== 'object') return undefined;
  const { size, blob_id: blobId, lfs_sha256: lfs, lfs_size: lfsSize, xet_hash: xet } = info;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return undefined;
  if (typeof blobId !== 'string' || !isSha1Hex(blobId)) return undefined;
  const file: { -readonly [K in keyof TreeCacheFile]: TreeCacheFile[K] } = { path, size, blobId };
  if (lfs !== undefined && lfs !== null) {
    if (typeof lfs !== 'string' || !isSha256Hex(lfs) || lfsSize !== size) return undefined;
    file.lfsSha256 = lfs;
  }
  if (xet !== undefined && xet !== null) {
    if (!isXetHash(xet)) return undefined;
    file.xetHash = xet;
  }
  return file;
}

/** What huggingface_hub accepts as a Xet hash (it ignores a listing with any other). */
export function isXetHash(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-fA-F]{64}$/.test(value);
}

/** Python orders str by code point; JavaScript's default sort compares UTF-16 units. */
export function compareCodePoints(a: string, b: string): number {
  const x = a[Symbol.iterator]();
  const y = b[Symbol.iterator]();
  for (;;) {
    const p = x.next();
    const q = y.next();
    if (p.done || q.done) return p.done && q.done ? 0 : p.done ? -1 : 1;
    const d = p.value.codePointAt(0)! - q.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}
