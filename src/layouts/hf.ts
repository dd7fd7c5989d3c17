import { constants } from 'node:fs';
import { copyFile, link, lstat, readlink, rename, rm, stat, symlink } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import { ModelPullError } from '../errors.js';
import { ensureDirs } from '../fs-dirs.js';

/**
 * The Hugging Face cache layout (docs/layouts.md, "The Hugging Face cache"), as huggingface_hub,
 * transformers and llama.cpp read it offline:
 *
 *   <root>/<models|datasets|spaces>--owner--name/
 *     blobs/<etag>                      sha256 for LFS files, git blob sha1 otherwise
 *     snapshots/<commit>/<path>         relative symlink to ../../blobs/<etag> (deeper when nested)
 *     refs/<revision>                   the 40-hex commit, no trailing newline
 *
 * Our own files live in `<repo folder>/.model-pull/`: neither huggingface_hub's `scan_cache_dir`
 * nor @huggingface/hub's `scanCacheDir` looks inside a repo folder beyond `snapshots/` and `refs/`
 * (a folder next to the repo folders, by contrast, is reported as a corrupted repo).
 */

/** The kinds of Hugging Face repository; each has its own API path and cache folder prefix. */
export type HfRepoType = 'model' | 'dataset' | 'space';

export function repoFolderName(type: HfRepoType, repo: string): string {
  return [`${type}s`, ...repo.split('/')].join('--');
}

export interface HfRepoPaths {
  readonly folder: string;
  readonly blobs: string;
  readonly snapshots: string;
  readonly refs: string;
  /** Our records and the engine's staging area: same filesystem, never scanned by HF readers. */
  readonly private: string;
  readonly ingest: string;
}

export function hfRepoPaths(cacheRoot: string, type: HfRepoType, repo: string): HfRepoPaths {
  const folder = join(cacheRoot, repoFolderName(type, repo));
  const priv = join(folder, '.model-pull');
  return {
    folder,
    blobs: join(folder, 'blobs'),
    snapshots: join(folder, 'snapshots'),
    refs: join(folder, 'refs'),
    private: priv,
    ingest: join(priv, 'ingest'),
  };
}

export function blobPath(paths: HfRepoPaths, etag: string): string {
  return join(paths.blobs, etag);
}

/** `path` uses `/` and has been checked by `repoPathProblem`. */
export function snapshotFilePath(paths: HfRepoPaths, commit: string, path: string): string {
  return join(paths.snapshots, commit, ...path.split('/'));
}

/**
 * Why a path from the Hub (or a lock file) may not be joined under `snapshots/<commit>/`: it must
 * be relative, use `/`, and have no empty, `.` or `..` segment, or it could land outside the folder.
 */
export function repoPathProblem(path: unknown): string | undefined {
  if (typeof path !== 'string' || path === '') return 'an empty path';
  if (path.length > 4096) return 'a path longer than 4096 characters';
  if (path.includes('\\')) return 'a path with a backslash';
  if ([...path].some((c) => c < ' ' || c === '\x7f')) return 'a path with a control character';
  if (path.startsWith('/')) return 'an absolute path';
  if (path.split('/').some((s) => s === '' || s === '.' || s === '..'))
    return 'a path with an empty, "." or ".." part';
  return undefined;
}

export interface SnapshotFile {
  /** Path inside the repository, `/`-separated. */
  readonly path: string;
  /** The blob's file name under `blobs/`. */
  readonly etag: string;
  readonly size: number;
}

/** File operations that may be missing on a filesystem; injectable so tests can take them away. */
export interface LinkOps {
  symlink(target: string, path: string): Promise<void>;
  link(existing: string, path: string): Promise<void>;
  copyFile(source: string, dest: string): Promise<void>;
}

const DEFAULT_OPS: LinkOps = {
  symlink: (target, path) => symlink(target, path),
  link: (existing, path) => link(existing, path),
  copyFile: (source, dest) => copyFile(source, dest, constants.COPYFILE_FICLONE),
};

