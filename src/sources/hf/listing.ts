import { formatDigest, isSha1Hex } from '../../digest.js';
import { conflictError, pathConflict } from '../../layouts/hf.js';
import { compareCodePoints, isXetHash, type TreeCacheFile } from '../../layouts/hf-trees.js';
import type { HubFile, TreeEntry } from './api.js';
import { fileFilter } from './glob.js';
import { checkedFile } from './record.js';

/**
 * A commit's whole file listing (not just what `include=` selected): it travels in the identity
 * (so a lock file can write `trees/<commit>.json` without a request) and becomes that file.
 * In `detail.tree` an entry is `{path, digest, size}` like a selected file, plus `blobId` where
 * the git object id is not the digest itself (LFS files) and `xetHash` where the Hub gave one.
 * Sorted by path, so the same commit gives the same identity whichever way it was listed.
 */
export function treeJson(tree: readonly TreeEntry[]): Record<string, unknown>[] {
  const sorted = [...tree].sort((a, b) => compareCodePoints(a.path, b.path));
  return sorted.map((e) => ({
    path: e.path,
    digest: formatDigest(e.digest),
    size: e.size,
    ...(e.digest.algorithm === 'git-sha1' ? {} : { blobId: e.blobId }),
    ...(e.xetHash === undefined ? {} : { xetHash: e.xetHash }),
  }));
}

/** Reads `detail.tree` back; throws an Error whose message says what is wrong. */
export function checkedTree(raw: unknown): TreeEntry[] {
  if (!Array.isArray(raw)) throw new Error('tree must be a list');
  const tree = raw.map((item): TreeEntry => {
    let file: HubFile;
    try {
      file = checkedFile(item);
    } catch (error) {
      throw new Error(`a tree entry has ${(error as Error).message}`);
    }
    const { blobId, xetHash } = item as { blobId?: unknown; xetHash?: unknown };
    const xet =
      xetHash === undefined ? {} : { xetHash: checked(isXetHash(xetHash), xetHash, file, 'Xet hash') };
    if (file.digest.algorithm === 'git-sha1') {
      if (blobId !== undefined && blobId !== file.digest.hex)
        throw new Error(`"${file.path}" has two git ids`);
      return { ...file, blobId: file.digest.hex, ...xet };
    }
    const id = checked(typeof blobId === 'string' && isSha1Hex(blobId), blobId, file, 'git id');
    return { ...file, blobId: id, ...xet };
  });
  const problem = listingProblem(tree);
  if (problem) throw new Error(problem);
  return tree;
}

function checked(ok: boolean, value: unknown, file: HubFile, what: string): string {
  if (!ok) throw new Error(`"${file.path}" has an invalid ${what}`);
  return value as string;
}

/** Duplicate paths or a file that is also a folder: no commit has such a tree. */
function listingProblem(tree: readonly TreeEntry[]): string | undefined {
  const paths = new Set<string>();
  for (const e of tree) {
    if (paths.has(e.path)) return `"${e.path}" is listed twice in the tree`;
    paths.add(e.path);
  }
  const conflict = pathConflict(paths);
  return conflict ? conflictError(conflict, 'the tree').message : undefined;
}

/**
 * Why a listing cannot be the commit's whole tree for these selected files: the filters must
 * select from it exactly the files, with the same digests and sizes. Undefined when it fits.
 */
export function treeMismatch(
  tree: readonly TreeEntry[],
  files: readonly HubFile[],
  include: readonly string[],
  exclude: readonly string[],
): string | undefined {
  const byPath = new Map(tree.map((e) => [e.path, e]));
  const keep = fileFilter(include, exclude);
  for (const f of files) {
    if (!keep(f.path)) return `the filters do not select "${f.path}"`;
    const e = byPath.get(f.path);
    if (!e) return `the tree does not list "${f.path}"`;
    if (formatDigest(e.digest) !== formatDigest(f.digest) || e.size !== f.size)
      return `the tree lists "${f.path}" with other content`;
  }
  const selected = tree.reduce((n, e) => n + (keep(e.path) ? 1 : 0), 0);
  return selected === files.length ? undefined : 'the filters select other files from the tree';
}

/** The listing as the layout writes it to `trees/<commit>.json`. */
export function treeCacheFiles(tree: readonly TreeEntry[]): TreeCacheFile[] {
  return tree.map((e) => ({
    path: e.path,
    size: e.size,
    blobId: e.blobId,
    ...(e.digest.algorithm === 'sha256' ? { lfsSha256: e.digest.hex } : {}),
    ...(e.xetHash === undefined ? {} : { xetHash: e.xetHash }),
  }));
}

/** A `trees/<commit>.json` listing read back as tree entries; undefined when no tree can look so. */
export function treeEntries(files: readonly TreeCacheFile[]): TreeEntry[] | undefined {
  const tree = files.map(
    (f): TreeEntry => ({
      path: f.path,
      size: f.size,
      blobId: f.blobId,
      digest:
        f.lfsSha256 === undefined
          ? { algorithm: 'git-sha1', hex: f.blobId }
          : { algorithm: 'sha256', hex: f.lfsSha256 },
      ...(f.xetHash === undefined ? {} : { xetHash: f.xetHash }),
    }),
  );
  return listingProblem(tree) ? undefined : tree;
}
