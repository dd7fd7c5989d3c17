import { lstat, mkdir, readdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scanCacheDir } from '@huggingface/hub';
import { gitBlobSha1Hex, sha256Hex } from '../../src/digest.js';
import { isModelPullError } from '../../src/errors.js';
import {
  commitSnapshot,
  type HfRepoPaths,
  hfRepoPaths,
  pathConflict,
  repoFolderName,
  repoPathProblem,
  type SnapshotFile,
} from '../../src/layouts/hf.js';
import { tempDir } from '../helpers/http.js';
import { randomCommit } from '../helpers/hub.js';

const enc = (s: string) => new TextEncoder().encode(s);

/** Writes blobs as the engine would leave them and returns the snapshot file list. */
async function blobs(paths: HfRepoPaths, files: Record<string, string>): Promise<SnapshotFile[]> {
  await mkdir(paths.blobs, { recursive: true });
  const out: SnapshotFile[] = [];
  for (const [path, text] of Object.entries(files)) {
    const bytes = enc(text);
    const etag = path.endsWith('.bin') ? sha256Hex(bytes) : gitBlobSha1Hex(bytes);
    await writeFile(join(paths.blobs, etag), bytes);
    out.push({ path, etag, size: bytes.length });
  }
  return out;
}

function failing(code: string) {
  return async () => {
    throw Object.assign(new Error(`simulated ${code}`), { code });
  };
}

