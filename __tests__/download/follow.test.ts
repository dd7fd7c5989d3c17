import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { openLocalBlob, streamBlob } from '../../src/download/follow.js';
import { stagingPaths } from '../../src/download/staging.js';
import { skippingClock } from '../helpers/clock.js';
import { blobSpec, type EngineFixture, engineFixture, FAST_RETRY, randomBlob } from '../helpers/engine.js';

const MiB = 1024 * 1024;
const { data, hex } = randomBlob(24 * MiB + 12345);
let f: EngineFixture;
engineFixture(data, (fixture) => {
  f = fixture;
});

const spec = (url: string) => ({
  label: 'cache archive',
  locate: async () => ({ url }),
});
const options = () => ({
  http: f.http,
  connections: 6,
  retry: FAST_RETRY,
  clock: skippingClock(),
  minSplit: MiB,
});

describe('streamBlob: a blob without a known digest, read in order as its ranges land', () => {
  test('parallel ranges, one reset connection, bytes handed over in order exactly once, in whole blocks; nothing on disk', async () => {
    let resets = 0;
    f.server.setFault((req) =>
      req.headers.range !== 'bytes=0-' && resets++ === 0 ? { resetAfter: 100_000 } : undefined,
    );
    const hash = createHash('sha256');
    const sizes: number[] = [];
    const result = await streamBlob(spec(`${f.server.url}/blob`), options(), async (chunk) => {
      hash.update(chunk);
      sizes.push(chunk.length);
    });
    expect(result).toEqual({ size: data.length, fetched: expect.any(Number) });
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(data.length);
    // Every block but the last is a whole MiB (the reader's calls are per block, not per read).
    expect(sizes.slice(0, -1).every((n) => n === MiB)).toBe(true);
    expect(sizes.at(-1)).toBe(data.length % MiB);
    expect(hash.digest('hex')).toBe(hex);
    expect(f.server.requests.length).toBeGreaterThan(2);
    expect(resets).toBeGreaterThan(0);
    expect(await readdir(f.dir.path)).toEqual([]);
  });

  test('the window bounds what is held ahead of a slow consumer; ranges stay inside it', async () => {
    const window = 4 * MiB;
    let landed = 0;
    let taken = 0;
    let ahead = 0;
    const ranges: number[] = [];
    f.server.setFault((req) => {
      const start = /^bytes=(\d+)-/.exec(String(req.headers.range))?.[1];
      if (start !== undefined) ranges.push(Number(start));
      return undefined;
    });
    const hash = createHash('sha256');
    await streamBlob(
      { ...spec(`${f.server.url}/blob`), size: data.length },
      {
        ...options(),
        window,
        onBytes: (n) => {
          landed += n;
          ahead = Math.max(ahead, landed - taken);
        },
      },
      async (chunk) => {
        hash.update(chunk);
        // A consumer slower than the network: a few turns of the event loop per block.
        for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
        taken += chunk.length;
      },
    );
    expect(hash.digest('hex')).toBe(hex);
    expect(ranges.length).toBeGreaterThan(6);
    // Bytes land in the window only below frontier + window (plus the socket read that crossed it).
    expect(ahead).toBeLessThanOrEqual(window + MiB + 6 * 64 * 1024);
  });

  test('one round of pieces fills the window: each connection asks for window / connections bytes', async () => {
    const sizes: number[] = [];
    f.server.setFault((req) => {
      const range = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range));
      if (range) sizes.push(Number(range[2]) - Number(range[1]) + 1);
      return undefined;
    });
    const hash = createHash('sha256');
    await streamBlob(
      { ...spec(`${f.server.url}/blob`), size: data.length },
      { ...options(), window: 12 * MiB },
      async (chunk) => {
        hash.update(chunk);
      },
    );
    expect(hash.digest('hex')).toBe(hex);
    // 12 MiB over 6 connections: the first piece is 2 MiB (not 1 MiB, half a round's share,
    // which doubled the requests) and none is larger; later ones shrink as the blob runs out
    // or are split off slower connections.
    expect(sizes[0]).toBe(2 * MiB);
    expect(Math.max(...sizes)).toBe(2 * MiB);
    expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(data.length);
  });

  test('blocks are lent: filled again once the consumer is done with them, the bytes still in order', async () => {
    const hash = createHash('sha256');
    const buffers = new Set<ArrayBufferLike>();
    let blocks = 0;
    await streamBlob(
      { ...spec(`${f.server.url}/blob`), size: data.length },
      { ...options(), window: 4 * MiB },
      async (chunk) => {
        buffers.add(chunk.buffer);
        blocks++;
        // The block is the consumer's until this resolves: later bytes must not land in it.
        await new Promise((resolve) => setImmediate(resolve));
        hash.update(chunk);
      },
    );
    expect(hash.digest('hex')).toBe(hex);
    expect(blocks).toBe(Math.ceil(data.length / MiB));
    // 25 blocks went through a 4 MiB window in a handful of buffers.
    expect(buffers.size).toBeLessThanOrEqual(4 + 6 + 1);
  });

  test('a server that ignores Range: one stream, handed over in order', async () => {
    f.server.setFault(() => ({ ignoreRange: true }));
    const hash = createHash('sha256');
    const result = await streamBlob(spec(`${f.server.url}/blob`), options(), async (chunk) => {
      hash.update(chunk);
    });
    expect(result.size).toBe(data.length);
    expect(hash.digest('hex')).toBe(hex);
  });

  test('a consumer that throws stops the download and its error is the one reported', async () => {
    let calls = 0;
    const failure = streamBlob(spec(`${f.server.url}/blob`), options(), async () => {
      calls++;
      if (calls === 2) throw new Error('not a tar archive');
    });
    await expect(failure).rejects.toThrow('not a tar archive');
    expect(calls).toBe(2);
    expect(await readdir(f.dir.path)).toEqual([]);
  });

  test('a consumer that fails on the last, short block (taken after the download) is reported too', async () => {
    await expect(
      streamBlob({ ...spec(`${f.server.url}/blob`), size: data.length }, options(), async (chunk) => {
        if (chunk.length < MiB) throw new Error('the archive is truncated');
      }),
    ).rejects.toThrow('the archive is truncated');
  });

  test('a download that fails rejects with its own error and keeps nothing', async () => {
    f.server.setFault((_req, res, n) => {
      if (n <= 3) return undefined;
      res.writeHead(500).end('down');
      return true;
    });
    const none = { ...FAST_RETRY, retries: 0 };
    await expect(
      streamBlob(
        { ...spec(`${f.server.url}/blob`), size: data.length },
        { ...options(), retry: none },
        async () => undefined,
      ),
    ).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_/) });
    expect(await readdir(f.dir.path)).toEqual([]);
  });
});

