/**
 * The minimum rate of a stream: bytes are counted in windows of `windowMs`, and a window that
 * ends with fewer than `bytes` makes the stream "too slow". A trickle (a byte a second) keeps
 * any idle timeout from firing, so without this a hostile or broken server holds a pull forever.
 * Checked as bytes arrive (time from the injected clock); silence is the stall timeout's job.
 */
export class RateGuard {
  private windowStart: number;
  private windowBytes = 0;

  constructor(
    private readonly min: { readonly bytes: number; readonly windowMs: number },
    private readonly now: () => number,
  ) {
    this.windowStart = now();
  }

  /** Counts `n` new bytes; returns the window's byte count when it closed below the minimum. */
  add(n: number): number | undefined {
    this.windowBytes += n;
    const t = this.now();
    if (t - this.windowStart < this.min.windowMs) return undefined;
    const seen = this.windowBytes;
    this.windowStart = t;
    this.windowBytes = 0;
    return seen < this.min.bytes ? seen : undefined;
  }
}
