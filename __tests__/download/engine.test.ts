import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock } from '../../src/clock.js';
import { sha256Hex } from '../../src/digest.js';
import { type LoadWindow, MIN_SOLO_RATE } from '../../src/download/connection-gate.js';
import { fetchBlobs } from '../../src/download/engine.js';
import { saveProgress, stagingPaths } from '../../src/download/staging.js';
import type { ProgressSnapshot } from '../../src/download/types.js';
import { ModelPullError } from '../../src/errors.js';
import type { HttpClient } from '../../src/http/client.js';
import { type BlobServer, startBlobServer } from '../helpers/blob-server.js';
import { skippingClock } from '../helpers/clock.js';
import {
  blobSpec,
  engineFixture,
  engineOptions,
  FAST_RETRY,
  randomBlob,
  testClient,
} from '../helpers/engine.js';
import { startServer, type TestServer, tempDir } from '../helpers/http.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 3 * MiB + 12345;

describe('fetchBlobs', () => {
  const { data, hex } = randomBlob(SIZE);
  let server: BlobServer;
  let dir: { path: string; remove(): Promise<void> };
  let http: HttpClient;

  engineFixture(data, (f) => {
    ({ server, dir, http } = f);
  });

  const options = (extra: object = {}) => engineOptions(http, 8, extra);
  const spec = (size: number | undefined) => blobSpec(dir.path, hex, size, `${server.url}/blob`);

  async function expectTarget(target: string): Promise<void> {
    expect(sha256Hex(await readFile(target))).toBe(hex);
    expect(await readdir(join(dir.path, 'ingest'))).toEqual([]);
  }

  it('fetches over several ranges and verifies the streamed digest', async () => {
    const snapshots: ProgressSnapshot[] = [];
    const [result] = await fetchBlobs(
      [spec(SIZE)],
      options({ onProgress: (s: ProgressSnapshot) => snapshots.push(s) }),
    );
    await expectTarget(result!.target);
    expect(result).toMatchObject({ size: SIZE, downloadedBytes: SIZE, reused: false, replaced: false });
    const ranges = server.requests.map((r) => r.headers.range);
    expect(ranges.length).toBeGreaterThanOrEqual(8);
    expect(ranges.every((r) => r?.startsWith('bytes='))).toBe(true);
    const last = snapshots[snapshots.length - 1]!;
    expect(last.done).toBe(SIZE);
    expect(last.total).toBe(SIZE);
    expect(last.blobs[0]!.state).toBe('done');
  });

  describe('a large blob starts on one connection', () => {
    /** Every window of the main thread's load lasts long enough and shows `busy`. */
    const gate = (busy: number) => ({ load: () => () => ({ elapsedMs: 60, busy }), minSize: SIZE });
    /** The client sockets (ports) that carried the blob's ranges, each capped at `rate` if given. */
    function socketsUsed(rate?: number): Set<number> {
      const ports = new Set<number>();
      server.setFault((req) => {
        ports.add(req.socket.remotePort!);
        return rate ? { rate } : undefined;
      });
      return ports;
    }

    it('and stays on it, range after range in file order, while that saturates the thread', async () => {
      const ports = socketsUsed();
      const [result] = await fetchBlobs([spec(SIZE)], options({ gate: gate(1) }));
      await expectTarget(result!.target);
      expect(ports.size).toBe(1);
      const starts = server.requests.map((r) => Number(/^bytes=(\d+)-/.exec(r.headers.range ?? '')?.[1]));
      expect(starts[0]).toBe(0);
      expect(starts).toEqual([...starts].sort((a, b) => a - b));
      // Pieces sized for one connection: the rest halves with each request, down to minSplit.
      expect(server.requests.length).toBeGreaterThan(2);
      expect(server.requests.length).toBeLessThan(12);
    });

    it('and opens the others once the thread shows room', async () => {
      const ports = socketsUsed();
      const [result] = await fetchBlobs([spec(SIZE)], options({ gate: gate(0.05) }));
      await expectTarget(result!.target);
      expect(ports.size).toBeGreaterThan(1);
    });

    it('and opens the others on a busy thread when the one connection is capped below the floor', async () => {
      // Windows in real time, the thread always saturated (other work): only the rate can open it.
      const busy: LoadWindow = () => {
        const start = performance.now();
        return () => ({ elapsedMs: performance.now() - start, busy: 1 });
      };
      // At 1 MiB/s the blob needs 3 s on one connection: the floor opens the gate after 2.
      const ports = socketsUsed(MiB);
      const [result] = await fetchBlobs(
        [spec(SIZE)],
        // Real time: the gate's watch sleeps, and a skipping clock would age the capped bodies.
        options({ clock: systemClock, gate: { load: busy, minSize: SIZE, minRate: MIN_SOLO_RATE } }),
      );
      await expectTarget(result!.target);
      expect(ports.size).toBeGreaterThan(1);
    });

    it('only from the gate size: a smaller blob opens all its connections at once', async () => {
      const ports = socketsUsed();
      const [result] = await fetchBlobs([spec(SIZE)], options({ gate: { ...gate(1), minSize: SIZE + 1 } }));
      await expectTarget(result!.target);
      expect(ports.size).toBeGreaterThan(1);
    });
  });

  it('creates the folders of a new store 0755 whatever the umask', async () => {
    const previous = process.umask(0o077);
    try {
      const blob = {
        ...spec(SIZE),
        target: join(dir.path, 'new', 'blobs', 'b'),
        ingestDir: join(dir.path, 'new', 'ingest'),
      };
      await fetchBlobs([blob], options());
      for (const folder of ['new', 'new/blobs']) {
        expect((await stat(join(dir.path, folder))).mode & 0o777).toBe(0o755);
      }
      expect((await stat(blob.target)).mode & 0o777).toBe(0o644);
    } finally {
      process.umask(previous);
    }
  });

  it('learns the size from Content-Range when the source does not know it', async () => {
    const [result] = await fetchBlobs([spec(undefined)], options());
    await expectTarget(result!.target);
    expect(server.requests[0]!.headers.range).toBe('bytes=0-');
    expect(server.requests.length).toBeGreaterThan(1);
  });

  it('reuses a verified target without a request, and replaces a tampered one', async () => {
    await fetchBlobs([spec(SIZE)], options());
    server.requests.length = 0;
    const [again] = await fetchBlobs([spec(SIZE)], options());
    expect(again).toMatchObject({ reused: true, downloadedBytes: 0 });
    expect(server.requests).toHaveLength(0);

    const tampered = Buffer.from(data);
    tampered[100] = tampered[100]! ^ 1;
    await writeFile(again!.target, tampered);
    const [bySize] = await fetchBlobs([spec(SIZE)], options({ verify: 'size' }));
    expect(bySize!.reused).toBe(true); // `size` trusts a file of the right length
    const [full] = await fetchBlobs([spec(SIZE)], options());
    expect(full).toMatchObject({ reused: false, replaced: true, downloadedBytes: SIZE });
    await expectTarget(full!.target);
  });

  it('survives connection resets mid-body', async () => {
    server.setFault((_req, _res, n) => (n <= 3 ? { resetAfter: 100 * KiB } : undefined));
    const [result] = await fetchBlobs([spec(SIZE)], options({ connections: 1 }));
    await expectTarget(result!.target);
    // Each retry resumes where the reset cut (minus what the reset lost in flight), so no
    // byte arrives twice: four requests with growing starts, the file fetched exactly once.
    const starts = server.requests.map((r) => Number(/^bytes=(\d+)-(\d+)$/.exec(r.headers.range ?? '')?.[1]));
    expect(starts).toHaveLength(4);
    expect(starts[0]).toBe(0);
    for (let i = 1; i < 4; i++) {
      expect(starts[i]).toBeGreaterThan(starts[i - 1]!);
      expect(starts[i]).toBeLessThanOrEqual(i * 100 * KiB);
    }
    expect(result!.downloadedBytes).toBe(SIZE);
  });

  it('retries a stalled connection after the stall timeout', async () => {
    const impatient = testClient({ stallTimeoutMs: 300 });
    try {
      server.setFault((_req, _res, n) => (n === 1 ? { stallAfter: 256 * KiB } : undefined));
      const [result] = await fetchBlobs([spec(SIZE)], options({ connections: 1, http: impatient }));
      await expectTarget(result!.target);
      expect(server.requests[1]!.headers.range).toBe(`bytes=${256 * KiB}-${SIZE - 1}`);
    } finally {
      await impatient.close();
    }
  });

  it('discards corrupt bytes and fetches the blob once more from scratch', async () => {
    server.setFault((_req, _res, n) => (n === 1 ? { corruptAt: 5 } : undefined));
    const [result] = await fetchBlobs([spec(SIZE)], options({ connections: 1 }));
    await expectTarget(result!.target);
    expect(result!.downloadedBytes).toBe(2 * SIZE);
    expect(server.requests.map((r) => r.headers.range)).toEqual([
      `bytes=0-${SIZE - 1}`,
      `bytes=0-${SIZE - 1}`,
    ]);
  });

  it('progress never passes the size: bytes fetched again after a mismatch are traffic', async () => {
    // Each attempt is held mid-way until the progress ticker has shown it there: the first at
    // half the blob (it is corrupt, so a second attempt follows), the second at a quarter, which
    // the ticker must show as progress going back. No rate or timing decides what is seen.
    const shown = (test: (done: number) => boolean) => {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      return { test, resolve, promise };
    };
    const HALF = Math.floor(SIZE / 2);
    let first = 0;
    const halfway = shown((done) => done >= HALF);
    const back = shown((done) => first > 0 && done < first);
    server.setFault((_req, _res, n) =>
      n === 1
        ? { corruptAt: 5, hold: { after: HALF, release: halfway.promise } }
        : { hold: { after: HALF / 2, release: back.promise } },
    );
    const seen: ProgressSnapshot[] = [];
    const onProgress = (s: ProgressSnapshot) => {
      seen.push(s);
      const done = s.blobs[0]!.done;
      if (halfway.test(done) && first === 0) {
        first = done;
        halfway.resolve();
      }
      if (back.test(done)) back.resolve();
    };
    const [result] = await fetchBlobs(
      [spec(SIZE)],
      options({ connections: 1, onProgress, progressIntervalMs: 20 }),
    );
    expect(result!.downloadedBytes).toBe(2 * SIZE);
    const done = seen.map((s) => s.blobs[0]!.done);
    expect(Math.max(...done)).toBe(SIZE);
    // It went back to the start of the second attempt, then up again.
    expect(done.some((d, i) => i > 0 && d < done[i - 1]!)).toBe(true);
    expect(seen.every((s) => s.done <= s.total)).toBe(true);
  });

  it('a resumed blob starts its progress at the bytes already staged', async () => {
    server.setFault(() => ({ stallAfter: 2 * MiB }));
    const impatient = testClient({ stallTimeoutMs: 200 });
    const first = await fetchBlobs(
      [spec(SIZE)],
      options({ connections: 1, http: impatient, retry: { ...FAST_RETRY, retries: 0 } }),
    ).catch((e: unknown) => e);
    await impatient.close();
    expect(first).toBeInstanceOf(ModelPullError);
    server.setFault(() => ({ rate: 2 * MiB }));
    const seen: ProgressSnapshot[] = [];
    await fetchBlobs(
      [spec(SIZE)],
      options({ connections: 1, onProgress: (s: ProgressSnapshot) => seen.push(s), progressIntervalMs: 20 }),
    );
    const downloading = seen.filter((s) => s.blobs[0]!.state === 'downloading');
    expect(downloading.length).toBeGreaterThan(0);
    // Every snapshot of the download shows at least what the first run staged.
    expect(Math.min(...downloading.map((s) => s.blobs[0]!.done))).toBeGreaterThanOrEqual(2 * MiB);
  });

  it('fails with both digests and the host after a second mismatch, leaving nothing behind', async () => {
    server.setFault(() => ({ corruptAt: SIZE - 1 }));
    const target = spec(SIZE).target;
    const error = await fetchBlobs([spec(SIZE)], options()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelPullError);
    const corrupted = Buffer.from(data);
    corrupted[SIZE - 1] = corrupted[SIZE - 1]! ^ 0xff;
    expect((error as Error).message).toBe(
      `test blob: sha256 mismatch from ${new URL(server.url).host}: expected ${hex}, got ${sha256Hex(corrupted)}`,
    );
    await expect(readFile(target)).rejects.toThrow('ENOENT');
    expect(await readdir(join(dir.path, 'ingest'))).toEqual([]);
  });

  it('starts over as one stream when the server ignores Range', async () => {
    server.setFault(() => ({ ignoreRange: true }));
    const [result] = await fetchBlobs([spec(SIZE)], options());
    await expectTarget(result!.target);
    // Every connection's range got the whole body; a single stream then finishes the blob.
    expect(server.requests.length).toBeLessThanOrEqual(9);
    expect(result!.size).toBe(SIZE);
  });

  it('waits out 503 and 429 bursts, honouring Retry-After', async () => {
    server.setFault((_req, res, n) => {
      if (n > 4) return undefined;
      if (n <= 2) res.writeHead(503).end('busy');
      else res.writeHead(429, { 'retry-after': '0' }).end('slow down');
      return true;
    });
    const [result] = await fetchBlobs([spec(SIZE)], options({ connections: 1 }));
    await expectTarget(result!.target);
    expect(server.requests).toHaveLength(5);
  });

  it('gives up after the retry budget with the last error', async () => {
    server.setFault((_req, res) => {
      res.writeHead(503).end('down for maintenance');
      return true;
    });
    await expect(fetchBlobs([spec(SIZE)], options({ connections: 1 }))).rejects.toThrow(
      `test blob: giving up after 5 failed attempts: HTTP 503 from ${server.url}/blob: down for maintenance`,
    );
    expect(server.requests).toHaveLength(5);
  });

  it('treats 416 on a fully staged blob of unknown size as complete', async () => {
    const blob = spec(undefined);
    const paths = stagingPaths(blob.ingestDir, blob.digest);
    await mkdir(blob.ingestDir, { recursive: true });
    await writeFile(paths.data, data);
    saveProgress(paths, blob.digest, undefined, [{ start: 0, pos: SIZE, end: Number.POSITIVE_INFINITY }]);
    const [result] = await fetchBlobs([blob], options());
    await expectTarget(result!.target);
    expect(server.requests.map((r) => r.headers.range)).toEqual([`bytes=${SIZE}-`]);
    expect(result!.downloadedBytes).toBe(0);
  });

  it('refuses plain http to a non-loopback host before any request', async () => {
    const blob = blobSpec(dir.path, hex, SIZE, 'http://models.example.com/blob');
    await expect(fetchBlobs([blob], options())).rejects.toThrow(
      'refusing plain http to models.example.com (http://models.example.com/blob); use https or set insecure',
    );
  });

  it('checks free disk space before the first byte', async () => {
    const huge = 2 ** 50;
    const error = await fetchBlobs([spec(huge)], options()).catch((e: unknown) => e);
    expect((error as ModelPullError).code).toBe('ERR_DISK_SPACE');
    expect((error as Error).message).toMatch(
      /^not enough disk space under .+: 1073741824\.0 MiB to download, \d+\.\d MiB free$/,
    );
    expect(server.requests).toHaveLength(0);
  });
});

