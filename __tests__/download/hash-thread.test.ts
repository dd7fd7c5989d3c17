import { randomBytes } from 'node:crypto';
import { appendFile, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { fetchBlobs } from '../../src/download/engine.js';
import { hashThreadUsers, ThreadHash } from '../../src/download/hash-thread.js';
import { PrefixHasher } from '../../src/download/prefix-hasher.js';
import { startBlobServer } from '../helpers/blob-server.js';
import { blobSpec, FAST_RETRY, testClient } from '../helpers/engine.js';
import { tempDir } from '../helpers/http.js';

const MiB = 1024 * 1024;

describe('hashing on the shared thread', () => {
  let dir: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await dir.remove();
    // Every job ended: the thread is gone, nothing keeps the process alive.
    expect(hashThreadUsers()).toBe(0);
  });

  it('follows a file as it grows and returns the digest of all of it', async () => {
    const path = join(dir.path, 'blob');
    const parts = [randomBytes(3 * MiB + 7), randomBytes(2 * MiB), randomBytes(5)];
    await writeFile(path, '');
    const job = new ThreadHash(path);
    let written = 0;
    for (const part of parts) {
      await appendFile(path, part);
      written += part.length;
      job.advance(written);
    }
    const { hex, hashed } = await job.finish(written);
    expect(hex).toBe(sha256Hex(Buffer.concat(parts)));
    expect(hashed).toBe(written);
  });

  it('hashes several files at once without mixing them up', async () => {
    const blobs = [randomBytes(MiB), randomBytes(2 * MiB + 1), randomBytes(10)];
    const jobs = await Promise.all(
      blobs.map(async (data, i) => {
        const path = join(dir.path, `blob-${i}`);
        await writeFile(path, data);
        return new ThreadHash(path);
      }),
    );
    const digests = await Promise.all(jobs.map((job, i) => job.finish(blobs[i]!.length)));
    expect(digests.map((d) => d.hex)).toEqual(blobs.map((b) => sha256Hex(b)));
  });

  it('reports a file shorter than promised, and a missing one, as errors', async () => {
    const short = join(dir.path, 'short');
    await writeFile(short, randomBytes(1000));
    await expect(new ThreadHash(short).finish(2000)).rejects.toThrow(
      'hashing the staged file failed: staged file ended at 1000 bytes',
    );
    await expect(new ThreadHash(join(dir.path, 'absent')).finish(1)).rejects.toThrow(/ENOENT/);
  });

  it('lets go of an abandoned job', async () => {
    const path = join(dir.path, 'blob');
    await writeFile(path, randomBytes(MiB));
    const job = new ThreadHash(path);
    job.advance(MiB);
    expect(hashThreadUsers()).toBe(1);
    await job.dispose();
    await job.dispose();
    await expect(job.finish(MiB)).rejects.toThrow('hash job already closed');
  });

  it('PrefixHasher hands a large sha256 blob to the thread once its size is known', async () => {
    const path = join(dir.path, 'blob');
    const data = randomBytes(64 * MiB);
    await writeFile(path, data);
    const file = await open(path, 'r');
    try {
      let size: number | undefined;
      let prefix = 0;
      const hasher = new PrefixHasher(
        'sha256',
        file,
        path,
        () => size,
        () => prefix,
      );
      hasher.catchUp(); // size unknown, nothing written: no decision yet
      expect(hashThreadUsers()).toBe(0);
      size = data.length;
      prefix = 40 * MiB;
      hasher.written(0, data.subarray(0, 40 * MiB));
      expect(hashThreadUsers()).toBe(1);
      prefix = data.length;
      hasher.written(40 * MiB, data.subarray(40 * MiB));
      expect((await hasher.finish(data.length)).hex).toBe(sha256Hex(data));
    } finally {
      await file.close();
    }
  });

  it('a large download that fails leaves no hashing thread behind', async () => {
    const data = randomBytes(64 * MiB);
    // Every response is cut after 1 MiB, without any progress after the first ones.
    const server = await startBlobServer(data, (req) => ({
      resetAfter: req.headers.range?.startsWith('bytes=0-') ? MiB : 0,
    }));
    const http = testClient();
    try {
      const blob = blobSpec(dir.path, sha256Hex(data), data.length, `${server.url}/blob`);
      const error = await fetchBlobs([blob], {
        http,
        concurrency: 1,
        connections: 4,
        verify: 'full',
        retry: FAST_RETRY,
      }).catch((e: unknown) => e);
      expect((error as Error).message).toMatch(/^test blob: giving up after 5 failed attempts: /);
      expect(hashThreadUsers()).toBe(0);
    } finally {
      await http.close();
      await server.close();
    }
  });
});
