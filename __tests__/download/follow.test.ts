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
  id: 'entry-a',
  label: 'cache archive',
  ingestDir: join(f.dir.path, 'ingest'),
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
  test('parallel ranges, one reset connection, bytes handed over in order exactly once; nothing staged after', async () => {
    let resets = 0;
    f.server.setFault((req) =>
      req.headers.range !== 'bytes=0-' && resets++ === 0 ? { resetAfter: 100_000 } : undefined,
    );
    const hash = createHash('sha256');
    let taken = 0;
    const result = await streamBlob(spec(`${f.server.url}/blob`), options(), async (chunk) => {
      hash.update(chunk);
      taken += chunk.length;
    });
    expect(result).toEqual({ size: data.length, fetched: expect.any(Number) });
    expect(taken).toBe(data.length);
    expect(hash.digest('hex')).toBe(hex);
    expect(f.server.requests.length).toBeGreaterThan(2);
    expect(resets).toBeGreaterThan(0);
    expect(await readdir(join(f.dir.path, 'ingest'))).toEqual([]);
  });

  test('a consumer that throws stops the download and its error is the one reported', async () => {
    let calls = 0;
    const failure = streamBlob(spec(`${f.server.url}/blob`), options(), async () => {
      calls++;
      if (calls === 2) throw new Error('not a tar archive');
    });
    await expect(failure).rejects.toThrow('not a tar archive');
    expect(calls).toBe(2);
    expect(await readdir(join(f.dir.path, 'ingest'))).toEqual([]);
  });

  test('a leftover staged under the same id is never resumed: its bytes cannot be told apart', async () => {
    const ingest = join(f.dir.path, 'ingest');
    const paths = stagingPaths(ingest, { algorithm: 'sha256', hex: sha256Hex('stream:entry-a') });
    await mkdir(ingest, { recursive: true });
    await writeFile(paths.data, Buffer.alloc(8 * MiB, 7));
    await writeFile(
      paths.record,
      JSON.stringify({
        version: 1,
        digest: `sha256:${sha256Hex('stream:entry-a')}`,
        size: null,
        segments: [{ start: 0, pos: 8 * MiB, end: null }],
      }),
    );
    const hash = createHash('sha256');
    await streamBlob(spec(`${f.server.url}/blob`), options(), async (chunk) => void hash.update(chunk));
    expect(hash.digest('hex')).toBe(hex);
  });
});

describe('streamBlob, resumable: an id that names immutable bytes', () => {
  test('a failed download leaves its bytes for the next run, which fetches only the rest and hands over all', async () => {
    const resumable = { ...spec(`${f.server.url}/blob`), size: data.length, resumable: true };
    f.server.setFault((_req, res, n) => {
      if (n <= 3) return undefined;
      res.writeHead(500).end('down');
      return true;
    });
    const none = { ...FAST_RETRY, retries: 0 };
    await expect(
      streamBlob(resumable, { ...options(), retry: none }, async () => undefined),
    ).rejects.toMatchObject({
      code: expect.stringMatching(/^ERR_/),
    });
    expect((await readdir(join(f.dir.path, 'ingest'))).some((name) => name.endsWith('.partial'))).toBe(true);

    f.server.setFault(undefined);
    const hash = createHash('sha256');
    const result = await streamBlob(resumable, options(), async (chunk) => void hash.update(chunk));
    expect(hash.digest('hex')).toBe(hex);
    expect(result.size).toBe(data.length);
    expect(result.fetched).toBeLessThan(data.length);
    expect((await readdir(join(f.dir.path, 'ingest'))).filter((name) => name.endsWith('.partial'))).toEqual(
      [],
    );
  });

  test('a consumer that fails on the last, short block (read after the download) leaves nothing either', async () => {
    const resumable = { ...spec(`${f.server.url}/blob`), size: data.length, resumable: true };
    await expect(
      streamBlob(resumable, options(), async (chunk) => {
        if (chunk.length < MiB) throw new Error('the archive is truncated');
      }),
    ).rejects.toThrow('the archive is truncated');
    expect((await readdir(join(f.dir.path, 'ingest'))).filter((name) => name.endsWith('.partial'))).toEqual(
      [],
    );
  });

  test('a consumer that fails leaves nothing to resume', async () => {
    const resumable = { ...spec(`${f.server.url}/blob`), size: data.length, resumable: true };
    await expect(
      streamBlob(resumable, options(), async () => {
        throw new Error('not a tar archive');
      }),
    ).rejects.toThrow('not a tar archive');
    expect((await readdir(join(f.dir.path, 'ingest'))).filter((name) => name.endsWith('.partial'))).toEqual(
      [],
    );
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
