import { readFileSync, readlinkSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256Hex } from '../../src/digest.js';
import { fetchBlobs } from '../../src/download/engine.js';
import { stagingPaths } from '../../src/download/staging.js';
import { isModelPullError } from '../../src/errors.js';
import type { HttpClient } from '../../src/http/client.js';
import { MemoryLogger } from '../../src/report/logger.js';
import { type BlobServer, startBlobServer } from '../helpers/blob-server.js';
import { startTs, type TsChild, waitFor } from '../helpers/child.js';
import { virtualClock } from '../helpers/clock.js';
import {
  blobSpec,
  engineFixture,
  engineOptions,
  FAST_RETRY,
  randomBlob,
  recordedBytes,
} from '../helpers/engine.js';
import { tempDir } from '../helpers/http.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 768 * KiB + 5;
const CHILD = fileURLToPath(new URL('./fixtures/engine-child.ts', import.meta.url));

/** This machine as a lease names it (host, boot id, pid namespace). */
function here() {
  return {
    host: hostname(),
    boot: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    pidns: readlinkSync('/proc/self/ns/pid'),
  };
}

describe('a store shared with other processes (issue 10)', () => {
  const { data, hex } = randomBlob(SIZE);
  let server: BlobServer;
  let dir: { path: string; remove(): Promise<void> };
  let http: HttpClient;
  engineFixture(data, (f) => {
    ({ server, dir, http } = f);
  });
  const spec = () => blobSpec(dir.path, hex, SIZE, `${server.url}/blob`);
  const options = (extra: object = {}) => engineOptions(http, 4, extra);
  /** A lease file at the blob's staging entry, as another process would have left it. */
  async function plantLease(content: object | string, ageMs = 0, now = Date.now()): Promise<string> {
    const blob = spec();
    await mkdir(blob.ingestDir, { recursive: true });
    const path = stagingPaths(blob.ingestDir, blob.digest).lease;
    await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
    const at = new Date(now - ageMs);
    await utimes(path, at, at);
    return path;
  }

  it('waits for a live lease, says for whom, and takes it over once its heartbeat stops', async () => {
    // pid 1 is alive but is no model-pull: it never refreshes the lease (pid reuse, a planted file).
    // The lease's age is judged on a clock that moves only by the engine's own waits: however
    // slow this machine is, the lease is fresh when first seen and stale after 2 s of polling.
    const clock = virtualClock();
    const lease = await plantLease({ ...here(), pid: 1, token: 'not-ours' }, 0, clock.now());
    const log = new MemoryLogger();
    const [result] = await fetchBlobs(
      [spec()],
      options({ log, clock, lease: { staleMs: 2000, pollMs: 100, heartbeatMs: 50 } }),
    );
    expect(sha256Hex(await readFile(result!.target))).toBe(hex);
    expect(log.lines).toEqual([
      `waiting for another model-pull (pid 1 on ${hostname()}) to finish test blob`,
    ]);
    // Polled until the heartbeat was older than staleMs, then taken over: 21 waits of 100 ms.
    expect(clock.sleeps.filter((ms) => ms === 100)).toHaveLength(21);
    await expect(stat(lease)).rejects.toThrow('ENOENT');
  });

  it('takes over at once a lease whose holder on this machine is gone, or whose heartbeat is old', async () => {
    for (const [content, age] of [
      [{ ...here(), pid: 2 ** 22 + 7, token: 'dead' }, 0], // no such pid: the holder was killed
      [{ ...here(), pid: 0, token: 'group' }, 0], // 0 and -1 name process groups, never a holder
      [{ ...here(), pid: -1, token: 'all' }, 0],
      [{ host: 'runner-9', boot: 'b', pidns: 'p', pid: 1, token: 'far' }, 60_000], // another host, silent
      ['1', 60_000], // an earlier version's bare pid: pid 1 lives, but the lease is a minute old
      ['garbage', 60_000],
    ] as const) {
      await plantLease(content, age);
      const log = new MemoryLogger();
      const [result] = await fetchBlobs([spec()], options({ log }));
      expect(result!.reused).toBe(false);
      expect(log.lines).toEqual([]);
      await import('node:fs/promises').then((fs) => fs.rm(result!.target));
    }
  });

  it('gives up waiting after the longest wait, naming the holder and the lease file', async () => {
    const lease = await plantLease({ host: 'runner-9', boot: 'b', pidns: 'p', pid: 4242, token: 't' });
    const error = await fetchBlobs(
      [spec()],
      options({ lease: { staleMs: 3_600_000, pollMs: 250, maxWaitMs: 1000 } }),
    ).catch((e: unknown) => e);
    expect(isModelPullError(error, 'ERR_STAGING_LOCK')).toBe(true);
    expect((error as Error).message).toBe(
      `test blob: gave up after 1 s waiting for another model-pull (pid 4242 on runner-9) to finish test blob; if it is no longer running, delete ${lease}`,
    );
    expect(server.requests).toHaveLength(0);
  });

  it('keeps the old file when the new download fails: a target is only replaced by the rename', async () => {
    const blob = spec();
    // The previous version of the file: same size, other bytes, so only its hash tells them apart.
    const old = Buffer.alloc(SIZE, 0x2a);
    await mkdir(join(blob.target, '..'), { recursive: true });
    await writeFile(blob.target, old);
    server.setFault((_req, res) => {
      res.writeHead(503).end('down');
      return true;
    });
    const error = await fetchBlobs([blob], options({ retry: { ...FAST_RETRY, retries: 1 } })).catch(
      (e: unknown) => e,
    );
    expect(isModelPullError(error, 'ERR_RETRIES_EXHAUSTED')).toBe(true);
    expect(sha256Hex(await readFile(blob.target))).toBe(sha256Hex(old));
    server.setFault(undefined);
    const [result] = await fetchBlobs([blob], options());
    expect(result).toMatchObject({ replaced: true, downloadedBytes: SIZE });
    expect(sha256Hex(await readFile(blob.target))).toBe(hex);
  });

  describe('never writes through a link planted in the staging area or at the target', () => {
    let outside: string;
    const before = Buffer.from('a file outside the store');
    beforeEach(async () => {
      outside = join(dir.path, 'outside.txt');
      await writeFile(outside, before, { mode: 0o600 });
      await chmod(outside, 0o600);
    });
    async function expectOutsideUntouched(): Promise<void> {
      expect(await readFile(outside)).toEqual(before);
      expect((await stat(outside)).mode & 0o777).toBe(0o600);
    }

    it.each([
      ['the data file, with a record to resume', 'data', true],
      ['the data file, without a record', 'data', false],
      // Temporary names are random now (writeFileAtomic): a link at the name once used is left alone.
      ["the record's temporary file", 'tmp', false],
    ])('%s', async (_what, which, withRecord) => {
      const blob = spec();
      const paths = stagingPaths(blob.ingestDir, blob.digest);
      await mkdir(blob.ingestDir, { recursive: true });
      await symlink(outside, which === 'data' ? paths.data : `${paths.record}.tmp`);
      if (withRecord) {
        const record = {
          version: 1,
          digest: `sha256:${hex}`,
          size: SIZE,
          segments: [{ start: 0, pos: 10, end: SIZE }],
        };
        await writeFile(paths.record, JSON.stringify(record));
      }
      const [result] = await fetchBlobs([blob], options({ flushBytes: 64 * KiB }));
      await expectOutsideUntouched();
      expect((await lstat(blob.target)).isFile()).toBe(true);
      expect(sha256Hex(await readFile(blob.target))).toBe(hex);
      expect(result!.downloadedBytes).toBe(SIZE);
      expect(await readdir(blob.ingestDir)).toEqual(which === 'tmp' ? [basename(`${paths.record}.tmp`)] : []);
    });

    it('a link at the target, even to the right bytes, is replaced by a verified file', async () => {
      const blob = spec();
      await writeFile(outside, data);
      await mkdir(join(blob.target, '..'), { recursive: true });
      await symlink(outside, blob.target);
      const [result] = await fetchBlobs([blob], options());
      expect(result).toMatchObject({ reused: false, replaced: true, downloadedBytes: SIZE });
      expect((await lstat(blob.target)).isFile()).toBe(true);
      expect(sha256Hex(await readFile(outside))).toBe(hex);
    });
  });

  it.each([
    ['null', 'null'],
    ['an empty object', '{}'],
    ['no segments', JSON.stringify({ version: 1, digest: `sha256:${hex}`, size: SIZE, segments: null })],
    [
      'overlapping segments',
      JSON.stringify({
        version: 1,
        digest: `sha256:${hex}`,
        size: SIZE,
        segments: [
          { start: 0, pos: 100, end: 500 },
          { start: 200, pos: 300, end: SIZE },
        ],
      }),
    ],
    ['a string', '"segments"'],
  ])('treats a progress record holding %s as absent and starts the blob over', async (_what, text) => {
    const blob = spec();
    const paths = stagingPaths(blob.ingestDir, blob.digest);
    await mkdir(blob.ingestDir, { recursive: true });
    await writeFile(paths.data, Buffer.alloc(SIZE));
    await writeFile(paths.record, text);
    const [result] = await fetchBlobs([blob], options());
    expect(sha256Hex(await readFile(result!.target))).toBe(hex);
    expect(result!.downloadedBytes).toBe(SIZE);
  });

  it('fails only the blob whose existing target cannot be read', async () => {
    const other = randomBlob(64 * KiB);
    const otherServer = await startBlobServer(other.data);
    const shared = await tempDir();
    try {
      await chmod(shared.path, 0o777);
      const unreadable = join(shared.path, 'files', 'locked.bin');
      await mkdir(join(shared.path, 'files'), { recursive: true, mode: 0o777 });
      await chmod(join(shared.path, 'files'), 0o777);
      await writeFile(unreadable, data); // the right size, so only its hash can tell
      await chmod(unreadable, 0o000);
      const blob = (label: string, h: string, url: string) => ({
        url,
        hex: h,
        size: label === 'locked.bin' ? SIZE : other.data.length,
        label,
        target: join(shared.path, 'files', label),
        ingestDir: join(shared.path, 'files', '.ingest'),
      });
      const job = {
        blobs: [
          blob('locked.bin', hex, `${server.url}/blob`),
          blob('open.bin', other.hex, `${otherServer.url}/b`),
        ],
      };
      // As root every file is readable: the child runs as nobody, like a runner's unprivileged user.
      const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
      const child = await startTs(CHILD, [JSON.stringify(job)], asUser).done;
      expect(child.code).toBe(0);
      expect(JSON.parse(child.stdout)).toEqual([
        {
          ok: false,
          code: 'ERR_FILESYSTEM',
          message: `locked.bin: cannot check the existing file ${unreadable}: EACCES: permission denied, open '${unreadable}'`,
        },
        { ok: true, downloadedBytes: 64 * KiB, reused: false },
      ]);
      expect(server.requests).toHaveLength(0);
    } finally {
      await otherServer.close();
      await shared.remove();
    }
  });
});

