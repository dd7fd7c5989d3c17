import { readFile } from 'node:fs/promises';
import { ConnectionTuner } from '../../src/download/connection-tuner.js';
import { fetchBlobs } from '../../src/download/engine.js';
import { startBlobServer } from '../helpers/blob-server.js';
import { blobSpec, FAST_RETRY, randomBlob, testClient } from '../helpers/engine.js';
import { tempDir } from '../helpers/http.js';

const MiB = 1024 * 1024;
const WINDOW = 50;

/**
 * Drives a tuner as a download would: `rate(limit)` is what the link gives that many connections
 * (bytes per second); each step lands one window's bytes in two chunks, every allowed connection
 * delivering. Returns the limit after each window.
 */
function drive(tuner: ConnectionTuner, rate: (limit: number) => number, windows: number, start = 0) {
  const limits: number[] = [];
  let now = start;
  // The first chunk starts the first window.
  tuner.add(64 * 1024, now, tuner.limit);
  for (let i = 0; i < windows; i++) {
    const bytes = (rate(tuner.limit) * WINDOW) / 1000;
    now += WINDOW / 2;
    tuner.add(bytes / 2, now, tuner.limit);
    now += WINDOW / 2;
    if (tuner.add(bytes / 2, now, tuner.limit)) {
      // A change: the next window starts once the connections allowed have delivered.
      now += 1;
      tuner.add(64 * 1024, now, tuner.limit);
    }
    limits.push(tuner.limit);
  }
  return { limits, now };
}

describe('ConnectionTuner', () => {
  it('starts with one connection and goes to all of them at once on a link capped per connection', () => {
    const tuner = new ConnectionTuner(16, WINDOW);
    expect(tuner.limit).toBe(1);
    // 16 MiB/s per connection, as the bench's capped server: the first window decides.
    const { limits } = drive(tuner, (n) => n * 16 * MiB, 3);
    expect(limits).toEqual([16, 16, 16]);
    expect(tuner.probing).toBe(false);
  });

  it('stays at one connection when more do not raise the total (a CPU-bound loopback)', () => {
    const tuner = new ConnectionTuner(16, WINDOW);
    // One fast connection takes all the machine can process; four get 5% more in total.
    const { limits } = drive(tuner, (n) => (n === 1 ? 400 : 420) * MiB, 3);
    expect(limits).toEqual([4, 1, 1]);
    expect(tuner.probing).toBe(false);
  });

  it('adds connections in steps while the total rises, and keeps the last count that paid', () => {
    const tuner = new ConnectionTuner(16, WINDOW);
    // A fast path that saturates at four connections.
    const { limits } = drive(tuner, (n) => Math.min(n, 4) * 200 * MiB, 4);
    expect(limits).toEqual([4, 16, 4, 4]);
  });

  it('measures again after a second at a count below the maximum, and grows when it now pays', () => {
    const tuner = new ConnectionTuner(16, WINDOW);
    let capped = false;
    const rate = (n: number) => (capped ? n * 300 * MiB : n === 1 ? 400 * MiB : 410 * MiB);
    const first = drive(tuner, rate, 2);
    expect(first.limits).toEqual([4, 1]);
    // The path changes: now each connection is capped at 300 MiB/s (not slow enough to count as
    // a relapse). Within the second after the verdict the count stays; then the check finds that
    // more connections pay.
    capped = true;
    const later = drive(tuner, rate, 24, first.now + 1);
    expect(later.limits.slice(0, 3)).toEqual([1, 1, 1]);
    expect(later.limits.at(-1)).toBe(16);
  });

  it('measures again at once when the rate it settled at halves', () => {
    const tuner = new ConnectionTuner(16, WINDOW);
    let slowed = false;
    const rate = (n: number) => (slowed ? n * 16 * MiB : n === 1 ? 400 * MiB : 410 * MiB);
    const first = drive(tuner, rate, 2);
    expect(first.limits).toEqual([4, 1]);
    slowed = true;
    expect(drive(tuner, rate, 2, first.now + 1).limits).toEqual([16, 16]);
  });

  it('does not measure until the connections it added have delivered bytes', () => {
    const tuner = new ConnectionTuner(16, WINDOW);
    tuner.add(MiB, 0, 1);
    expect(tuner.add(100 * MiB, WINDOW, 1)).toBe(true);
    expect(tuner.limit).toBe(4);
    // Only two of the four deliver (the others are still connecting): no verdict however long.
    expect(tuner.add(MiB, WINDOW + 10, 2)).toBe(false);
    expect(tuner.add(MiB, WINDOW + 500, 2)).toBe(false);
    expect(tuner.limit).toBe(4);
    // All four deliver: the window starts, and ends with a verdict.
    tuner.add(MiB, WINDOW + 600, 4);
    expect(tuner.add(1, WINDOW + 600 + WINDOW, 4)).toBe(true);
    expect(tuner.limit).toBe(1);
  });
});

describe('the engine with a measured connection count', () => {
  it('starts on one connection and opens all of them when each is capped, with every byte right', async () => {
    const { data, hex } = randomBlob(12 * MiB + 321);
    const sockets = new Set<number | undefined>();
    const ranges: (string | undefined)[] = [];
    // Every response is capped at 4 MiB/s: one connection is held back by its path.
    const server = await startBlobServer(data, (req) => {
      sockets.add(req.socket.remotePort);
      ranges.push(req.headers.range);
      return { rate: 4 * MiB };
    });
    const dir = await tempDir();
    const http = testClient();
    try {
      const blob = blobSpec(dir.path, hex, data.length, `${server.url}/blob`);
      const [result] = await fetchBlobs([blob], {
        http,
        concurrency: 1,
        connections: 8,
        verify: 'full',
        retry: FAST_RETRY,
        minSplit: 256 * 1024,
        adaptFrom: 0,
      });
      expect(result?.downloadedBytes).toBe(data.length);
      expect(Buffer.compare(await readFile(blob.target), data)).toBe(0);
      // One connection measured at 4 MiB/s is held back by its path: the tuner allows the others
      // after its first window (one connection alone asks everything on one kept-alive socket).
      expect(sockets.size).toBeGreaterThan(1);
      // While the count is measured, pieces are small (minSplit), not 1/16 of the blob.
      expect(ranges[0]).toBe(`bytes=0-${256 * 1024 - 1}`);
    } finally {
      await http.close();
      await server.close();
      await dir.remove();
    }
  });
});
