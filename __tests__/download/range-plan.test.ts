import { RangePlan, type Segment } from '../../src/download/range-plan.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Takes `n` pieces and checks that every take succeeded. */
function takeAll(plan: RangePlan, n: number, rate?: number): Segment[] {
  return Array.from({ length: n }, () => {
    const segment = plan.take(rate);
    if (!segment) throw new Error('no work handed out');
    return segment;
  });
}

function finish(plan: RangePlan, segment: Segment): void {
  segment.pos = segment.end;
  plan.release(segment);
}

describe('RangePlan', () => {
  it('hands out pieces in file order, shrinking as the untaken bytes run out', () => {
    const plan = new RangePlan(GiB, 4 * MiB, undefined, 16);
    const pieces = takeAll(plan, 16);
    // The first piece is 1/(2·16) of the blob; each next one 1/32 of what is left.
    expect(pieces[0]).toMatchObject({ start: 0, end: 32 * MiB });
    for (let i = 1; i < pieces.length; i++) {
      expect(pieces[i]!.start).toBe(pieces[i - 1]!.end);
      expect(pieces[i]!.end - pieces[i]!.start).toBeLessThanOrEqual(
        pieces[i - 1]!.end - pieces[i - 1]!.start,
      );
    }
    // Far ahead of the last piece nothing is taken: the hash frontier stays close.
    expect(pieces[15]!.end).toBeLessThan(GiB / 2);
  });

  it('sizes a piece for the connections at work when fewer than the plan are (a closed gate)', () => {
    const plan = new RangePlan(GiB, 4 * MiB, undefined, 16);
    expect(plan.take()).toMatchObject({ start: 0, end: 32 * MiB });
    // Alone, a connection takes half of what is left, within the largest piece: still in order.
    expect(plan.take(undefined, 1)).toMatchObject({ start: 32 * MiB, end: 96 * MiB });
  });

  it('gives a single connection the whole blob in one request', () => {
    const plan = new RangePlan(GiB, 4 * MiB, undefined, 1);
    expect(plan.take()).toMatchObject({ start: 0, pos: 0, end: GiB });
  });

  it('does not split a small blob before any rate is known', () => {
    const plan = new RangePlan(6 * MiB, 4 * MiB, undefined, 16);
    expect(plan.take()).toMatchObject({ start: 0, end: 6 * MiB });
    // Halves of 3 MiB are below minSplit: not worth a request each.
    expect(plan.take()).toBeUndefined();
  });

  it('steals the share that makes a crawling victim and the thief finish together', () => {
    const plan = new RangePlan(64 * MiB, 4 * MiB, undefined, 1);
    const victim = plan.take()!;
    victim.pos = 4 * MiB;
    victim.rate = 1 * MiB;
    const stolen = plan.take(16 * MiB)!;
    expect(stolen.end).toBe(64 * MiB);
    expect(victim.end).toBe(stolen.start);
    const victimSeconds = (victim.end - victim.pos) / (1 * MiB);
    const thiefSeconds = (stolen.end - stolen.start) / (16 * MiB);
    expect(Math.abs(victimSeconds - thiefSeconds)).toBeLessThan(0.001);
    // Less than minSplit stays with the victim: with rates known, time decides, not size.
    expect(victim.end - victim.pos).toBeLessThan(4 * MiB);
  });

  it('leaves equally fast connections alone near the end, but not a crawling one', () => {
    const saved = [
      { start: 0, pos: 0, end: 4 * MiB },
      { start: 4 * MiB, pos: 4 * MiB, end: 8 * MiB },
    ];
    const even = new RangePlan(8 * MiB, 4 * MiB, saved, 1);
    for (const s of takeAll(even, 2)) s.rate = 64 * MiB;
    // Halving 62.5 ms of work saves 31 ms: less than a new request is worth.
    expect(even.take(64 * MiB)).toBeUndefined();

    const uneven = new RangePlan(8 * MiB, 4 * MiB, saved, 1);
    const [slow, fast] = takeAll(uneven, 2);
    slow!.rate = 1 * MiB;
    fast!.rate = 64 * MiB;
    const stolen = uneven.take(64 * MiB);
    expect(stolen?.end).toBe(4 * MiB);
    expect(slow!.end).toBe(stolen!.start);
  });

  it('splits a straggler while there is still untaken work', () => {
    const plan = new RangePlan(GiB, 4 * MiB, undefined, 16);
    const pieces = takeAll(plan, 16);
    for (const p of pieces) p.rate = 16 * MiB;
    const straggler = pieces[1]!;
    straggler.rate = 1 * MiB;
    const oldEnd = straggler.end;
    finish(plan, pieces[0]!);
    const next = plan.take(16 * MiB)!;
    // Not the next untaken piece: the rest of the crawling range, most of it.
    expect(next.end).toBe(oldEnd);
    expect(straggler.end).toBe(next.start);
    expect(next.end - next.start).toBeGreaterThan(((oldEnd - straggler.pos) * 15) / 16);
  });

  it('keeps one piece for the open-ended first request once the size is known', () => {
    const plan = new RangePlan(undefined, 4 * MiB, undefined, 16);
    const first = plan.take()!;
    expect(first.end).toBe(Number.POSITIVE_INFINITY);
    plan.setSize(GiB);
    expect(plan.size).toBe(GiB);
    expect(first.end).toBe(32 * MiB);
    expect(plan.take()).toMatchObject({ start: 32 * MiB });
  });

  it('merges finished neighbours, so the record and the prefix stay short', () => {
    const plan = new RangePlan(GiB, 4 * MiB, undefined, 16);
    const [a, b, c] = takeAll(plan, 3);
    finish(plan, b!);
    expect(plan.contiguousPrefix()).toBe(0);
    finish(plan, a!);
    finish(plan, c!);
    expect(plan.contiguousPrefix()).toBe(c!.end);
    expect(plan.records()).toEqual([
      { start: 0, pos: c!.end, end: c!.end },
      { start: c!.end, pos: c!.end, end: GiB },
    ]);
  });
});