describe('two processes pulling the same blob (issue 10 item 4)', () => {
  const BIG = 24 * MiB;
  const { data, hex } = randomBlob(BIG);
  let server: BlobServer;
  let dir: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    server = await startBlobServer(data);
    dir = await tempDir();
  });
  afterEach(async () => {
    await server.close();
    await dir.remove();
  });
  const ingestDir = () => join(dir.path, 'files', '.ingest');
  const job = () =>
    JSON.stringify({
      connections: 1,
      // The server holds the first pull on purpose, for as long as the second takes to start.
      stallTimeoutMs: 300_000,
      flushBytes: MiB,
      blobs: [
        {
          url: `${server.url}/shared.bin`,
          hex,
          size: BIG,
          label: 'shared.bin',
          target: join(dir.path, 'files', 'shared.bin'),
          ingestDir: ingestDir(),
        },
      ],
    });
  /** The first request is paused after `after` bytes until the test releases it. */
  function holdFirstRequest(after: number) {
    let release!: () => void;
    let held!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const reached = new Promise<void>((resolve) => {
      held = resolve;
    });
    server.setFault((_req, _res, n) => (n === 1 ? { hold: { after, held, release: released } } : undefined));
    return { reached, release };
  }
  // Every wait below is for an event (a byte count reached, a line printed, a process gone);
  // the bounds only turn a hang into a failure.
  const slow = { timeoutMs: 240_000 };
  const waiting = (child: TsChild) =>
    waitFor(() => child.stderr().includes('waiting for another model-pull'), 'the second to wait', 200_000);

  it('the second waits for the first and reuses its verified blob: every byte is served once', async () => {
    const hold = holdFirstRequest(2 * MiB);
    const first = startTs(CHILD, [job()], slow);
    await hold.reached;
    const second = startTs(CHILD, [job()], slow);
    await waiting(second);
    hold.release();
    const [a, b] = await Promise.all([first.done, second.done]);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(JSON.parse(a.stdout)).toEqual([{ ok: true, downloadedBytes: BIG, reused: false }]);
    expect(JSON.parse(b.stdout)).toEqual([{ ok: true, downloadedBytes: 0, reused: true }]);
    expect(b.stderr).toContain(
      `waiting for another model-pull (pid ${first.child.pid} on ${hostname()}) to finish shared.bin`,
    );
    expect(server.sentBytes()).toBe(BIG);
    expect(sha256Hex(await readFile(join(dir.path, 'files', 'shared.bin')))).toBe(hex);
  }, 300_000);

  it('when the first dies, the waiting second takes over its progress instead of starting again', async () => {
    const hold = holdFirstRequest(12 * MiB);
    const record = stagingPaths(ingestDir(), { algorithm: 'sha256', hex }).record;
    const first = startTs(CHILD, [job()], slow);
    await hold.reached;
    const second = startTs(CHILD, [job()], slow);
    await waiting(second);
    // The first has recorded most of what it was sent (a record per MiB written).
    const recordsMost = async () => (await recordedBytes(record).catch(() => 0)) >= 10 * MiB;
    for (let seen = await recordsMost(); !seen; seen = await recordsMost()) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    first.child.kill('SIGKILL');
    await first.done;
    const recorded = await recordedBytes(record);
    const sentByFirst = server.sentBytes();
    expect(sentByFirst).toBe(12 * MiB);
    hold.release();
    const b = await second.done;
    expect(b.code).toBe(0);
    const [outcome] = JSON.parse(b.stdout) as { ok: boolean; downloadedBytes: number }[];
    expect(outcome).toEqual({ ok: true, downloadedBytes: BIG - recorded, reused: false });
    // Only what arrived after the first's last record is fetched twice.
    expect(server.sentBytes()).toBe(sentByFirst + BIG - recorded);
    expect(sentByFirst - recorded).toBeLessThanOrEqual(2 * MiB);
    expect(sha256Hex(await readFile(join(dir.path, 'files', 'shared.bin')))).toBe(hex);
  }, 300_000);
});