describe('signed URLs on another origin', () => {
  const { data, hex } = randomBlob(2 * MiB);
  let cdn: BlobServer;
  let registry: TestServer;
  let dir: { path: string; remove(): Promise<void> };
  let signature = 1;

  beforeAll(async () => {
    // The CDN honours only the current signature; after two requests the first one "expires".
    cdn = await startBlobServer(data, (req, res, n) => {
      if (n > 2) signature = 2;
      const sig = new URL(req.url ?? '/', 'http://x').searchParams.get('sig');
      if (sig !== String(signature)) {
        res.writeHead(403).end('signature expired');
        return true;
      }
      return undefined;
    });
    registry = await startServer((req, res) => {
      if (req.headers.authorization !== 'Bearer registry-secret') return void res.writeHead(401).end();
      res.writeHead(307, { location: `${cdn.url}/blob?sig=${signature}` }).end();
    });
  });
  afterAll(async () => {
    await Promise.all([cdn.close(), registry.close()]);
  });

  it('refreshes an expired URL through the source and never sends the token to the CDN', async () => {
    dir = await tempDir();
    const http = testClient();
    let locates = 0;
    const blob = blobSpec(dir.path, hex, data.length, async () => {
      locates++;
      return {
        url: `${registry.url}/v2/x/blobs/sha256:${hex}`,
        credentials: { origin: registry.origin, headers: { authorization: 'Bearer registry-secret' } },
      };
    });
    try {
      const [result] = await fetchBlobs([blob], {
        http,
        concurrency: 1,
        connections: 8,
        verify: 'full',
        retry: FAST_RETRY,
        clock: skippingClock(),
        minSplit: 64 * KiB,
      });
      expect(sha256Hex(await readFile(result!.target))).toBe(hex);
      expect(locates).toBeGreaterThanOrEqual(2);
      expect(locates).toBeLessThan(8); // refreshes are shared, not one per connection
      expect(cdn.requests.some((r) => r.url.includes('sig=1'))).toBe(true);
      expect(cdn.requests.some((r) => r.url.includes('sig=2'))).toBe(true);
      expect(cdn.requests.filter((r) => r.headers.authorization !== undefined)).toEqual([]);
      expect(registry.requests.every((r) => r.headers.authorization === 'Bearer registry-secret')).toBe(true);
    } finally {
      await http.close();
      await dir.remove();
    }
  });
});

