import { lstat, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import { systemClock } from '../../../src/clock.js';
import { isModelPullError } from '../../../src/errors.js';
import type { Descriptor } from '../../../src/registry/manifest.js';
import { MemoryLogger } from '../../../src/report/logger.js';
import { commitFolder, type FolderSpec, recordPath } from '../../../src/sources/oci/folder.js';
import type { Placement } from '../../../src/sources/oci/formats.js';
import { addReference } from '../../../src/sources/oci/layout.js';
import { buildTar, type CraftedMember } from '../../helpers/cache-archive.js';
import { tempDir } from '../../helpers/http.js';
import { sha256 } from '../../helpers/registry.js';

// The model folder and the OCI layout on disk: tar layers are hostile input (only regular files
// and folders inside the folder land), a folder is built aside and swapped in whole, and an
// existing one is kept only while its record holds.

let dir: Awaited<ReturnType<typeof tempDir>>;
let blobs: string;
const lease = { clock: systemClock, log: new MemoryLogger() };
beforeAll(async () => {
  dir = await tempDir('model-pull-oci-folder-');
  blobs = join(dir.path, 'blobs');
  await mkdir(blobs);
});
afterAll(async () => dir.remove());

async function blob(mediaType: string, bytes: Buffer): Promise<Descriptor> {
  const hex = sha256(bytes);
  await writeFile(join(blobs, hex), bytes);
  return { mediaType, hex, size: bytes.length };
}
const raw = async (path: string, bytes: Buffer): Promise<Placement> => ({
  kind: 'file',
  layer: await blob('application/vnd.cncf.model.weight.v1.raw', bytes),
  path,
  gguf: false,
});
const archive = async (members: CraftedMember[]): Promise<Placement> => ({
  kind: 'archive',
  layer: await blob('application/vnd.cncf.model.doc.v1.tar+zstd', zstdCompressSync(buildTar(members))),
  compression: 'zstd',
});
let n = 0;
const spec = (placements: Placement[], verify: 'full' | 'size' = 'full'): FolderSpec => ({
  dir: join(dir.path, 'models', `m${++n}`),
  placements: placements as FolderSpec['placements'],
  blobPath: (hex) => join(blobs, hex),
  verify,
});

test('regular files and folders land at their paths, each recorded with its sha256', async () => {
  const weights = Buffer.from('GGUF weights');
  const s = spec([
    await raw('w/model.gguf', weights),
    await archive([
      { name: './', type: '5' },
      { name: './docs/', type: '5' },
      { name: './docs/README.md', data: Buffer.from('# readme') },
      { name: 'empty.txt', data: Buffer.alloc(0) },
    ]),
  ]);
  const files = await commitFolder(s, lease);
  expect(files).toEqual([
    { path: 'w/model.gguf', hex: sha256(weights), size: weights.length },
    { path: 'docs/README.md', hex: sha256(Buffer.from('# readme')), size: 8 },
    { path: 'empty.txt', hex: sha256(Buffer.alloc(0)), size: 0 },
  ]);
  expect(await readFile(join(s.dir, 'docs/README.md'), 'utf8')).toBe('# readme');
  expect((await stat(s.dir)).mode & 0o777).toBe(0o755);
  expect((await stat(join(s.dir, 'docs'))).mode & 0o777).toBe(0o755);
  expect((await stat(join(s.dir, 'empty.txt'))).mode & 0o777).toBe(0o644);
  expect(JSON.parse(await readFile(recordPath(s.dir), 'utf8'))).toEqual({ version: 1, files });
});

describe('hostile tar members fail the layer, and nothing lands', () => {
  test.each<[string, CraftedMember, string]>([
    [
      'a symbolic link',
      { name: 'link', type: '2', linkname: '/etc/passwd' },
      'it is a symbolic link; only regular files and folders are extracted',
    ],
    [
      'a hard link',
      { name: 'hard', type: '1', linkname: 'README.md' },
      'it is a hard link; only regular files and folders are extracted',
    ],
    ['a device', { name: 'dev', type: '3' }, 'it is a device; only regular files and folders are extracted'],
    ['a parent path', { name: '../../escaped.txt', data: Buffer.from('x') }, 'it has a ".." part'],
    [
      'a nested parent path',
      { name: 'docs/../../escaped.txt', data: Buffer.from('x') },
      'it has a ".." part',
    ],
    ['an absolute path', { name: '/tmp/escaped.txt', data: Buffer.from('x') }, 'it is absolute'],
    ['a long pax path', { name: `${'d/'.repeat(60)}../../x`, data: Buffer.from('x') }, 'it has a ".." part'],
    ['a member twice', { name: 'README.md', data: Buffer.from('again') }, 'layer 2 (sha256:'],
  ])('%s', async (_what, member, why) => {
    const s = spec([
      await raw('model.gguf', Buffer.from('GGUF')),
      await archive([{ name: 'README.md', data: Buffer.from('# readme') }, member]),
    ]);
    const error = await commitFolder(s, lease).catch((e: unknown) => e);
    expect(isModelPullError(error, 'ERR_BAD_MANIFEST')).toBe(true);
    expect((error as Error).message).toContain(why);
    expect((error as Error).message).toMatch(
      /^layer 2 \(sha256:[0-9a-f]{12}…, application\/vnd\.cncf\.model\.doc\.v1\.tar\+zstd\) holds /,
    );
    // No folder, no record, no half-built folder left beside them, nothing written outside.
    const parent = join(s.dir, '..');
    expect((await readdir(parent)).filter((e) => e.includes(s.dir.split('/').pop()!))).toEqual([]);
    expect((await readdir(dir.path)).sort()).toEqual(['blobs', 'models']);
  });

  test('a member where a raw layer put a file', async () => {
    const s = spec([
      await raw('model.gguf', Buffer.from('GGUF')),
      await archive([{ name: 'model.gguf', data: Buffer.from('evil') }]),
    ]);
    await expect(commitFolder(s, lease)).rejects.toThrow('layer 2 (');
    await expect(commitFolder(s, lease)).rejects.toThrow('both write "model.gguf"');
  });

  test('an archive that expands without end stops at its cap', async () => {
    // 65 MiB of zeros compresses to a few KiB: far over 64 × its size plus the 64 MiB slack.
    const bomb = await archive([{ name: 'zeros.bin', data: Buffer.alloc(65 * 1024 * 1024) }]);
    const error = await commitFolder(spec([bomb]), lease).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/^layer 1 \(.+\) expands to more than \d+ bytes; refused$/);
  });

  test('a truncated archive', async () => {
    const tar = buildTar([{ name: 'a.txt', data: Buffer.alloc(4096, 1) }]);
    const cut: Placement = {
      kind: 'archive',
      layer: await blob('application/vnd.cncf.model.doc.v1.tar', tar.subarray(0, 1536)),
      compression: 'none',
    };
    await expect(commitFolder(spec([cut]), lease)).rejects.toThrow(
      /^layer 1 \(.+\) is not a readable tar archive: the archive is truncated/,
    );
  });
});

