import { performance } from 'node:perf_hooks';

/** What the main thread did since a window started: how long ago that was, and its busy share (0–1). */
export interface ThreadLoad {
  readonly elapsedMs: number;
  readonly busy: number;
  /**
   * CPU time the process got over the window, as a share of it (all its threads: may pass 1);
   * unknown when absent. Low on a machine with more work than cores, whatever `busy` says.
   */
  readonly cpu?: number;
}

/** Starts a window; the function it returns tells the thread's load since. */
export type LoadWindow = () => () => ThreadLoad;

/**
 * The main thread's event-loop utilisation: the share of the time it ran callbacks rather than
 * waited for I/O (time it was ready but had no core counts as busy).
 */
export const eventLoopLoad: LoadWindow = () => {
  const start = performance.eventLoopUtilization();
  const startCpu = process.cpuUsage();
  return () => {
    const { idle, active, utilization } = performance.eventLoopUtilization(start);
    const elapsedMs = idle + active;
    return {
      elapsedMs,
      busy: utilization,
      // Read only when asked (a system call), not on every chunk.
      get cpu() {
        const { user, system } = process.cpuUsage(startCpu);
        return elapsedMs > 0 ? (user + system) / 1000 / elapsedMs : 0;
      },
    };
  };
};

/** A thread that never looks busy: for a gate that starts open and never looks. */
export const idleThread: LoadWindow = () => () => ({ elapsedMs: 0, busy: 0 });

/** When a large blob opens its other connections, and what tells it. */
export interface GateTuning {
  readonly load: LoadWindow;
  /** Blobs of at least this many bytes start on one connection. */
  readonly minSize: number;
  /**
   * Bytes per second under which the one connection, over SLOW_PERIODS periods in a row, opens
   * the gate whatever the thread's load (default: none). The engine passes MIN_SOLO_RATE.
   */
  readonly minRate?: number;
}

const MiB = 1024 * 1024;
/**
 * One connection slower than this is held back by its path, not by this process: 32 MiB/s is
 * twice what a capped CDN gives a connection (16 MiB/s, the bench's capped case), and under a
 * third of the slowest that one uncapped loopback connection measured on a loaded machine
 * (89-333 MiB/s over 100 ms windows, issue 17). It opens the gate when the thread is busy
 * with other work (re-verifying another model, say): the busy share alone kept a capped blob on
 * one connection, 16 times slower, until the thread had room. Judged over whole seconds: over
 * 30 ms windows smoothed like the busy share, the bench's uncapped case at load 10 dipped under
 * it and opened (132 CDN requests instead of 20, 3.9 s of CPU instead of 2.7). A download that
 * gets only a sliver of a saturated thread for seconds on end can still fall under it; its other
 * connections then cost more CPU per byte, as every blob's did before the gate.
 */
export const MIN_SOLO_RATE = 32 * MiB;

/** How long one look at the thread lasts. */
const WINDOW_MS = 30;
/** The smoothed busy share under which the thread has room for more connections. */
const ROOM = 0.6;
/** How long each look at the one connection's rate lasts. */
const RATE_PERIOD_MS = 1000;
/** Periods in a row under the floor that open the gate: a slow second alone may be the machine. */
const SLOW_PERIODS = 2;
/**
 * A period counts as slow only if the process had a core for this share of it at least: one
 * starved of CPU (more work than cores on the machine) is slow whatever its path, and that was
 * what opened the bench's uncapped case at load 9-10 with periods of whole seconds alone (46 CDN
 * requests, median of three runs, against 20). Half a core moves a loopback download at well over
 * 100 MiB/s (2.7 s of CPU per GiB measured in that bench), so a rate under the floor with this
 * much CPU is a path's limit, or a thread taken by other work: the case the floor is for.
 */
const MIN_CPU_SHARE = 0.5;
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
 * 89–333 MiB/s on a loaded machine, so a rate cannot tell a fast link from a saturated thread.
 * A rate far below that range, second after second, while the process had the CPU, can only be
 * the path's limit, though: the one connection's rate opens the gate when it stays under
 * `minRate` for SLOW_PERIODS periods of RATE_PERIOD_MS with MIN_CPU_SHARE of a core, whatever
 * else keeps the thread busy. A crawling first connection leaves the thread
 * idle, so it opens the gate at once; one that sends nothing opens it after QUIET_MS (`tick`).
 */
export class ConnectionGate {
  private window: (() => ThreadLoad) | undefined;
  /** The busy share, smoothed over the windows so far (undefined before the first). */
  private smoothed: number | undefined;
  /** The current look at the one connection's rate, its bytes so far, and slow periods in a row. */
  private period: (() => ThreadLoad) | undefined;
  private periodBytes = 0;
  private slowPeriods = 0;
  /** Bytes landed since the last tick. */
  private heard = false;
  /** Started at the first tick with no bytes since the one before. */
  private silence: (() => ThreadLoad) | undefined;

  constructor(
    private readonly load: LoadWindow,
    /** False: opened from the start (a small blob, a stream read in memory, no gate tuning). */
    private closed: boolean,
    /** See GateTuning.minRate. */
    private readonly minRate = 0,
  ) {}

  get open(): boolean {
    return !this.closed;
  }

  /** Called as `bytes` land; true exactly once, when the gate opens. */
  landed(bytes: number): boolean {
    if (!this.closed) return false;
    this.heard = true;
    if (this.minRate > 0 && this.slowFor(bytes)) return this.opened();
    if (this.window) {
      const { elapsedMs, busy } = this.window();
      if (elapsedMs < WINDOW_MS) return false;
      this.smoothed = this.smoothed === undefined ? busy : this.smoothed + (busy - this.smoothed) / 4;
      if (this.smoothed < ROOM) return this.opened();
    }
    this.window = this.load();
    return false;
  }

  /** Counts `bytes` in the current rate period; true once SLOW_PERIODS in a row were slow. */
  private slowFor(bytes: number): boolean {
    // (The chunk that starts the first period arrived before it: a burst from buffers is no rate.)
    if (!this.period) {
      this.period = this.load();
      return false;
    }
    this.periodBytes += bytes;
    const load = this.period();
    const { elapsedMs } = load;
    if (elapsedMs < RATE_PERIOD_MS) return false;
    const slow = (this.periodBytes * 1000) / elapsedMs < this.minRate && (load.cpu ?? 1) >= MIN_CPU_SHARE;
    this.slowPeriods = slow ? this.slowPeriods + 1 : 0;
    this.period = this.load();
    this.periodBytes = 0;
    return this.slowPeriods >= SLOW_PERIODS;
  }

  private opened(): true {
    this.closed = false;
    this.window = undefined;
    this.period = undefined;
    return true;
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
    return this.opened();
  }
}