describe('one resolve per blob', () => {
  const { data, hex } = randomBlob(8 * MiB + 777);
  let cdn: BlobServer;
  let hub: TestServer;
  let expireAfter = Number.POSITIVE_INFINITY;
  let signature = 1;

  beforeAll(async () => {
    // The CDN honours only the latest signature; from `expireAfter` requests on, a new one.
    cdn = await startBlobServer(data, (req, res, n) => {
      if (n > expireAfter) signature = 2;
      const sig = new URL(req.url ?? '/', 'http://x').searchParams.get('sig');
      if (sig !== String(signature)) {
        res.writeHead(403).end('signature expired');
        return true;
      }
      return undefined;
    });
    // The Hub's resolve/: a 302 to the CDN, freshly signed each time.
    hub = await startServer((_req, res) => {
      res.writeHead(302, { location: `${cdn.url}/blob?sig=${signature}` }).end();
    });
  });
  afterAll(async () => {
    await Promise.all([cdn.close(), hub.close()]);
  });

  async function pull(): Promise<void> {
    const dir = await tempDir();
    const http = testClient();
    try {
      const [result] = await fetchBlobs(
        [blobSpec(dir.path, hex, data.length, `${hub.url}/resolve/main/w.bin`)],
        {
          http,
          concurrency: 1,
          connections: 16,
          verify: 'full',
          retry: FAST_RETRY,
          clock: skippingClock(),
          minSplit: 64 * KiB,
        },
      );
      expect(sha256Hex(await readFile(result!.target))).toBe(hex);
    } finally {
      await http.close();
      await dir.remove();
    }
  }

  it('asks the Hub once and shares its CDN URL with all sixteen connections', async () => {
    await pull();
    expect(hub.requests).toHaveLength(1);
    // Every range went to the CDN, each with the one signed URL.
    expect(cdn.requests.length).toBeGreaterThanOrEqual(16);
    expect(cdn.requests.every((r) => r.url === '/blob?sig=1')).toBe(true);
  });

  it('asks the Hub once more when the CDN URL expires, for every connection', async () => {
    hub.requests.length = 0;
    cdn.requests.length = 0;
    expireAfter = 6;
    await pull();
    expect(hub.requests).toHaveLength(2);
    expect(cdn.requests.filter((r) => r.url === '/blob?sig=2').length).toBeGreaterThan(0);
  });
});

