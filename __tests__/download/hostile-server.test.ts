import { readdir, readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256Hex } from '../../src/digest.js';
import { fetchBlobs } from '../../src/download/engine.js';
import { isModelPullError } from '../../src/errors.js';
import type { HttpClient } from '../../src/http/client.js';
import { DEFAULT_RETRY_POLICY, describeRetry, type RetryEvent } from '../../src/http/retry.js';
import type { BlobServer } from '../helpers/blob-server.js';
import { startTs } from '../helpers/child.js';
import { type SkippingClock, skippingClock } from '../helpers/clock.js';
import { blobSpec, engineFixture, FAST_RETRY, randomBlob, testClient } from '../helpers/engine.js';
import { startServer } from '../helpers/http.js';

const KiB = 1024;
const SIZE = 512 * KiB + 99;
const CHILD = fileURLToPath(new URL('./fixtures/engine-child.ts', import.meta.url));

/** Answers 206 for bytes from `from`, whatever was asked. */
function wrongRange(res: ServerResponse, data: Buffer, from: number): true {
  res.writeHead(206, {
    'content-range': `bytes ${from}-${data.length - 1}/${data.length}`,
    'content-length': data.length - from,
  });
  res.end(data.subarray(from));
  return true;
}

describe('hostile servers (issue 10)', () => {
  const { data, hex } = randomBlob(SIZE);
  let server: BlobServer;
  let dir: { path: string; remove(): Promise<void> };
  let http: HttpClient;
  let clock: SkippingClock;
  let events: RetryEvent[];
  engineFixture(data, (f) => {
    ({ server, dir, http } = f);
    clock = skippingClock();
    events = [];
  });
  const options = (extra: object = {}) => ({
    http,
    concurrency: 2,
    connections: 1,
    verify: 'full' as const,
    retry: { ...FAST_RETRY, onRetry: (e: RetryEvent) => events.push(e) },
    clock,
    minSplit: 64 * KiB,
    ...extra,
  });
  const spec = (size?: number) => blobSpec(dir.path, hex, size, `${server.url}/blob`);
  const host = () => new URL(server.url).host;

  it('retries a range answered with the wrong Content-Range, then takes the right bytes', async () => {
    server.setFault((_req, res, n) => (n <= 2 ? wrongRange(res, data, 5) : undefined));
    const [result] = await fetchBlobs([spec(SIZE)], options());
    expect(sha256Hex(await readFile(result!.target))).toBe(hex);
    expect(server.requests.map((r) => r.headers.range)).toEqual(Array(3).fill(`bytes=0-${SIZE - 1}`));
    expect(events.map((e) => [e.host, e.cause, e.code, e.attempt, e.max, e.subject])).toEqual([
      [host(), 'wrong byte range', 'ERR_BAD_RANGE', 1, 4, 'test blob'],
      [host(), 'wrong byte range', 'ERR_BAD_RANGE', 2, 4, 'test blob'],
    ]);
  });

  it('gives up on a server that keeps answering the wrong range, naming it', async () => {
    server.setFault((_req, res) => wrongRange(res, data, 5));
    const error = await fetchBlobs([spec(SIZE)], options()).catch((e: unknown) => e);
    expect(isModelPullError(error, 'ERR_RETRIES_EXHAUSTED')).toBe(true);
    expect((error as Error).message).toBe(
      `test blob: giving up after 5 failed attempts: ${host()} answered Content-Range "bytes 5-${SIZE - 1}/${SIZE}" to a request for bytes from 0`,
    );
    expect(server.requests).toHaveLength(5);
    expect(clock.sleeps).toHaveLength(4);
  });

  it('survives a wrong-range answer that arrived whole (no unhandled error ends the process)', async () => {
    // A small body is in memory before the engine looks at its headers: dropping it used to
    // emit an 'error' nobody listened to, which killed the process and every other download.
    const bad = randomBlob(2 * KiB);
    server.setFault((req, res) => (req.url === '/bad' ? wrongRange(res, bad.data, 7) : undefined));
    const blob = (name: string, h: string, url: string) => ({
      url,
      hex: h,
      label: name,
      target: join(dir.path, 'files', name),
      ingestDir: join(dir.path, 'files', '.ingest'),
    });
    const job = {
      blobs: [blob('good.bin', hex, `${server.url}/good`), blob('bad.bin', bad.hex, `${server.url}/bad`)],
    };
    const child = await startTs(CHILD, [JSON.stringify(job)]).done;
    expect(child.stderr).not.toContain('Unhandled');
    expect(child.code).toBe(0);
    expect(JSON.parse(child.stdout)).toEqual([
      { ok: true, downloadedBytes: SIZE, reused: false },
      {
        ok: false,
        code: 'ERR_RETRIES_EXHAUSTED',
        message: `bad.bin: giving up after 3 failed attempts: ${host()} answered Content-Range "bytes 7-${2 * KiB - 1}/${2 * KiB}" to a request for bytes from 0`,
      },
    ]);
    expect(sha256Hex(await readFile(join(dir.path, 'files', 'good.bin')))).toBe(hex);
  });

  it('cuts a body that trickles below the minimum rate and resumes it on a new request', async () => {
    const slow = testClient({ minRate: { bytes: 32 * KiB, windowMs: 200 } });
    let trickled = 0;
    server.setFault((_req, res, n) => {
      if (n > 1) return undefined;
      res.writeHead(206, { 'content-range': `bytes 0-${SIZE - 1}/${SIZE}`, 'content-length': SIZE });
      // One byte every 10 ms: never silent long enough for the stall timeout (5 s).
      const timer = setInterval(() => {
        if (res.destroyed) return clearInterval(timer);
        res.write(data.subarray(trickled, trickled + 1));
        trickled++;
      }, 10);
      res.on('close', () => clearInterval(timer));
      return true;
    });
    try {
      const [result] = await fetchBlobs([spec(SIZE)], options({ http: slow }));
      expect(sha256Hex(await readFile(result!.target))).toBe(hex);
      const resumedAt = Number(/^bytes=(\d+)-/.exec(server.requests[1]!.headers.range ?? '')?.[1]);
      expect(resumedAt).toBeGreaterThan(0);
      expect(resumedAt).toBeLessThanOrEqual(trickled);
      expect(events.map((e) => [e.cause, e.code, e.attempt])).toEqual([['too slow', 'ERR_TOO_SLOW', 1]]);
    } finally {
      await slow.close();
    }
  });

  it('fails a server that only ever trickles with a clear error, after the retries', async () => {
    const slow = testClient({ minRate: { bytes: 32 * KiB, windowMs: 100 } });
    server.setFault((req, res) => {
      const from = Number(/^bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
      res.writeHead(206, {
        'content-range': `bytes ${from}-${SIZE - 1}/${SIZE}`,
        'content-length': SIZE - from,
      });
      let at = from;
      const timer = setInterval(() => {
        if (!res.destroyed) res.write(data.subarray(at, ++at));
      }, 10);
      res.on('close', () => clearInterval(timer));
      return true;
    });
    try {
      const error = await fetchBlobs(
        [spec(SIZE)],
        options({ http: slow, retry: { ...FAST_RETRY, retries: 1 } }),
      ).catch((e: unknown) => e);
      expect(isModelPullError(error, 'ERR_RETRIES_EXHAUSTED')).toBe(true);
      expect((error as Error).message).toMatch(
        new RegExp(
          `^test blob: giving up after 2 failed attempts: ${host()} sent \\d+ B in 0\\.1 s, below the minimum of 32\\.0 KiB$`,
        ),
      );
      expect(server.requests).toHaveLength(2);
    } finally {
      await slow.close();
    }
  });

  it('checks the disk for a URL whose size it learns from the server, before the first byte', async () => {
    const huge = 2 ** 50;
    server.setFault((_req, res) => {
      res.writeHead(206, { 'content-range': `bytes 0-${huge - 1}/${huge}`, 'content-length': huge });
      res.write(data.subarray(0, 64 * KiB));
      return true;
    });
    const blob = spec(); // a URL line: the size is the server's word
    const error = await fetchBlobs([blob], options()).catch((e: unknown) => e);
    expect(isModelPullError(error, 'ERR_DISK_SPACE')).toBe(true);
    expect((error as Error).message).toMatch(
      /^test blob: not enough disk space under .+: 1073741824\.0 MiB to download, \d+\.\d MiB free$/,
    );
    expect(server.requests).toHaveLength(1);
    expect(await readdir(blob.ingestDir)).toEqual([]);
  });

  it('says why it waits on every retry, and gives up on a refused connection within seconds', async () => {
    const gone = await startServer(() => undefined);
    await gone.close(); // nothing listens on its port now
    const url = `${gone.url}/blob`;
    const error = await fetchBlobs(
      [blobSpec(dir.path, hex, SIZE, url)],
      options({ retry: { ...DEFAULT_RETRY_POLICY, onRetry: (e: RetryEvent) => events.push(e) } }),
    ).catch((e: unknown) => e);
    const where = new URL(gone.url).host;
    expect((error as Error).message).toBe(
      `test blob: giving up after 3 failed attempts: network error from ${url}: connect ECONNREFUSED ${where}`,
    );
    expect(events.map((e) => [e.host, e.cause, e.code, e.attempt, e.max])).toEqual([
      [where, 'connection refused', 'ERR_CONNECTION_REFUSED', 1, 2],
      [where, 'connection refused', 'ERR_CONNECTION_REFUSED', 2, 2],
    ]);
    expect(describeRetry(events[0]!)).toBe(
      `${where}: connection refused, retry 1/2 in ${(clock.sleeps[0]! / 1000).toFixed(1)} s (test blob)`,
    );
    // Waits of the default policy (1 s, then 2 s, halved by jitter at most): seconds, not a minute.
    expect(clock.sleeps.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(3000);
  });

  it('fails at once on a host name that does not resolve', async () => {
    // glibc refuses an empty label without asking a DNS server: no traffic leaves the machine.
    const error = await fetchBlobs(
      [blobSpec(dir.path, hex, SIZE, 'https://model-pull..test/blob')],
      options(),
    ).catch((e: unknown) => e);
    expect(isModelPullError(error, 'ERR_DNS')).toBe(true);
    expect((error as Error).message).toBe(
      'test blob: network error from https://model-pull..test/blob: model-pull..test does not resolve (ENOTFOUND)',
    );
    expect(events).toEqual([]);
  });
});
