import {
  ConnectionGate,
  eventLoopLoad,
  type LoadWindow,
  MIN_SOLO_RATE,
} from '../../src/download/connection-gate.js';

const MiB = 1024 * 1024;

/** Windows that each last `elapsedMs` and show the next busy share of `shares` (the last one repeats). */
function scripted(shares: readonly number[], elapsedMs = 60): LoadWindow & { started: number } {
  let next = 0;
  const load = Object.assign(
    () => {
      const busy = shares[Math.min(next, shares.length - 1)]!;
      next++;
      load.started++;
      return () => ({ elapsedMs, busy });
    },
    { started: 0 },
  );
  return load;
}

/**
 * Feeds `chunks` landed chunks of `bytes` each (or `bytes(i)`); the index of the one that opened
 * the gate, or -1. With scripted windows each chunk after the first ends one.
 */
function openedAt(
  gate: ConnectionGate,
  chunks: number,
  bytes: number | ((i: number) => number) = 64 * 1024,
): number {
  for (let i = 0; i < chunks; i++) if (gate.landed(typeof bytes === 'number' ? bytes : bytes(i))) return i;
  return -1;
}

describe('ConnectionGate', () => {
  it('opens at the first window when the thread waits for bytes (a capped or crawling link)', () => {
    const gate = new ConnectionGate(scripted([0.05]), true);
    expect(gate.open).toBe(false);
    // The first chunk starts the window, the second ends it.
    expect(openedAt(gate, 10)).toBe(1);
    expect(gate.open).toBe(true);
    // Once open, for good: no more windows, never true again.
    expect(openedAt(gate, 10)).toBe(-1);
  });

  it('stays closed while one connection saturates the thread, whatever the number of windows', () => {
    const load = scripted([1]);
    const gate = new ConnectionGate(load, true);
    expect(openedAt(gate, 1000)).toBe(-1);
    expect(gate.open).toBe(false);
    expect(load.started).toBe(1000);
  });

  it('a window or two of a saturated download that waited for a core do not open it', () => {
    const gate = new ConnectionGate(scripted([1, 1, 0.3, 1, 1, 0.25, 0.35, 1, 1, 1]), true);
    expect(openedAt(gate, 11)).toBe(-1);
  });

  it('opens once the thread shows room window after window (the link slowed down)', () => {
    const gate = new ConnectionGate(scripted([1, 1, 1, 0.3]), true);
    // Smoothed 1, 1, 1, then 0.825, 0.69, 0.59 < 0.6: the sixth window opens it.
    expect(openedAt(gate, 20)).toBe(6);
  });

  it('waits until a window has lasted long enough before judging it', () => {
    const gate = new ConnectionGate(scripted([0], 10), true);
    expect(openedAt(gate, 50)).toBe(-1);
  });

  /** Windows whose time moves 300 ms each time they are read. */
  const ticking: LoadWindow = () => {
    let reads = 0;
    return () => ({ elapsedMs: 300 * ++reads, busy: 1 });
  };

  it('opens when the one connection brings no byte for half a second', () => {
    // The first tick starts a window of silence, the next reads 300 ms of it, the one after 600.
    const gate = new ConnectionGate(ticking, true);
    expect(gate.tick()).toBe(false);
    expect(gate.tick()).toBe(false);
    expect(gate.tick()).toBe(true);
    expect(gate.open).toBe(true);
    expect(gate.tick()).toBe(false);
  });

  it('a connection that keeps bringing bytes is not quiet, however long it runs', () => {
    const gate = new ConnectionGate(ticking, true);
    for (let i = 0; i < 100; i++) {
      gate.landed(64 * 1024);
      expect(gate.tick()).toBe(false);
      expect(gate.tick()).toBe(false);
    }
    expect(gate.open).toBe(false);
  });

  describe('with a rate floor, on a thread kept busy by other work', () => {
    /**
     * A saturated thread on a fake clock: `feed` lands chunks `everyMs` apart at `rate` MiB/s
     * (or `rate(ms)` at each time), returning the time (ms) of the chunk that opened the gate, or -1.
     */
    function busyThread(cpu?: (ms: number) => number) {
      let now = 0;
      const load: LoadWindow = () => {
        const start = now;
        return () => ({ elapsedMs: now - start, busy: 1, ...(cpu ? { cpu: cpu(now) } : {}) });
      };
      const gate = new ConnectionGate(load, true, MIN_SOLO_RATE);
      const feed = (untilMs: number, rate: number | ((ms: number) => number), everyMs = 10): number => {
        for (const end = now + untilMs; now < end; now += everyMs) {
          const mibs = typeof rate === 'number' ? rate : rate(now);
          if (gate.landed(Math.round((mibs * MiB * everyMs) / 1000))) return now;
        }
        return -1;
      };
      return { gate, feed };
    }

    it('opens once a capped connection (16 MiB/s) was slow for two whole seconds', () => {
      const { gate, feed } = busyThread();
      // The first chunk starts the first period at 0: its seconds end at 1000 and 2000 ms.
      expect(feed(10_000, 16)).toBe(2000);
      expect(gate.open).toBe(true);
    });

    it('stays on one connection at the slowest rate an uncapped loopback showed under load', () => {
      const { gate, feed } = busyThread();
      expect(feed(60_000, 89)).toBe(-1);
      expect(gate.open).toBe(false);
    });

    it('a slow spell shorter than two periods, or slow seconds apart, do not open it', () => {
      const { feed } = busyThread();
      // 1.5 s at 2 MiB/s (one slow period, and half of the next), then fast; later one slow
      // second between fast ones, twice.
      const rate = (ms: number) =>
        ms < 1500 || (ms >= 5000 && ms < 6000) || (ms >= 8000 && ms < 9000) ? 2 : 200;
      expect(feed(20_000, rate)).toBe(-1);
    });

    it('a slow second of a process starved of CPU does not count: the machine, not the path', () => {
      // A loaded machine gives the process a fifth of a core for 3 s: slow, but not the path's
      // doing. Then a thread busy with other work (the process on a core) and a capped link.
      const { feed } = busyThread((ms) => (ms <= 3000 ? 0.2 : 1));
      expect(feed(10_000, 16)).toBe(5000);
    });

    it('the chunk that starts the first period does not count: a burst before it is no rate', () => {
      const { gate, feed } = busyThread();
      // 512 MiB in the first chunk (socket buffers filled before the first read), then 8 MiB/s.
      expect(gate.landed(512 * MiB)).toBe(false);
      expect(feed(10_000, 8)).toBe(2000);
    });

    it('without a floor, a busy thread keeps even a crawling connection alone', () => {
      const gate = new ConnectionGate(scripted([1]), true);
      expect(openedAt(gate, 1000, 1024)).toBe(-1);
    });
  });

  it('never looks at the thread when it starts open', () => {
    const load = scripted([1]);
    const gate = new ConnectionGate(load, false);
    expect(gate.open).toBe(true);
    expect(openedAt(gate, 10)).toBe(-1);
    expect(load.started).toBe(0);
  });

  it("reads this thread's event-loop utilisation: a callback that spins is busy", async () => {
    // (Jest's own loop is never idle, so an idle window cannot be shown here: the engine tests
    // pass a load of their own.)
    const window = eventLoopLoad();
    const until = Date.now() + 30;
    while (Date.now() < until) {
      // spin
    }
    await new Promise((resolve) => setImmediate(resolve));
    const spun = window();
    // (Its length is not compared with the spin's: Date.now() and the loop's clock round apart.)
    expect(spun.elapsedMs).toBeGreaterThan(0);
    expect(spun.busy).toBeGreaterThan(0.5);
    expect(spun.busy).toBeLessThanOrEqual(1);
  });
});
