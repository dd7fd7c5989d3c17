import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { FileHasher } from '../../src/download/file-hasher.js';
import { tempDir } from '../helpers/http.js';

const MiB = 1024 * 1024;

describe('FileHasher: a file hashed on its own thread, read back as it is written', () => {
  let dir: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await dir.remove();
  });

  it('hashes what is in the file, told in pieces of any size (sha256 and git-sha1)', async () => {
    const data = randomBytes(21 * MiB + 77);
    const file = await open(join(dir.path, 'blob'), 'w+');
    try {
      const sha = new FileHasher(file.fd, 'sha256', data.length);
      const git = new FileHasher(file.fd, 'git-sha1', data.length);
      for (let at = 0, n = 1; at < data.length; n *= 3) {
        const piece = data.subarray(at, at + n * 4096);
        await file.write(piece, 0, piece.length, at);
        at += piece.length;
        sha.written(at);
        git.written(at);
      }
      expect(await sha.finish(data.length)).toEqual({ hex: sha256Hex(data), hashed: data.length });
      const blobId = createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
      expect(await git.finish(data.length)).toEqual({ hex: blobId, hashed: data.length });
    } finally {
      await file.close();
    }
  });

  it('the digest is of the bytes in the file, not of other bytes the writer held', async () => {
    const data = randomBytes(9 * MiB);
    const file = await open(join(dir.path, 'blob'), 'w+');
    try {
      const hasher = new FileHasher(file.fd, 'sha256', data.length);
      await file.write(data, 0, data.length, 0);
      const changed = Buffer.from(data);
      changed[MiB] = (changed[MiB] ?? 0) ^ 0xff;
      await file.write(changed.subarray(MiB, MiB + 1), 0, 1, MiB);
      hasher.written(data.length);
      expect((await hasher.finish(data.length)).hex).toBe(sha256Hex(changed));
    } finally {
      await file.close();
    }
  });

  it('a file shorter than the total asked fails with where it ended', async () => {
    const file = await open(join(dir.path, 'blob'), 'w+');
    try {
      await file.write(Buffer.alloc(1000, 7), 0, 1000, 0);
      const hasher = new FileHasher(file.fd, 'sha256', 2000);
      await expect(hasher.finish(2000)).rejects.toThrow(
        'hashing the file failed: the file ended at 1000 bytes',
      );
    } finally {
      await file.close();
    }
  });

  it('dispose waits until the thread is done with the file; many files share the thread', async () => {
    const files = await Promise.all([0, 1, 2].map((i) => open(join(dir.path, `blob-${i}`), 'w+')));
    const data = randomBytes(12 * MiB);
    try {
      const hashers = files.map((f) => new FileHasher(f.fd, 'sha256', data.length));
      for (const [i, f] of files.entries()) {
        await f.write(data, 0, data.length, 0);
        hashers[i]!.written(data.length);
      }
      await hashers[1]!.dispose();
      await files[1]!.close();
      // The others are unaffected by the one dropped.
      expect((await hashers[0]!.finish(data.length)).hex).toBe(sha256Hex(data));
      expect((await hashers[2]!.finish(data.length)).hex).toBe(sha256Hex(data));
    } finally {
      for (const [i, f] of files.entries()) if (i !== 1) await f.close();
    }
  });
});
