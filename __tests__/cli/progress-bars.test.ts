import { PassThrough } from 'node:stream';
import { fields, formatEta, progressBars, shorten } from '../../src/cli/progress-bars.js';
import type { BlobProgress, ProgressSnapshot } from '../../src/download/types.js';

// The bars themselves are cli-progress's; what is ours is what goes in them and when a bar
// comes and goes. A PassThrough that says it is a 100-column terminal records the drawing.

function terminal(): { stream: NodeJS.WriteStream; output(): string } {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough;
  Object.assign(stream, { isTTY: true, columns: 100, cursorTo: () => true, moveCursor: () => true });
  let text = '';
  stream.on('data', (d: Buffer) => {
    text += d.toString();
  });
  return { stream, output: () => text };
}

const blob = (label: string, done: number, total: number | undefined, state: BlobProgress['state']) => ({
  label,
  target: `/store/${label}`,
  done,
  total,
  rate: 1024 * 1024,
  state,
});

function snapshot(blobs: BlobProgress[]): ProgressSnapshot {
  const done = blobs.reduce((s, b) => s + b.done, 0);
  return {
    blobs,
    done,
    total: blobs.reduce((s, b) => s + (b.total ?? b.done), 0),
    rate: 2 * 1024 * 1024,
    elapsedMs: 1,
  };
}

describe('bar fields', () => {
  test.each([
    ['https://host.example/models/tiny.gguf sha256=abcdef', 40, 'https://host.example/models/tiny.gguf'],
    [
      'https://a-very-long-host.example.com/models/qwen2.5-0.5b-instruct-q4_k_m.gguf',
      24,
      '…5b-instruct-q4_k_m.gguf',
    ],
    ['hf:Qwen/Qwen2.5-0.5B model.safetensors include=*.json', 40, 'hf:Qwen/Qwen2.5-0.5B model.safetensors'],
  ])('shorten(%j, %d)', (label, width, expected) => {
    expect(shorten(label, width)).toBe(expected);
    expect(expected.length).toBeLessThanOrEqual(width);
  });

  it('an unknown size shows ?% and no ETA instead of a made-up one', () => {
    const f = fields('tiny.gguf', 5 * 1024 * 1024, undefined, 1024 * 1024, 12);
    expect(f).toEqual({
      pctText: '  ?%',
      labelText: 'tiny.gguf   ',
      amountText: '      5.0 MiB/?'.padStart(19),
      rateText: '  1.0 MiB/s',
      etaText: 'ETA ?',
    });
  });

  it('a known size shows the percentage and the time left at the current rate', () => {
    const f = fields('total', 1024 * 1024, 4 * 1024 * 1024, 1024 * 1024, 8);
    expect(f.pctText).toBe(' 25%');
    expect(f.amountText.trim()).toBe('1.0 MiB/4.0 MiB');
    expect(f.etaText).toBe('ETA 3s');
  });

  test.each([
    [0.2, '1s'],
    [59, '59s'],
    [61, '1m01s'],
    [3600 + 120, '1h02m'],
  ])('formatEta(%d) = %s', (seconds, text) => {
    expect(formatEta(seconds)).toBe(text);
  });
});

describe('progressBars on a terminal', () => {
  it('draws a total and a bar per file in flight, drops finished files, gives the cursor back', async () => {
    const { stream, output } = terminal();
    const bars = progressBars(stream);
    try {
      const MiB = 1024 * 1024;
      bars.listener(snapshot([blob('a.gguf', MiB, 2 * MiB, 'downloading'), blob('b.bin', 0, 10, 'queued')]));
      // cli-progress redraws on its own timer (5 per second); wait for the first frame.
      const deadline = Date.now() + 3000;
      while (!output().includes('a.gguf') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      const first = output();
      expect(first).toContain('\u001b[?25l'); // cursor hidden while drawing
      expect(first).toMatch(/\s49% total +1\.0 MiB\/2\.0 MiB +2\.0 MiB\/s ETA 1s/);
      expect(first).toMatch(/ 50% a\.gguf +1\.0 MiB\/2\.0 MiB +1\.0 MiB\/s ETA 1s/);
      expect(first).not.toContain('b.bin'); // queued: no bar yet
      bars.log('a line logged while the bars run');
      bars.listener(
        snapshot([blob('a.gguf', 2 * MiB, 2 * MiB, 'done'), blob('b.bin', 5, 10, 'downloading')]),
      );
      bars.stop();
      bars.stop(); // idempotent
      const rest = output().slice(first.length);
      expect(rest).toContain('a line logged while the bars run\n');
      expect(rest).toMatch(/ 50% b\.bin /);
      expect(rest).not.toContain('a.gguf'); // done: its bar is gone
      expect(rest).toContain('\u001b[?25h'); // cursor shown again
    } finally {
      bars.stop();
    }
  });
});