describe('many small files', () => {
  const blobs = Array.from({ length: 6 }, () => randomBlob(20 * KiB + 1));
  let server: TestServer;
  let inFlight = 0;
  let most = 0;
  const held: (() => void)[] = [];

  beforeAll(async () => {
    // Each response waits until four requests are open at once (or a second went by), so files
    // fetched one after another show up as one request at a time.
    server = await startServer((req, res) => {
      const blob = blobs[Number(req.url?.slice(1))]!;
      inFlight++;
      most = Math.max(most, inFlight);
      const answer = () => {
        inFlight--;
        res.writeHead(200, { 'content-length': blob.data.length }).end(blob.data);
      };
      held.push(answer);
      const release = () => {
        for (const a of held.splice(0)) a();
      };
      if (inFlight >= 4) release();
      else setTimeout(release, 1000);
    });
  });
  afterAll(() => server.close());

  it('run side by side on the connections of the blobs allowed at once, never more', async () => {
    const dir = await tempDir();
    const http = testClient();
    try {
      const specs = blobs.map((b, i) => ({
        ...blobSpec(dir.path, b.hex, b.data.length, `${server.url}/${i}`),
      }));
      const results = await fetchBlobs(specs, {
        http,
        // One large blob at a time, four connections: four files too small to split at once.
        concurrency: 1,
        connections: 4,
        verify: 'full',
        retry: FAST_RETRY,
        clock: skippingClock(),
        minSplit: 64 * KiB,
      });
      for (const [i, result] of results.entries()) {
        expect(sha256Hex(await readFile(result.target))).toBe(blobs[i]!.hex);
      }
      expect(server.requests).toHaveLength(6);
      expect(most).toBe(4);
    } finally {
      await http.close();
      await dir.remove();
    }
  });
});
