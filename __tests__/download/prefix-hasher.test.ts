import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { PrefixHasher } from '../../src/download/prefix-hasher.js';
import { tempDir } from '../helpers/http.js';

const MiB = 1024 * 1024;

describe('PrefixHasher', () => {
  let dir: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await dir.remove();
  });

  it('hashes a chunk at the frontier from memory, and reads back what landed beyond it', async () => {
    const file = await open(join(dir.path, 'blob'), 'w+');
    try {
      const first = randomBytes(3 * MiB + 5);
      const second = randomBytes(2 * MiB + 11);
      const third = randomBytes(7);
      const at2 = first.length;
      const at3 = at2 + second.length;
      const size = at3 + third.length;
      let prefix = 0;
      const hasher = new PrefixHasher(
        'sha256',
        file,
        () => size,
        () => prefix,
      );
      // The second range lands first: nothing before it yet, so nothing to hash.
      await file.write(second, 0, second.length, at2);
      hasher.written(at2, second);
      // The first lands at the frontier: hashed from memory. The file then holds other bytes
      // there, so a digest of the real bytes proves they were not read back.
      await file.write(first, 0, first.length, 0);
      prefix = at3;
      hasher.written(0, first);
      await file.write(Buffer.alloc(first.length), 0, first.length, 0);
      // The rest is read back from the file once the gap before it is closed.
      await file.write(third, 0, third.length, at3);
      prefix = size;
      hasher.written(at3, third);
      const { hex, hashed } = await hasher.finish(size);
      expect(hashed).toBe(size);
      expect(hex).toBe(sha256Hex(Buffer.concat([first, second, third])));
    } finally {
      await file.close();
    }
  });

  it('fails when the file holds fewer bytes than the prefix it was told of', async () => {
    const file = await open(join(dir.path, 'blob'), 'w+');
    try {
      const data = randomBytes(1000);
      await file.write(data, 0, data.length, 0);
      let prefix = 0;
      const hasher = new PrefixHasher(
        'sha256',
        file,
        () => 2000,
        () => prefix,
      );
      prefix = 2000;
      await expect(hasher.finish(2000)).rejects.toThrow('staged file ended at 1000 bytes');
      await hasher.dispose();
    } finally {
      await file.close();
    }
  });
});