export interface SnapshotCommit {
  readonly paths: HfRepoPaths;
  readonly commit: string;
  /** Branch, tag or `refs/pr/N` to point at the commit; omitted (or equal) for a pinned commit. */
  readonly revision?: string;
  readonly files: readonly SnapshotFile[];
  /**
   * The commit's file listing for huggingface_hub (`trees/<commit>.json`, see hf-trees.ts),
   * written with mode 0600 as it writes it, after the entries and before the ref.
   */
  readonly listing?: { readonly path: string; readonly content: string };
  /** Written after the snapshot entries and the ref, so it only exists for a complete snapshot. */
  readonly record?: { readonly path: string; readonly content: string };
  readonly ops?: Partial<LinkOps>;
}

/**
 * Writes the snapshot entries for verified blobs, the commit's listing, then `refs/<revision>`,
 * then our record. The
 * order matters to offline readers: a ref that exists names a snapshot whose files are there.
 *
 * A snapshot folder that does not exist yet is built aside (in our private folder, at the same
 * depth so relative links read the same) and renamed into place whole: a commit that fails
 * half-way leaves no `snapshots/<commit>` behind (issue 10). An existing snapshot (another
 * `include=` of the same commit) only gains entries, each placed atomically.
 */
export async function commitSnapshot(spec: SnapshotCommit): Promise<void> {
  const ops: LinkOps = { ...DEFAULT_OPS, ...spec.ops };
  const { paths, commit } = spec;
  const conflict = pathConflict(spec.files.map((f) => f.path));
  if (conflict) throw conflictError(conflict, `the snapshot of ${commit}`);
  for (const file of spec.files) await checkBlob(blobPath(paths, file.etag), file);
  // @huggingface/hub's scanCacheDir fails on a repo without refs/ (a pinned pull writes no ref).
  await ensureDirs(paths.refs);
  const snapshot = join(paths.snapshots, commit);
  const built = !(await lstat(snapshot).catch(() => undefined)) && (await buildSnapshotAside(spec, ops));
  if (!built) await placeEntries(spec, snapshot, ops);
  if (spec.listing) await writeAtomic(spec.listing.path, spec.listing.content, { mode: 0o600 });
  if (spec.revision !== undefined && spec.revision !== commit) {
    await writeAtomic(join(paths.refs, ...spec.revision.split('/')), commit);
  }
  if (spec.record) await writeAtomic(spec.record.path, spec.record.content);
}

async function placeEntries(spec: SnapshotCommit, folder: string, ops: LinkOps): Promise<void> {
  await ensureDirs(folder);
  const mode = { symlinks: true };
  for (const file of spec.files) {
    await placeEntry(blobPath(spec.paths, file.etag), join(folder, ...file.path.split('/')), ops, mode);
  }
}

/**
 * The whole snapshot in a private folder, then one rename; a failure removes the folder aside.
 * False when another process renamed its snapshot in first: that one then gains our entries.
 */
async function buildSnapshotAside(spec: SnapshotCommit, ops: LinkOps): Promise<boolean> {
  // `.model-pull/<name>` sits as deep as `snapshots/<commit>`, so link texts are the final ones.
  const aside = join(spec.paths.private, tempName(`snapshot-${spec.commit}`));
  try {
    await placeEntries(spec, aside, ops);
    await ensureDirs(spec.paths.snapshots);
    await rename(aside, join(spec.paths.snapshots, spec.commit));
    return true;
  } catch (error) {
    if (errorCode(error) !== 'ENOTEMPTY' && errorCode(error) !== 'EEXIST') throw error;
    return false;
  } finally {
    await rm(aside, { recursive: true, force: true });
  }
}

/**
 * A path that is also a folder of another path (`a` and `a/b.json`), which no snapshot (and no
 * git tree) can hold. A trie of path segments keeps this linear in the total path length.
 */
