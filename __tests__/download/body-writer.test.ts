import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { writeBody } from '../../src/download/body-writer.js';
import type { Segment } from '../../src/download/range-plan.js';
import { tempDir } from '../helpers/http.js';

const KiB = 1024;

/** Distinct 64 KiB chunks, each its own allocation (as socket reads are). */
function chunks(n: number, size = 64 * KiB): Buffer[] {
  return Array.from({ length: n }, (_, i) => Buffer.alloc(size, i + 1));
}

function segment(start: number, end: number): Segment {
  return { start, pos: start, end, taken: true, rate: 0 };
}

describe('writeBody', () => {
  let dir: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await dir.remove();
  });

  async function run(body: Readable, seg: Segment, bodyEnd?: number) {
    const file = await open(join(dir.path, 'data'), 'w+');
    const landed: [number, number][] = [];
    try {
      const outcome = await writeBody(body, {
        file,
        segment: seg,
        bodyEnd,
        bodyError: (error) => new Error(`mapped: ${(error as Error).message}`),
        landed: (offset, bytes) => {
          landed.push([offset, bytes.length]);
        },
      }).then(
        () => undefined,
        (error: Error) => error,
      );
      return { outcome, landed, data: await readFile(join(dir.path, 'data')) };
    } finally {
      await file.close();
    }
  }

  it('writes at the segment offsets and reports the bytes in file order', async () => {
    const parts = chunks(20);
    const expected = Buffer.concat(parts);
    const seg = segment(1000, 1000 + expected.length);
    const { outcome, landed, data } = await run(Readable.from(parts), seg, seg.end);
    expect(outcome).toBeUndefined();
    expect(seg.pos).toBe(seg.end);
    expect(data.subarray(1000).equals(expected)).toBe(true);
    let at = 1000;
    for (const [offset, length] of landed) {
      expect(offset).toBe(at);
      at += length;
    }
    expect(at).toBe(seg.end);
  });

  it('stops where a thief moved the end, and lets go of the rest of the body', async () => {
    const parts = chunks(20);
    const expected = Buffer.concat(parts); // written chunks are detached afterwards
    const seg = segment(0, 20 * 64 * KiB);
    seg.end = 5 * 64 * KiB + 100; // stolen before the body arrived
    const body = Readable.from(parts);
    const { outcome, data } = await run(body, seg, 20 * 64 * KiB);
    expect(outcome).toBeUndefined();
    expect(seg.pos).toBe(seg.end);
    expect(data.length).toBe(seg.end);
    expect(data.equals(expected.subarray(0, seg.end))).toBe(true);
    expect(body.destroyed).toBe(true);
  });

  it('keeps the bytes that arrived before a reset and reports the mapped error', async () => {
    const parts = chunks(3);
    const expected = Buffer.concat(parts);
    // The reset comes when the reader asks for more than the three chunks: after they were
    // delivered, whatever the machine's load (no timer deciding the order).
    let delivered = false;
    const body = new Readable({
      read() {
        if (delivered) this.destroy(new Error('socket hang up'));
      },
    });
    for (const p of parts) body.push(p);
    delivered = true;
    const seg = segment(0, 10 * 64 * KiB);
    const { outcome, data } = await run(body, seg, seg.end);
    expect((outcome as Error).message).toBe('mapped: socket hang up');
    expect(seg.pos).toBe(3 * 64 * KiB);
    expect(data.equals(expected)).toBe(true);
  });

  it('frees a chunk it owns entirely once written, and never a shared one', async () => {
    const owned = Buffer.alloc(64 * KiB, 7);
    const backing = Buffer.alloc(128 * KiB, 9);
    const shared = backing.subarray(0, 64 * KiB);
    const seg = segment(0, 128 * KiB);
    const { outcome, data } = await run(Readable.from([owned, shared]), seg, seg.end);
    expect(outcome).toBeUndefined();
    expect(data.subarray(0, 64 * KiB).every((b) => b === 7)).toBe(true);
    expect(data.subarray(64 * KiB).every((b) => b === 9)).toBe(true);
    expect(owned.buffer.byteLength).toBe(0); // detached: its memory went back right away
    expect(backing.length).toBe(128 * KiB); // another view still uses it: left alone
    expect(backing[100 * KiB]).toBe(9);
  });
});
