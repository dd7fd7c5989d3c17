import { ConnectionGate, eventLoopLoad, type LoadWindow } from '../../src/download/connection-gate.js';

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

/** Feeds `chunks` landed chunks; the index of the one that opened the gate, or -1. */
function openedAt(gate: ConnectionGate, chunks: number): number {
  for (let i = 0; i < chunks; i++) if (gate.landed()) return i;
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
      gate.landed();
      expect(gate.tick()).toBe(false);
      expect(gate.tick()).toBe(false);
    }
    expect(gate.open).toBe(false);
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