export function pathConflict(paths: Iterable<string>): readonly [string, string] | undefined {
  interface Node {
    file?: string;
    readonly children: Map<string, Node>;
  }
  const root: Node = { children: new Map() };
  for (const path of paths) {
    let node = root;
    for (const segment of path.split('/')) {
      if (node.file !== undefined) return [node.file, path];
      let child = node.children.get(segment);
      if (!child) {
        child = { children: new Map() };
        node.children.set(segment, child);
      }
      node = child;
    }
    if (node.children.size > 0) return [path, firstFileUnder(node)];
    node.file = path;
  }
  return undefined;
}

function firstFileUnder(node: { file?: string; children: Map<string, typeof node> }): string {
  let current = node;
  while (current.file === undefined) current = current.children.values().next().value!;
  return current.file;
}

export function conflictError([file, under]: readonly [string, string], where: string): ModelPullError {
  return new ModelPullError(
    'ERR_BAD_MANIFEST',
    `${where} names both a file "${file}" and a file under it ("${under}"); no snapshot can hold both`,
  );
}

async function checkBlob(blob: string, file: SnapshotFile): Promise<void> {
  const size = await stat(blob).then(
    (s) => s.size,
    () => undefined,
  );
  if (size !== file.size) {
    const found = size === undefined ? 'it is missing' : `it has ${size} bytes`;
    throw new ModelPullError(
      'ERR_SIZE_MISMATCH',
      `cannot link ${file.path}: blob ${file.etag} should have ${file.size} bytes but ${found}`,
    );
  }
}

/**
 * One snapshot entry: a relative symlink when the filesystem has them (what huggingface_hub
 * writes), else a hard link, else a copy (real files are what huggingface_hub falls back to as
 * well). Once a symlink fails with EPERM/ENOTSUP, the rest of the snapshot skips straight to links.
 */
async function placeEntry(
  blob: string,
  entry: string,
  ops: LinkOps,
  mode: { symlinks: boolean },
): Promise<void> {
  const target = relative(dirname(entry), blob).split(sep).join('/');
  if (await entryIsCurrent(entry, blob, target)) return;
  await ensureDirs(dirname(entry));
  const temp = tempName(entry);
  await rm(temp, { force: true });
  if (mode.symlinks) {
    try {
      await ops.symlink(target, temp);
      return await replace(temp, entry);
    } catch (error) {
      if (!isUnsupported(error)) throw error;
      mode.symlinks = false;
    }
  }
  try {
    await ops.link(blob, temp);
  } catch (error) {
    if (!isUnsupported(error) && errorCode(error) !== 'EXDEV' && errorCode(error) !== 'EMLINK') throw error;
    await ops.copyFile(blob, temp);
  }
  await replace(temp, entry);
}

async function entryIsCurrent(entry: string, blob: string, target: string): Promise<boolean> {
  const info = await lstat(entry).catch(() => undefined);
  if (!info) return false;
  if (info.isSymbolicLink()) return (await readlink(entry)) === target;
  if (!info.isFile()) return false;
  const blobInfo = await stat(blob);
  return info.ino === blobInfo.ino && info.dev === blobInfo.dev;
}

/** rename() replaces a stale file or link atomically, but not a folder: one in the way goes first. */
async function removeFolderInTheWay(path: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (info?.isDirectory()) await rm(path, { recursive: true, force: true });
}

async function replace(temp: string, entry: string): Promise<void> {
  await removeFolderInTheWay(entry);
  try {
    await rename(temp, entry);
  } catch (error) {
    // A temp name left beside the entry would look like one more file or ref to HF readers.
    await rm(temp, { force: true });
    throw error;
  }
}

/** Temporary name, then rename: a reader never sees a half-written ref or record. */
export async function writeAtomic(
  path: string,
  content: string,
  options: { mode?: number } = {},
): Promise<void> {
  await removeFolderInTheWay(path);
  await writeFileAtomic(path, content, options);
}

let tempCounter = 0;

/** Unique per call: two lines of one run may commit the same snapshot entry at the same time. */
function tempName(path: string): string {
  tempCounter += 1;
  return `${path}.model-pull-${process.pid}-${tempCounter}.tmp`;
}

function errorCode(error: unknown): string {
  return (error as { code?: string })?.code ?? '';
}

function isUnsupported(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS';
}