describe('HF cache layout', () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    root = await tempDir();
  });
  afterEach(async () => {
    await root.remove();
  });

  test('folder names follow huggingface_hub', () => {
    expect(repoFolderName('model', 'Qwen/Qwen2.5-0.5B')).toBe('models--Qwen--Qwen2.5-0.5B');
    expect(repoFolderName('dataset', 'nyu-mll/glue')).toBe('datasets--nyu-mll--glue');
    expect(repoFolderName('space', 'a/b')).toBe('spaces--a--b');
  });

  test('relative symlinks (deeper when nested), ref without newline, read back by scanCacheDir', async () => {
    const paths = hfRepoPaths(root.path, 'model', 'owner/repo');
    const commit = randomCommit();
    const files = await blobs(paths, {
      'config.json': '{"a":1}',
      'w.bin': 'weights!',
      'sub/dir/t.json': 'nested',
    });
    const record = join(paths.private, 'rec.json');
    await commitSnapshot({
      paths,
      commit,
      revision: 'main',
      files,
      record: { path: record, content: 'done' },
    });

    const snap = join(paths.snapshots, commit);
    expect(await readlink(join(snap, 'config.json'))).toBe(`../../blobs/${files[0]!.etag}`);
    expect(await readlink(join(snap, 'w.bin'))).toBe(`../../blobs/${files[1]!.etag}`);
    expect(await readlink(join(snap, 'sub/dir/t.json'))).toBe(`../../../../blobs/${files[2]!.etag}`);
    expect(await readFile(join(snap, 'sub/dir/t.json'), 'utf8')).toBe('nested');
    expect(await readFile(join(paths.refs, 'main'), 'utf8')).toBe(commit);
    expect(await readFile(record, 'utf8')).toBe('done');

    const scan = await scanCacheDir(root.path);
    expect(scan.warnings).toEqual([]);
    expect(scan.repos).toHaveLength(1);
    const repo = scan.repos[0]!;
    expect(repo.id).toEqual({ name: 'owner/repo', type: 'model' });
    expect(repo.revisions.map((r) => [r.commitOid, r.refs])).toEqual([[commit, ['main']]]);
    // scanCacheDir lists only the top level of a snapshot.
    const listed = repo.revisions[0]!.files.map((f) => [f.path, f.blob.size]).sort();
    expect(listed).toEqual([
      [join(snap, 'config.json'), 7],
      [join(snap, 'w.bin'), 8],
    ]);
  });

  test('refs/pr/1 is a nested file; a pinned commit writes no ref but keeps refs/ for readers', async () => {
    const paths = hfRepoPaths(root.path, 'dataset', 'o/d');
    const commit = randomCommit();
    const files = await blobs(paths, { 'data.bin': 'rows' });
    await commitSnapshot({ paths, commit, revision: 'refs/pr/1', files });
    expect(await readFile(join(paths.refs, 'refs', 'pr', '1'), 'utf8')).toBe(commit);

    const other = hfRepoPaths(root.path, 'model', 'o/pinned');
    const pinnedFiles = await blobs(other, { 'a.json': '{}' });
    const pinned = randomCommit();
    await commitSnapshot({ paths: other, commit: pinned, revision: pinned, files: pinnedFiles });
    expect((await stat(other.refs)).isDirectory()).toBe(true);
    const scan = await scanCacheDir(root.path);
    expect(scan.warnings).toEqual([]);
    const byName = Object.fromEntries(scan.repos.map((r) => [r.id.name, r]));
    expect(byName['o/d']!.id.type).toBe('dataset');
    expect(byName['o/pinned']!.revisions.map((r) => [r.commitOid, r.refs, r.files.length])).toEqual([
      [pinned, [], 1],
    ]);
  });

  test('stale entries (wrong link, real file, folder) are replaced; a current link is left alone', async () => {
    const paths = hfRepoPaths(root.path, 'model', 'o/r');
    const commit = randomCommit();
    const files = await blobs(paths, { 'a.json': 'A', 'b.json': 'B', 'c.json': 'C', 'd.json': 'D' });
    const snap = join(paths.snapshots, commit);
    await mkdir(join(snap, 'c.json'), { recursive: true });
    await writeFile(join(snap, 'b.json'), 'stale');
    await symlink('../../blobs/0000', join(snap, 'a.json'));
    await symlink(`../../blobs/${files[3]!.etag}`, join(snap, 'd.json'));
    const before = await lstat(join(snap, 'd.json'));
    await commitSnapshot({ paths, commit, files });
    for (const [i, name] of ['a.json', 'b.json', 'c.json', 'd.json'].entries()) {
      expect(await readlink(join(snap, name))).toBe(`../../blobs/${files[i]!.etag}`);
      expect(await readFile(join(snap, name), 'utf8')).toBe('ABCD'[i]);
    }
    expect((await lstat(join(snap, 'd.json'))).ino).toBe(before.ino);
  });

  test('without symlinks: hard links; without hard links either: copies', async () => {
    const paths = hfRepoPaths(root.path, 'model', 'o/hard');
    const commit = randomCommit();
    const files = await blobs(paths, { 'x.json': 'hard', 'y/z.json': 'linked' });
    let symlinkCalls = 0;
    const noSymlink = async () => {
      symlinkCalls++;
      throw Object.assign(new Error('simulated'), { code: 'EPERM' });
    };
    await commitSnapshot({ paths, commit, revision: 'main', files, ops: { symlink: noSymlink } });
    expect(symlinkCalls).toBe(1); // the first refusal switches the whole snapshot to links
    for (const f of files) {
      const entry = await lstat(join(paths.snapshots, commit, f.path));
      expect(entry.isFile()).toBe(true);
      expect(entry.ino).toBe((await stat(join(paths.blobs, f.etag))).ino);
    }

    const copied = hfRepoPaths(root.path, 'model', 'o/copy');
    const copyFiles = await blobs(copied, { 'x.json': 'copied' });
    await commitSnapshot({
      paths: copied,
      commit,
      files: copyFiles,
      ops: { symlink: failing('ENOTSUP'), link: failing('EPERM') },
    });
    const entry = join(copied.snapshots, commit, 'x.json');
    expect((await lstat(entry)).isFile()).toBe(true);
    expect((await stat(entry)).ino).not.toBe((await stat(join(copied.blobs, copyFiles[0]!.etag))).ino);
    expect(await readFile(entry, 'utf8')).toBe('copied');

    const scan = await scanCacheDir(root.path);
    expect(scan.warnings).toEqual([]);
    const sizes = scan.repos
      .flatMap((r) => r.revisions.flatMap((v) => v.files.map((f) => f.blob.size)))
      .sort();
    expect(sizes).toEqual([4, 6]);
  });

  test('two commits of one snapshot at once (two lines, overlapping files) both succeed', async () => {
    const paths = hfRepoPaths(root.path, 'model', 'o/race');
    const commit = randomCommit();
    const files = await blobs(
      paths,
      Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}.json`, `${i}`])),
    );
    await Promise.all([
      commitSnapshot({ paths, commit, revision: 'main', files }),
      commitSnapshot({ paths, commit, revision: 'main', files: files.slice(5) }),
    ]);
    for (const f of files) {
      expect(await readlink(join(paths.snapshots, commit, f.path))).toBe(`../../blobs/${f.etag}`);
    }
    expect((await readdir(join(paths.snapshots, commit))).length).toBe(20);
  });

  test('a missing or short blob fails before any ref is written', async () => {
    const paths = hfRepoPaths(root.path, 'model', 'o/missing');
    const commit = randomCommit();
    const files = await blobs(paths, { 'a.json': 'present' });
    const wrong = [...files, { path: 'b.json', etag: 'f'.repeat(40), size: 3 }];
    const error = await commitSnapshot({ paths, commit, revision: 'main', files: wrong }).catch(
      (e: unknown) => e,
    );
    expect(isModelPullError(error, 'ERR_SIZE_MISMATCH')).toBe(true);
    expect((error as Error).message).toBe(
      `cannot link b.json: blob ${'f'.repeat(40)} should have 3 bytes but it is missing`,
    );
    await expect(stat(join(paths.refs, 'main'))).rejects.toThrow(/ENOENT/);
  });

  test('a commit that fails half-way leaves no snapshot folder, no ref and nothing aside', async () => {
    const paths = hfRepoPaths(root.path, 'model', 'o/half');
    const commit = randomCommit();
    const files = await blobs(paths, { 'a.json': 'A', 'b.json': 'B', 'c/d.json': 'D' });
    let links = 0;
    const ops = {
      symlink: async (target: string, path: string) => {
        links += 1;
        if (links === 3) throw Object.assign(new Error('simulated EIO'), { code: 'EIO' });
        await symlink(target, path);
      },
    };
    const error = await commitSnapshot({ paths, commit, revision: 'main', files, ops }).catch(
      (e: unknown) => e,
    );
    expect((error as Error).message).toBe('simulated EIO');
    expect(links).toBe(3);
    await expect(lstat(join(paths.snapshots, commit))).rejects.toThrow(/ENOENT/);
    await expect(lstat(join(paths.refs, 'main'))).rejects.toThrow(/ENOENT/);
    expect(await readdir(paths.private)).toEqual([]);

    // The same commit then succeeds, and a later failure on an existing snapshot keeps what it had.
    await commitSnapshot({ paths, commit, revision: 'main', files: files.slice(0, 2) });
    const more = await blobs(paths, { 'e.json': 'E' });
    const failed = await commitSnapshot({
      paths,
      commit,
      files: [...files, ...more],
      ops: { symlink: failing('EIO'), link: failing('EIO') },
    }).catch((e: unknown) => e);
    expect((failed as Error).message).toBe('simulated EIO');
    const left = await readdir(join(paths.snapshots, commit), { recursive: true, withFileTypes: true });
    expect(
      left
        .filter((e) => !e.isDirectory())
        .map((e) => e.name)
        .sort(),
    ).toEqual(['a.json', 'b.json']);
  });

  test('a file list naming both "a" and "a/b.json" is refused before anything is written', async () => {
    const paths = hfRepoPaths(root.path, 'model', 'o/clash');
    const commit = randomCommit();
    const files = await blobs(paths, { a: 'file', 'a/b.json': 'under it' });
    const error = await commitSnapshot({ paths, commit, revision: 'main', files }).catch((e: unknown) => e);
    expect(isModelPullError(error, 'ERR_BAD_MANIFEST')).toBe(true);
    expect((error as Error).message).toBe(
      `the snapshot of ${commit} names both a file "a" and a file under it ("a/b.json"); no snapshot can hold both`,
    );
    await expect(lstat(paths.snapshots)).rejects.toThrow(/ENOENT/);
  });

  test.each([
    [
      ['a', 'a/b.json'],
      ['a', 'a/b.json'],
    ],
    [
      ['a/b/c.json', 'a/b'],
      ['a/b', 'a/b/c.json'],
    ],
    [
      ['x/y', 'a', 'x'],
      ['x', 'x/y'],
    ],
    [['a-b', 'a/b', 'a.b', 'ab'], undefined],
    [['a/b', 'a/c', 'b/a'], undefined],
  ])('pathConflict(%j) → %j', (list, expected) => {
    expect(pathConflict(list)).toEqual(expected);
  });

  test('pathConflict stays linear on deep hostile paths', () => {
    const deep = 'a/'.repeat(2000);
    const list = Array.from({ length: 500 }, (_, i) => `${deep}${i}`);
    expect(pathConflict(list)).toBeUndefined();
    expect(pathConflict([...list, `${deep}7/x`])).toEqual([`${deep}7`, `${deep}7/x`]);
  });

  test('our private folder is invisible to scanCacheDir; a sibling of the repo folders is not', async () => {
    const paths = hfRepoPaths(root.path, 'model', 'o/r');
    const commit = randomCommit();
    const files = await blobs(paths, { 'a.json': 'A' });
    await commitSnapshot({ paths, commit, revision: 'main', files });
    await mkdir(paths.ingest, { recursive: true });
    await writeFile(join(paths.ingest, 'sha256-x.partial'), 'partial');
    expect((await scanCacheDir(root.path)).warnings).toEqual([]);
    await mkdir(join(root.path, '.model-pull-ingest'));
    expect((await scanCacheDir(root.path)).warnings).toHaveLength(1);
  });

  test.each([
    ['a/b.json', undefined],
    ['', 'an empty path'],
    ['/etc/passwd', 'an absolute path'],
    ['a/../../x', 'a path with an empty, "." or ".." part'],
    ['a//b', 'a path with an empty, "." or ".." part'],
    ['./a', 'a path with an empty, "." or ".." part'],
    ['a\\b', 'a path with a backslash'],
    ['a\nb', 'a path with a control character'],
  ])('repoPathProblem(%j) → %s', (path, problem) => {
    expect(repoPathProblem(path)).toBe(problem);
  });
});
