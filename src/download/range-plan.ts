/**
 * Which bytes of one blob are finished, which are taken by a connection, and how an idle
 * connection gets work. Segments partition [0, size): bytes [start, pos) are written,
 * [pos, end) are still to come. A segment is `taken` while a connection streams it.
 *
 * Work is handed out in file order, in pieces that shrink as the untaken bytes run out
 * (guided self-scheduling: a piece is 1/(2·connections) of what is left, between minSplit and
 * MAX_PIECE). In order, because the digest can only follow the contiguous prefix: ranges that
 * land far ahead of it must be read back and hashed after the gap closes, and a 16-way split
 * leaves 15/16 of the blob to hash after the last byte. Shrinking, so the connections finish
 * together instead of one holding a large last piece.
 *
 * When nothing is untaken, an idle connection steals (like aria2's segment manager, finished
 * vs taken ranges): from the segment that will finish last, the share that makes victim and
 * thief finish together at their measured rates, so one crawling connection cannot hold the
 * tail (Ollama's fixed 16-part split is why its pulls sit at 99%, ollama#1736).
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

const MiB = 1024 * 1024;
/** Largest piece: bounds how far ahead of the hash any range lands (and is read back). */
const MAX_PIECE = 64 * MiB;
/** A steal must save at least this much time, or the new request is not worth it. */
const MIN_STEAL_GAIN_S = 0.05;

export class RangePlan {
  private segments: Segment[];