test('an existing folder is kept while its record holds, rebuilt when a file changed', async () => {
  const s = spec([
    await raw('model.gguf', Buffer.from('GGUF w')),
    await archive([{ name: 'config.json', data: Buffer.from('{"a":1}') }]),
  ]);
  const files = await commitFolder(s, lease);
  const config = join(s.dir, 'config.json');
  const first = (await stat(config)).ino;
  expect(await commitFolder(s, lease)).toEqual(files);
  expect((await stat(config)).ino).toBe(first);

  // Same size, other bytes: `size` keeps it, `full` hashes and rebuilds.
  await writeFile(config, '{"a":2}');
  expect(await commitFolder({ ...s, verify: 'size' }, lease)).toEqual(files);
  expect(await readFile(config, 'utf8')).toBe('{"a":2}');
  expect(await commitFolder(s, lease)).toEqual(files);
  expect(await readFile(config, 'utf8')).toBe('{"a":1}');

  // A raw layer's file that is no longer the blob's inode is hashed; a replaced one rebuilds.
  await writeFile(join(s.dir, 'model.gguf.tmp'), 'GGUF x');
  const { rename } = await import('node:fs/promises');
  await rename(join(s.dir, 'model.gguf.tmp'), join(s.dir, 'model.gguf'));
  expect(await commitFolder(s, lease)).toEqual(files);
  const gguf = await lstat(join(s.dir, 'model.gguf'));
  expect(gguf.ino).toBe((await stat(join(blobs, s.placements[0]!.layer.hex))).ino);
});

