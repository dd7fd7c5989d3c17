/** Connections added at each step of the probe (1, 4, 16, …). */
const GROWTH = 4;
/** The total rate must rise at least this much for the added connections to stay. */
const MIN_GAIN = 0.2;
/** A settled download whose rate falls below this share of what it settled at probes again. */
const RELAPSE = 0.5;
/**
 * A connection slower than this is held back by its path (a per-connection cap, a long way),
 * not by this machine, which hashes and writes several times faster: more connections will pay,
 * so all of them start at once instead of in steps.
 */
const PATH_LIMITED = 64 * 1024 * 1024;
/** A count settled below the maximum is measured again this often (a wrong verdict costs this much at most). */
const REPROBE_MS = 1000;
/** Longest wait for added connections to deliver their first bytes before measuring anyway. */
const GRACE_MS = 2000;

/**
 * How many connections one blob uses, by measurement: start with one, add connections (×4) while
 * the total rate rises with them, and go back to the last count that paid once it does not. A
 * link capped per connection (a CDN, the bench's 16 MiB/s) grows to the maximum within two
 * windows; a link where one connection already takes all the machine can process (loopback, a
 * fast runner's CPU-bound hash and write) stays at one, so its bytes land in file order and are
 * hashed from memory instead of read back, with one connection's buffers instead of sixteen
 * (issue 17: 1 connection cost 3.0 CPU-s and 89 MiB per GiB on loopback, 16 cost 3.9-4.1 s and
 * 98 MiB, measured). A settled count whose rate halves later (a path that slowed) probes again.
 *
 * A window starts once every connection allowed has delivered bytes (connections added on a real link
 * spend a handshake or two first), or after GRACE_MS. Fed with every landed chunk and the
 * clock; no timer of its own.
 */
export class ConnectionTuner {
  /** Connections allowed now. */
  private current = 1;
  private settledRate: number | undefined;
  private settledAt = 0;
  /** The rate and count of the last step that paid. */
  private before: { rate: number; limit: number } | undefined;
  /** Start of the measurement under way; undefined while waiting for connections to stream. */
  private windowStart: number | undefined;
  private windowBytes = 0;
  /** When the limit last changed. */
  private changedAt: number | undefined;

  constructor(
    /** The most connections the blob may use. */
    private readonly max: number,
    /** Length of one measurement. */
    private readonly windowMs: number,
  ) {}

  get limit(): number {
    return this.current;
  }

  /** True while the count is being measured (pieces are then kept small, see BlobRun). */
  get probing(): boolean {
    return this.settledRate === undefined;
  }

  /**
   * Counts landed bytes (`delivering`: connections that have delivered bytes since the count last
   * changed); returns true when the count or the verdict changed.
   */
  add(bytes: number, now: number, delivering: number): boolean {
    if (this.windowStart === undefined) {
      this.changedAt ??= now;
      const ready = delivering >= this.current || now - this.changedAt >= GRACE_MS;
      // These bytes arrived before the window: it starts with the next ones.
      if (ready) this.windowStart = now;
      return false;
    }
    this.windowBytes += bytes;
    const elapsed = now - this.windowStart;
    if (elapsed < this.windowMs) return false;
    const rate = (this.windowBytes * 1000) / elapsed;
    this.windowStart = now;
    this.windowBytes = 0;
    const limit = this.current;
    const changed = this.step(rate, now);
    if (this.current !== limit) {
      this.changedAt = now;
      this.windowStart = undefined;
    }
    return changed;
  }

  private step(rate: number, now: number): boolean {
    if (this.settledRate !== undefined) {
      if (this.current >= this.max) return false;
      const slowed = rate < this.settledRate * RELAPSE;
      if (!slowed && now - this.settledAt < REPROBE_MS) return false;
      // The path slowed down, or it is time to check the verdict: measure again from here.
      this.settledRate = undefined;
      this.before = undefined;
    }
    if (this.before && rate < this.before.rate * (1 + MIN_GAIN)) {
      // The last connections added did not pay: back to the count before them.
      this.current = this.before.limit;
      this.settle(this.before.rate, now);
      return true;
    }
    this.before = { rate, limit: this.current };
    if (this.current >= this.max) {
      this.settle(rate, now);
      return true;
    }
    const perConnection = rate / this.current;
    this.current = perConnection < PATH_LIMITED ? this.max : Math.min(this.max, this.current * GROWTH);
    return true;
  }

  private settle(rate: number, now: number): void {
    this.settledRate = rate;
    this.settledAt = now;
  }
}
