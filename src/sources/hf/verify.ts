import { lstat, readdir, readlink, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { type Digest, isSha1Hex, isSha256Hex } from '../../digest.js';
import { readBounded, readSmall } from '../../download/safe-fs.js';
import { readTrees, type TreeCacheFile, treesPath } from '../../layouts/hf-trees.js';
import { Checker, dirs, type VerifyReport, walk } from '../../verify/files.js';
import { checkedFile, MAX_RECORD_BYTES, MAX_REF_BYTES } from './record.js';

const REPO_FOLDER = /^(models|datasets|spaces)--(.+)$/;

interface Expected {
  readonly digest: Digest;
  readonly size: number | undefined;
  /** The filters of the record that lists the file, as a line writes them (` include=…`). */
  readonly filters: string;
}

/**
 * Re-hashes a Hugging Face cache (docs/layouts.md, "The Hugging Face cache"):
 * - a snapshot model-pull wrote has a record (`<repo>/.model-pull/<commit>.*.json`) listing every
 *   file with its digest and size, so a file missing from the snapshot is found too;
 * - any other snapshot entry is checked against the blob its symlink names (the ETag: sha256 for
 *   LFS files, git blob sha1 otherwise), or for a hard link, the blob that shares its inode; a
 *   real file with no blob to compare with (huggingface_hub moves the blob where symlinks are
 *   missing) cannot be checked and is skipped;
 * - a ref must name a commit that has a snapshot;
 * - a snapshot model-pull wrote has `trees/<commit>.json` listing its files as they are (else
 *   huggingface_hub cannot load that commit offline).
 */
export async function verifyHfCache(root: string): Promise<VerifyReport> {
  const checker = new Checker();
  for (const folder of await dirs(root)) {
    const m = REPO_FOLDER.exec(folder);
    if (!m) continue;
    const repo = `hf:${m[1] === 'models' ? '' : `${m[1]}/`}${m[2]!.split('--').join('/')}`;
    await verifyRepo(join(root, folder), repo, checker);
  }
  // Records list files in the Hub's order; a report sorted by path is easier to read and diff.
  checker.damaged.sort((a, b) => (a.model === b.model ? compare(a.path, b.path) : compare(a.model, b.model)));
  return checker.report();
}

async function verifyRepo(folder: string, repo: string, checker: Checker): Promise<void> {
  const commits = await dirs(join(folder, 'snapshots'));
  for (const ref of await walk(join(folder, 'refs'))) {
    const read = await readBounded(ref, MAX_REF_BYTES);
    const commit = read.kind === 'read' ? read.bytes.toString('utf8').trim() : '';
    if (!commits.includes(commit)) {
      const named = isSha1Hex(commit) ? `commit ${commit}, which has no snapshot` : 'no commit';
      const problem =
        read.kind === 'refused' ? `cannot read the ref: ${read.reason}` : `the ref names ${named}`;
      const line = `${repo}@${relative(join(folder, 'refs'), ref).split(sep).join('/')}`;
      checker.damaged.push({ model: repo, path: ref, problem, line });
    }
  }
  const records = await readRecords(join(folder, '.model-pull'));
  const inodes = new BlobInodes(join(folder, 'blobs'));
  for (const commit of commits) {
    const model = `${repo}@${commit}`;
    const snapshot = join(folder, 'snapshots', commit);
    const expected = records.get(commit) ?? new Map<string, Expected>();
    for (const [path, want] of expected) {
      const file = join(snapshot, ...path.split('/'));
      const present = await lstat(file).then(
        () => true,
        () => false,
      );
      const problem = present
        ? await checker.problem(file, want.digest, want.size)
        : 'missing from the snapshot';
      if (problem)
        checker.damaged.push({
          model,
          path: file,
          problem: linkProblem(problem, want.digest),
          line: `${model}${want.filters}`,
        });
    }
    if (records.has(commit)) {
      const problem = await listingProblem(folder, commit, expected);
      // Any recorded line of the commit repairs it: a pull writes the whole listing.
      const line = `${model}${[...expected.values()][0]?.filters ?? ''}`;
      if (problem) checker.damaged.push({ model, path: treesPath({ folder }, commit), problem, line });
    }
    for (const file of await walk(snapshot)) {
      if (expected.has(relative(snapshot, file).split(sep).join('/'))) continue;
      const etag = await etagOf(file, inodes);
      if (!etag) continue;
      const digest: Digest = isSha256Hex(etag)
        ? { algorithm: 'sha256', hex: etag }
        : { algorithm: 'git-sha1', hex: etag };
      const problem = await checker.problem(file, digest, undefined);
      if (problem)
        checker.damaged.push({ model, path: file, problem: linkProblem(problem, digest), line: model });
    }
  }
}

/** Why trees/<commit>.json does not describe the recorded files, or undefined when it does. */
async function listingProblem(
  folder: string,
  commit: string,
  expected: ReadonlyMap<string, Expected>,
): Promise<string | undefined> {
  const listing = await readTrees({ folder }, commit);
  if (!listing) {
    const present = await lstat(treesPath({ folder }, commit)).then(
      () => true,
      () => false,
    );
    return present
      ? 'not a listing huggingface_hub accepts'
      : 'missing (huggingface_hub cannot load this commit offline)';
  }
  const byPath = new Map(listing.map((f) => [f.path, f]));
  for (const [path, want] of expected) {
    const entry = byPath.get(path);
    if (!entry || !describes(entry, want)) return `does not list ${path} as the snapshot holds it`;
  }
  return undefined;
}

function describes(entry: TreeCacheFile, want: Expected): boolean {
  const sameContent =
    want.digest.algorithm === 'sha256'
      ? entry.lfsSha256 === want.digest.hex
      : entry.lfsSha256 === undefined && entry.blobId === want.digest.hex;
  return sameContent && (want.size === undefined || entry.size === want.size);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A snapshot entry whose link target is gone is a missing blob, and says which. */
function linkProblem(problem: string, digest: Digest): string {
  return problem === 'missing' ? `missing blob ${digest.hex}` : problem;
}

/** What model-pull's records say each complete snapshot holds, by commit then path. */
async function readRecords(folder: string): Promise<Map<string, Map<string, Expected>>> {
  const byCommit = new Map<string, Map<string, Expected>>();
  let names: string[];
  try {
    names = (await readdir(folder)).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return byCommit;
  }
  for (const name of names) {
    try {
      const data = JSON.parse(String(await readSmall(join(folder, name), MAX_RECORD_BYTES))) as {
        commit?: unknown;
        files?: unknown;
        include?: unknown;
        exclude?: unknown;
      };
      if (typeof data.commit !== 'string' || !isSha1Hex(data.commit) || !Array.isArray(data.files)) continue;
      const files = byCommit.get(data.commit) ?? new Map<string, Expected>();
      const filters = [filterWord('include', data.include), filterWord('exclude', data.exclude)].join('');
      for (const raw of data.files) {
        const file = checkedFile(raw);
        if (!files.has(file.path)) files.set(file.path, { digest: file.digest, size: file.size, filters });
      }
      byCommit.set(data.commit, files);
    } catch {
      // Not a record of ours (or a damaged one): the symlink check below still covers its files.
    }
  }
  return byCommit;
}

/** ` include=a,b` for a record's filter list (patterns never hold spaces or commas), '' when none. */
function filterWord(key: string, patterns: unknown): string {
  if (!Array.isArray(patterns)) return '';
  const words = patterns.filter((p): p is string => typeof p === 'string' && /^[^\s,]+$/.test(p));
  return words.length ? ` ${key}=${words.join(',')}` : '';
}

/** The ETag a snapshot entry stands for: its symlink target's name, or a blob with its inode. */
async function etagOf(file: string, inodes: BlobInodes): Promise<string | undefined> {
  let name: string;
  try {
    name = basename(await readlink(file));
  } catch {
    name = (await inodes.nameOf(file)) ?? '';
  }
  return isSha256Hex(name) || isSha1Hex(name) ? name : undefined;
}

/** Blob names by inode, read once per repo, to recognise hard-linked snapshot files. */
class BlobInodes {
  private map: Promise<Map<string, string>> | undefined;
  constructor(private readonly blobs: string) {}

  async nameOf(file: string): Promise<string | undefined> {
    this.map ??= this.read();
    const info = await stat(file).catch(() => undefined);
    return info ? (await this.map).get(`${info.dev}:${info.ino}`) : undefined;
  }

  private async read(): Promise<Map<string, string>> {
    const map = new Map<string, string>();
    for (const name of await readdir(this.blobs).catch(() => [] as string[])) {
      const info = await stat(join(this.blobs, name)).catch(() => undefined);
      if (info?.isFile()) map.set(`${info.dev}:${info.ino}`, name);
    }
    return map;
  }
}
