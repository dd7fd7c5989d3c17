import { randomBytes } from 'node:crypto';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkSnapshot, expectedDigests } from '../../bench/hf.js';
import { contentOf, manyFilesLayout, oneFileLayout, PIECE } from '../../bench/hf-repos.js';
import { sha256Hex } from '../../src/digest.js';
import { tempDir } from '../helpers/http.js';

const MiB = 1024 * 1024;
const lfs = (files: ReturnType<typeof manyFilesLayout>) =>
  files.flatMap((f) => ('text' in f ? [] : [f])).sort((a, b) => a.start - b.start);

test("the bench's many-files repo of 1 GiB: 64 × 4 MiB + 2 × 384 MiB + 3 small, tiling the blob, by path", () => {
  const files = manyFilesLayout(1024 * MiB);
  const sizes = lfs(files).map((f) => f.end - f.start);
  expect(sizes).toEqual([...Array(64).fill(PIECE), 384 * MiB, 384 * MiB]);
  expect(files.filter((f) => 'text' in f).map((f) => f.path)).toEqual([
    'README.md',
    'config.json',
    'tokenizer.json',
  ]);
  expect(files.map((f) => f.path)).toEqual([...files.map((f) => f.path)].sort());
  expect(new Set(files.map((f) => f.path)).size).toBe(files.length);
});

test.each([64 * MiB, 100 * MiB + 3, 1024 * MiB])('the slices of %d bytes tile it exactly', (size) => {
  for (const layout of [manyFilesLayout(size), oneFileLayout(size)]) {
    let at = 0;
    for (const f of lfs(layout)) {
      expect(f.start).toBe(at);
      at = f.end;
    }
    expect(at).toBe(size);
  }
  expect(() => manyFilesLayout(15 * MiB)).toThrow('the files case needs a blob of at least 16 MiB');
});

describe('checkSnapshot', () => {
  const blob = randomBytes(16 * MiB + 5);
  const files = manyFilesLayout(blob.length);

  async function snapshot(dir: string, alter?: (path: string) => Uint8Array | undefined): Promise<string> {
    const folder = join(dir, 'snapshot');
    // Written through links, as the Hugging Face cache holds them.
    await mkdir(join(dir, 'blobs'), { recursive: true });
    for (const f of files) {
      const bytes = alter?.(f.path) ?? contentOf(f, blob);
      const target = join(dir, 'blobs', sha256Hex(bytes));
      await writeFile(target, bytes);
      await mkdir(join(folder, f.path, '..'), { recursive: true });
      await symlink(target, join(folder, f.path));
    }
    return folder;
  }

  it('passes the right bytes and names what is wrong, missing or extra', async () => {
    const dir = await tempDir();
    try {
      const blobFile = join(dir.path, 'blob.bin');
      await writeFile(blobFile, blob);
      const expected = await expectedDigests(files, {
        path: blobFile,
        size: blob.length,
        hex: sha256Hex(blob),
      });
      expect(expected.get('README.md')).toBe(sha256Hex(contentOf(files[0]!, blob)));

      const good = await snapshot(join(dir.path, 'good'));
      await expect(checkSnapshot(good, expected, 'tool')).resolves.toBeUndefined();

      const flipped = Uint8Array.from(contentOf(files.find((f) => f.path === 'shards/shard-0.bin')!, blob));
      flipped[100]! ^= 1;
      const bad = await snapshot(join(dir.path, 'bad'), (p) =>
        p === 'shards/shard-0.bin' ? flipped : undefined,
      );
      await expect(checkSnapshot(bad, expected, 'tool')).rejects.toThrow(
        `tool: shards/shard-0.bin has sha256 ${sha256Hex(flipped)}, expected ${expected.get('shards/shard-0.bin')}`,
      );

      await writeFile(join(good, 'stray.txt'), 'x');
      await expect(checkSnapshot(good, expected, 'tool')).rejects.toThrow(
        `tool: snapshot ${good}: unexpected stray.txt`,
      );
      await expect(checkSnapshot(good, new Map([...expected, ['gone.bin', 'ab']]), 'tool')).rejects.toThrow(
        'missing gone.bin; unexpected stray.txt',
      );
    } finally {
      await dir.remove();
    }
  });
});