describe('openLocalBlob: local bytes through the download path', () => {
  const local = () => blobSpec(f.dir.path, hex, data.length, 'http://unused.invalid/');

  test('written in pieces, hashed while written, renamed onto its target only when the digest matches', async () => {
    const writer = await openLocalBlob(local(), data.length);
    for (let at = 0; at < data.length; at += 3 * MiB) await writer.write(data.subarray(at, at + 3 * MiB));
    expect(await writer.commit()).toEqual({ ok: true, size: data.length });
    const target = local().target;
    expect(sha256Hex(await readFile(target))).toBe(hex);
    expect((await lstat(target)).mode & 0o777).toBe(0o644);
    expect(await readdir(join(f.dir.path, 'ingest'))).toEqual([]);
  });

  test('other bytes of the same size never reach the target', async () => {
    const writer = await openLocalBlob(local(), data.length);
    const wrong = Buffer.from(data);
    wrong[5] = (wrong[5] ?? 0) ^ 1;
    await writer.write(wrong);
    expect(await writer.commit()).toEqual({
      ok: false,
      reason: `sha256 ${sha256Hex(wrong)}, expected ${hex}`,
    });
    await expect(lstat(local().target)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(join(f.dir.path, 'ingest'))).toEqual([]);
  });

  test('more bytes than announced, or a size other than the blob’s, are refused', async () => {
    const writer = await openLocalBlob(local(), 10);
    await expect(writer.write(Buffer.alloc(11))).rejects.toMatchObject({ code: 'ERR_SIZE_MISMATCH' });
    await writer.abort();
    const short = await openLocalBlob(local(), 10);
    await short.write(Buffer.alloc(10));
    expect(await short.commit()).toEqual({ ok: false, reason: `10 bytes, expected ${data.length}` });
    await expect(lstat(local().target)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('a planted link at the staging name is never followed', async () => {
    const outside = join(f.dir.path, 'outside');
    await writeFile(outside, 'keep me');
    const ingest = join(f.dir.path, 'ingest');
    await mkdir(ingest, { recursive: true });
    const paths = stagingPaths(ingest, local().digest);
    await symlink(outside, paths.data);
    const writer = await openLocalBlob(local(), data.length);
    await writer.write(data);
    expect(await writer.commit()).toEqual({ ok: true, size: data.length });
    expect(await readFile(outside, 'utf8')).toBe('keep me');
    expect((await lstat(local().target)).isFile()).toBe(true);
  });
});
