import { lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeStaleTemps, writeFileAtomic, writeFileAtomicSync } from '../src/atomic-write.js';
import { tempDir } from './helpers/http.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(() => dir.remove());

test('writes the whole file with the mode asked for, whatever the umask', async () => {
  const path = join(dir.path, 'a', 'b', 'record.json');
  await writeFileAtomic(path, '{"x":1}', { mode: 0o600 });
  expect(await readFile(path, 'utf8')).toBe('{"x":1}');
  expect((await stat(path)).mode & 0o777).toBe(0o600);
  expect(await readdir(join(dir.path, 'a', 'b'))).toEqual(['record.json']);
});

test('replaces a link planted at the target instead of writing through it', async () => {
  const outside = join(dir.path, 'outside');
  await writeFile(outside, 'keep me');
  const path = join(dir.path, 'lock');
  await symlink(outside, path);
  await writeFileAtomic(path, 'new');
  expect((await lstat(path)).isFile()).toBe(true);
  expect(await readFile(path, 'utf8')).toBe('new');
  expect(await readFile(outside, 'utf8')).toBe('keep me');
});

test('concurrent writers: the file ends whole, as one of them wrote it, with no temporary left', async () => {
  const path = join(dir.path, 'ref');
  const contents = Array.from({ length: 20 }, (_, i) => `${i}`.repeat(10_000 + i));
  await Promise.all(contents.map((c) => writeFileAtomic(path, c)));
  expect(contents).toContain(await readFile(path, 'utf8'));
  expect(await readdir(dir.path)).toEqual(['ref']);
});

test('a failed rename leaves no temporary file behind, in the temp folder either', async () => {
  const staging = join(dir.path, 'staging');
  const path = join(dir.path, 'manifests', 'tag');
  await mkdir(join(path, 'in-the-way'), { recursive: true });
  await expect(writeFileAtomic(path, 'm', { tempDir: staging })).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
  expect(await readdir(staging)).toEqual([]);
});

test('the synchronous writer replaces a planted link, and a failed rename leaves no temporary', async () => {
  const outside = join(dir.path, 'outside');
  await writeFile(outside, 'keep me');
  const path = join(dir.path, 'x.progress.json');
  await symlink(outside, path);
  writeFileAtomicSync(path, 'new');
  expect((await lstat(path)).isFile()).toBe(true);
  expect(await readFile(path, 'utf8')).toBe('new');
  expect(await readFile(outside, 'utf8')).toBe('keep me');
  const blocked = join(dir.path, 'blocked');
  await mkdir(join(blocked, 'in-the-way'), { recursive: true });
  expect(() => writeFileAtomicSync(blocked, 'm')).toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
  expect((await readdir(dir.path)).sort()).toEqual(['blocked', 'outside', 'x.progress.json']);
});

test('removeStaleTemps removes what killed writers of one path left, and nothing else', async () => {
  const path = join(dir.path, 'x.progress.json');
  await writeFileAtomic(path, 'kept');
  const left = ['.x.progress.json.0123456789ab.tmp', '.x.progress.json.ba9876543210.tmp'];
  const others = [
    '.y.progress.json.0123456789ab.tmp',
    '.x.progress.json.tmp',
    '.x.progress.json.nothex123456.tmp',
  ];
  for (const name of [...left, ...others]) await writeFile(join(dir.path, name), 'half');
  await removeStaleTemps(path);
  expect((await readdir(dir.path)).sort()).toEqual(['x.progress.json', ...others].sort());
  expect(await readFile(path, 'utf8')).toBe('kept');
});