test('where a link cannot be made (the blobs on another filesystem), a raw layer is copied', async () => {
  // /dev/shm is a tmpfs, the test folder is on the disk: link() fails with EXDEV between them.
  const { mkdtemp, rm } = await import('node:fs/promises');
  const other = await mkdtemp('/dev/shm/model-pull-oci-');
  try {
    expect((await stat(other)).dev).not.toBe((await stat(dir.path)).dev);
    const weights = Buffer.from('GGUF weights on another filesystem');
    const layer = {
      mediaType: 'application/vnd.cncf.model.weight.v1.raw',
      hex: sha256(weights),
      size: weights.length,
    };
    await writeFile(join(other, layer.hex), weights);
    const s: FolderSpec = {
      ...spec([{ kind: 'file', layer, path: 'model.gguf', gguf: true }]),
      blobPath: (hex) => join(other, hex),
    };
    expect(await commitFolder(s, lease)).toEqual([
      { path: 'model.gguf', hex: layer.hex, size: weights.length },
    ]);
    const copied = await stat(join(s.dir, 'model.gguf'));
    expect(copied.ino).not.toBe((await stat(join(other, layer.hex))).ino);
    expect([copied.nlink, copied.mode & 0o777]).toEqual([1, 0o644]);
    expect(await readFile(join(s.dir, 'model.gguf'))).toEqual(weights);
  } finally {
    await rm(other, { recursive: true, force: true });
  }
});

test('two commits of one folder at once: one builds, the other waits and keeps its folder', async () => {
  const s = spec([await archive([{ name: 'a.json', data: Buffer.from('{}') }])]);
  const [a, b] = await Promise.all([commitFolder(s, lease), commitFolder(s, lease)]);
  expect(a).toEqual(b);
  expect(
    (await readdir(join(s.dir, '..'))).filter((e) => e.includes(s.dir.split('/').pop()!)).sort(),
  ).toEqual([s.dir.split('/').pop()!, `.${s.dir.split('/').pop()!}.files.json`].sort());
});

test('half-built folders left by killed runs are removed by the next builder', async () => {
  const s = spec([await raw('a.bin', Buffer.from('a'))]);
  const parent = join(s.dir, '..');
  const name = s.dir.split('/').pop()!;
  await mkdir(join(parent, `.${name}.999999999.abc`, 'partial'), { recursive: true });
  await mkdir(join(parent, `.${name}.${process.pid}.def`), { recursive: true });
  await commitFolder(s, lease);
  expect((await readdir(parent)).filter((e) => e.startsWith(`.${name}.`))).toEqual([`.${name}.files.json`]);
});

describe('index.json', () => {
  const ctx = { clock: systemClock, log: new MemoryLogger() };
  const desc = (n: number) => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    hex: String(n).repeat(64).slice(0, 64),
    size: n,
  });

  test('entries by reference name: replaced by name, others kept (also ones another tool wrote)', async () => {
    const root = join(dir.path, 'layout1');
    await mkdir(root);
    const other = {
      mediaType: 'application/vnd.oci.image.index.v1+json',
      digest: `sha256:${'9'.repeat(64)}`,
      size: 5,
    };
    await writeFile(join(root, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [other] }));
    await Promise.all([1, 2, 3, 4].map((i) => addReference(root, `r/m:v${i}`, desc(i), ctx)));
    await addReference(root, 'r/m:v2', desc(5), ctx);
    const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8'));
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    const named = index.manifests.map((m: { digest: string; annotations?: Record<string, string> }) => [
      m.annotations?.['org.opencontainers.image.ref.name'],
      m.digest.slice(7, 8),
    ]);
    expect(named.sort()).toEqual(
      [
        [undefined, '9'],
        ['r/m:v1', '1'],
        ['r/m:v2', '5'],
        ['r/m:v3', '3'],
        ['r/m:v4', '4'],
      ].sort(),
    );
  });

  test('an index.json that is not an index is left alone, and the error says so', async () => {
    const root = join(dir.path, 'layout2');
    await mkdir(root);
    await writeFile(join(root, 'index.json'), '{"not":"an index"}');
    await expect(addReference(root, 'r/m:v1', desc(1), ctx)).rejects.toThrow(
      `${join(root, 'index.json')} is not an OCI image index; move it away`,
    );
    expect(await readFile(join(root, 'index.json'), 'utf8')).toBe('{"not":"an index"}');
    await writeFile(join(root, 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}');
    await expect(addReference(root, 'r/m:v1', desc(1), ctx)).rejects.toThrow(
      'is not an OCI image layout version 1.0.0 marker',
    );
  });
});
