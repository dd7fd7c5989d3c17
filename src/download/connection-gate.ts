import { performance } from 'node:perf_hooks';

/** What the main thread did since a window started: how long ago that was, and its busy share (0–1). */
export interface ThreadLoad {
  readonly elapsedMs: number;
  readonly busy: number;
}

/** Starts a window; the function it returns tells the thread's load since. */
export type LoadWindow = () => () => ThreadLoad;

/**
 * The main thread's event-loop utilisation: the share of the time it ran callbacks rather than
 * waited for I/O (time it was ready but had no core counts as busy).
 */
export const eventLoopLoad: LoadWindow = () => {
  const start = performance.eventLoopUtilization();
  return () => {
    const { idle, active, utilization } = performance.eventLoopUtilization(start);
    return { elapsedMs: idle + active, busy: utilization };
  };
};

/** A thread that never looks busy: for a gate that starts open and never looks. */
export const idleThread: LoadWindow = () => () => ({ elapsedMs: 0, busy: 0 });

/** When a large blob opens its other connections, and what tells it. */
export interface GateTuning {
  readonly load: LoadWindow;
  /** Blobs of at least this many bytes start on one connection. */
  readonly minSize: number;
}

/** How long one look at the thread lasts. */
const WINDOW_MS = 30;
/** The smoothed busy share under which the thread has room for more connections. */
const ROOM = 0.6;
/** No byte for this long on the one connection: the others start (see `tick`). */
const QUIET_MS = 500;
/** How often the one connection's silence is looked at. */
export const GATE_TICK_MS = 250;

/**
 * Decides, from this process's own cost, whether a large blob's other connections can help.
 * The blob starts on one connection; every WINDOW_MS while its bytes arrive, the gate looks at
 * the share of the window the main thread was busy (event-loop utilisation), smoothed over the
 * windows (each new one counts a quarter). A thread with room is waiting for bytes (a capped or
 * distant path, a crawling server): the gate opens and every connection starts, for good. A
 * saturated thread (one connection already brings more than it can write and hash, as on a
 * fast local link) cannot go faster with more sockets, only spend more per byte on them (their
 * reads, and bytes landing ahead of the hash that are read back later), so the blob stays on
 * one connection while that holds, looked at again every window. Smoothed, because on a loaded
 * machine a saturated download has a window at 0.25-0.5 now and then (the server, or the next
 * range's answer, waiting for a core); a capped one sits near 0.05 from its first window.
 *
 * Rates were tried as the signal and dropped (issue 17): one connection's rate over 100 ms swung
 * 89–333 MiB/s on a loaded machine. A crawling first connection leaves the thread idle, so it
 * opens the gate at once instead of passing for the path's limit; one that sends nothing opens
 * it after QUIET_MS (`tick`).
 */
export class ConnectionGate {
  private window: (() => ThreadLoad) | undefined;
  /** The busy share, smoothed over the windows so far (undefined before the first). */
  private smoothed: number | undefined;
  /** Bytes landed since the last tick. */
  private heard = false;
  /** Started at the first tick with no bytes since the one before. */
  private silence: (() => ThreadLoad) | undefined;

  constructor(
    private readonly load: LoadWindow,
    /** False: opened from the start (a small blob, a stream read in memory, no gate tuning). */
    private closed: boolean,
  ) {}

  get open(): boolean {
    return !this.closed;
  }

  /** Called as bytes land; true exactly once, when the gate opens. */
  landed(): boolean {
    if (!this.closed) return false;
    this.heard = true;
    if (this.window) {
      const { elapsedMs, busy } = this.window();
      if (elapsedMs < WINDOW_MS) return false;
      this.smoothed = this.smoothed === undefined ? busy : this.smoothed + (busy - this.smoothed) / 4;
      if (this.smoothed < ROOM) {
        this.closed = false;
        this.window = undefined;
        return true;
      }
    }
    this.window = this.load();
    return false;
  }

  /**
   * Called every GATE_TICK_MS while closed; true exactly once, when it opens because the one
   * connection brought no byte for QUIET_MS (a server slow to answer, or one that stopped
   * sending): the others must not wait for its stall timeout, as they would not if all had
   * started at once.
   */
  tick(): boolean {
    if (!this.closed) return false;
    if (this.heard || !this.silence) {
      this.heard = false;
      this.silence = this.load();
      return false;
    }
    if (this.silence().elapsedMs < QUIET_MS) return false;
    this.closed = false;
    this.window = undefined;
    return true;
  }
}