  constructor(
    size: number | undefined,
    /** Smallest piece worth a request of its own. */
    private readonly minSplit: number,
    saved?: readonly SegmentRecord[],
    /** Connections sharing the blob; pieces are sized so each gets several. */
    private connections = 1,
    /** Largest piece (a stream read through a bounded window wants them well inside it). */
    private readonly maxPiece = MAX_PIECE,
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

  /**
   * Learns the size (from Content-Range or Content-Length) when it was unknown. The open-ended
   * segment keeps one piece; the rest becomes untaken work for the other connections.
   */
  setSize(size: number): void {
    const last = this.segments[this.segments.length - 1]!;
    if (Number.isFinite(last.end)) return;
    last.end = size;
    if (!last.taken || this.connections <= 1) return;
    const cut = last.pos + this.pieceSize(size - last.pos);
    if (cut < size - this.minSplit / 2) {
      last.end = cut;
      this.segments.push({ start: cut, pos: cut, end: size, taken: false, rate: 0 });
    }
  }

  /** The server ignores Range: from now on one connection streams everything, unsplit. */
  streamWhole(): void {
    this.connections = 1;
  }

  /**
   * Work for an idle connection: the next piece of untaken bytes in file order, else a stolen
   * share of a taken segment, else undefined (nothing left worth a request). `sharing`: how many
   * connections the piece is sized for, when fewer than the plan's are at work for now.
   */
  take(thiefRate?: number, sharing = this.connections): Segment | undefined {
    const free = this.segments.find((s) => !s.taken && s.pos < s.end);
    if (!free) return this.steal(this.victim(), thiefRate);
    // A connection far slower than the rest would finish long after them, and the hash waits
    // at its range: split it now rather than at the end.
    const straggler = this.straggler(thiefRate);
    if (straggler) {
      const stolen = this.steal(straggler, thiefRate);
      if (stolen) return stolen;
    }
    const piece = this.pieceSize(this.untaken(), sharing);
    // A single connection streams all it can in one request.
    if (
      this.connections > 1 &&
      Number.isFinite(free.end) &&
      free.end - free.pos > piece + this.minSplit / 2
    ) {
      const cut = free.pos + piece;
      this.segments.push({ start: cut, pos: cut, end: free.end, taken: false, rate: 0 });
      free.end = cut;
      this.sort();
    }
    free.taken = true;
    free.rate = thiefRate ?? 0;
    return free;
  }

  private untaken(): number {
    let sum = 0;
    for (const s of this.segments) if (!s.taken) sum += s.end - s.pos;
    return sum;
  }

  private pieceSize(left: number, sharing = this.connections): number {
    if (!Number.isFinite(left)) return this.maxPiece;
    const share = Math.ceil(left / (2 * sharing));
    return Math.min(this.maxPiece, Math.max(this.minSplit, share));
  }

  /** Mean measured rate of the connections at work (0 before any measurement). */
  private meanRate(): number {
    let sum = 0;
    let n = 0;
    for (const s of this.segments) {
      if (s.taken && s.rate > 0) {
        sum += s.rate;
        n++;
      }
    }
    return n ? sum / n : 0;
  }

  /** The taken segment that will finish last; unmeasured ones count at the mean rate. */
  private victim(): Segment | undefined {
    const mean = this.meanRate();
    let victim: Segment | undefined;
    let worst = 0;
    for (const s of this.segments) {
      const left = s.end - s.pos;
      if (!s.taken || !Number.isFinite(left) || left <= 0) continue;
      const eta = left / (s.rate || mean || 1);
      if (eta > worst) {
        worst = eta;
        victim = s;
      }
    }
    return victim;
  }

  /** A measured segment due more than twice as late as the whole blob at the current rates. */
  private straggler(thiefRate?: number): Segment | undefined {
    const mean = this.meanRate();
    if (!mean || !Number.isFinite(this.size ?? Number.POSITIVE_INFINITY)) return undefined;
    let left = 0;
    let rate = thiefRate || mean;
    for (const s of this.segments) {
      left += s.end - s.pos;
      if (s.taken) rate += s.rate || mean;
    }
    const blobEta = left / rate;
    let straggler: Segment | undefined;
    let worst = 2 * blobEta;
    for (const s of this.segments) {
      if (!s.taken || !s.rate) continue;
      const eta = (s.end - s.pos) / s.rate;
      if (eta > worst) {
        worst = eta;
        straggler = s;
      }
    }
    return straggler;
  }

  private steal(victim: Segment | undefined, thiefRate?: number): Segment | undefined {
    if (!victim) return undefined;
    const left = victim.end - victim.pos;
    const mean = this.meanRate();
    const victimRate = victim.rate || mean;
    const thief = thiefRate || mean;
    const measured = victimRate > 0 && thief > 0;
    // The victim keeps what it fetches in the time the thief needs for the rest.
    const stolen = measured ? Math.floor((left * thief) / (victimRate + thief)) : Math.floor(left / 2);
    // A steal costs a request and cuts the victim's. Blind (no rates yet), both halves must be
    // worth a request; with rates, it must save real time (so equal connections near the end
    // are left alone), and may then leave a crawling victim less than minSplit.
    if (!measured && stolen < this.minSplit) return undefined;
    if (
      measured &&
      (stolen < Math.min(this.minSplit, MiB) || left / victimRate - stolen / thief < MIN_STEAL_GAIN_S)
    ) {
      return undefined;
    }
    const mid = victim.end - stolen;
    const segment: Segment = { start: mid, pos: mid, end: victim.end, taken: true, rate: thiefRate ?? 0 };
    victim.end = mid;
    this.segments.push(segment);
    this.sort();
    return segment;
  }

  /** The connection is done with the segment (complete, or failed and to be taken again). */
  release(segment: Segment): void {
    segment.taken = false;
    this.coalesce();
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

  records(): SegmentRecord[] {
    return this.segments.map(({ start, pos, end }) => ({ start, pos, end }));
  }

  /** Merges neighbouring finished segments, so the record and the prefix scan stay short. */
  private coalesce(): void {
    const merged: Segment[] = [];
    for (const s of this.segments) {
      const prev = merged[merged.length - 1];
      const done = (x: Segment) => !x.taken && x.pos >= x.end;
      if (prev && done(prev) && done(s) && prev.end === s.start) {
        merged[merged.length - 1] = { start: prev.start, pos: s.end, end: s.end, taken: false, rate: 0 };
      } else {
        merged.push(s);
      }
    }
    this.segments = merged;
  }

  private sort(): void {
    this.segments.sort((a, b) => a.start - b.start);
  }
}
