/**
 * Which bytes of one blob are finished, which are taken by a connection, and how an idle
 * connection steals work. Segments partition [0, size): bytes [start, pos) are written,
 * [pos, end) are still to come. A segment is `taken` while a connection streams it.
 *
 * Like aria2's segment manager (finished vs taken ranges), but the split is proportional to
 * measured rates: an idle connection takes the share of the slowest-finishing segment that
 * makes both finish together, so one crawling connection cannot hold the tail (Ollama's fixed
 * 16-part split is why its pulls sit at 99%, ollama#1736).
 */
export interface Segment {
  readonly start: number;
  pos: number;
  /** Exclusive; Infinity while the blob's size is unknown. */
  end: number;
  taken: boolean;
  /** Smoothed bytes per second of the connection streaming it (0 until measured). */
  rate: number;
}

export interface SegmentRecord {
  readonly start: number;
  readonly pos: number;
  readonly end: number;
}

export class RangePlan {
  private segments: Segment[];

  constructor(
    size: number | undefined,
    /** Smallest range worth a request of its own. */
    private readonly minSplit: number,
    saved?: readonly SegmentRecord[],
  ) {
    if (saved && saved.length > 0) {
      this.segments = saved.map((s) => ({ ...s, taken: false, rate: 0 }));
    } else {
      this.segments = [{ start: 0, pos: 0, end: size ?? Number.POSITIVE_INFINITY, taken: false, rate: 0 }];
    }
    this.sort();
  }

  get size(): number | undefined {
    const last = this.segments[this.segments.length - 1]!;
    return Number.isFinite(last.end) ? last.end : undefined;
  }

  /** Learns the size (from Content-Range or Content-Length) when it was unknown. */
  setSize(size: number): void {
    const last = this.segments[this.segments.length - 1]!;
    if (!Number.isFinite(last.end)) last.end = size;
  }

  /** Starts over as one segment: the server ignored Range, so only a single stream works. */
  resetToSingle(size: number | undefined): Segment {
    this.segments = [{ start: 0, pos: 0, end: size ?? Number.POSITIVE_INFINITY, taken: true, rate: 0 }];
    return this.segments[0]!;
  }

  /**
   * Work for an idle connection: an untaken segment with bytes left, else a stolen share of a
   * taken one, else undefined (nothing left worth a request).
   */
  take(thiefRate?: number): Segment | undefined {
    const free = this.segments.find((s) => !s.taken && s.pos < s.end);
    if (free) {
      free.taken = true;
      free.rate = 0;
      return free;
    }
    return this.steal(thiefRate);
  }

  private steal(thiefRate?: number): Segment | undefined {
    let victim: Segment | undefined;
    let worst = 0;
    const rates = this.segments.filter((s) => s.taken && s.rate > 0).map((s) => s.rate);
    const meanRate = rates.length ? rates.reduce((a, b) => a + b, 0) / rates.length : 0;
    for (const s of this.segments) {
      const left = s.end - s.pos;
      if (!s.taken || !Number.isFinite(left) || left < 2 * this.minSplit) continue;
      // Unmeasured connections count at the mean rate, so a fresh split ranks by size alone.
      const eta = left / (s.rate || meanRate || 1);
      if (eta > worst) {
        worst = eta;
        victim = s;
      }
    }
    if (!victim) return undefined;
    const left = victim.end - victim.pos;
    const victimRate = victim.rate || meanRate;
    const thief = thiefRate || meanRate;
    // Keep for the victim what it can fetch in the time the thief needs for the rest.
    const keepShare = victimRate > 0 && thief > 0 ? victimRate / (victimRate + thief) : 0.5;
    let keep = Math.max(Math.floor(left * keepShare), Math.min(this.minSplit, Math.floor(left / 2)));
    if (left - keep < this.minSplit) keep = left - this.minSplit;
    const mid = victim.pos + keep;
    const stolen: Segment = { start: mid, pos: mid, end: victim.end, taken: true, rate: 0 };
    victim.end = mid;
    this.segments.push(stolen);
    this.sort();
    return stolen;
  }

  release(segment: Segment): void {
    segment.taken = false;
  }

  /** Bytes [0, n) are all written. */
  contiguousPrefix(): number {
    let p = 0;
    for (const s of this.segments) {
      if (s.start !== p) break;
      p = s.pos;
      if (s.pos < s.end) break;
    }
    return p;
  }

  written(): number {
    return this.segments.reduce((sum, s) => sum + (s.pos - s.start), 0);
  }

  complete(): boolean {
    return this.size !== undefined && this.segments.every((s) => s.pos >= s.end);
  }

  /** True while some segment still has untaken bytes; idle connections may then keep asking. */
  hasWork(): boolean {
    return this.segments.some((s) => s.pos < s.end);
  }

  records(): SegmentRecord[] {
    return this.segments.map(({ start, pos, end }) => ({ start, pos, end }));
  }

  private sort(): void {
    this.segments.sort((a, b) => a.start - b.start);
  }
}
