import { PassThrough } from 'node:stream';
import { fields, fileBarLimit, progressBars, shorten } from '../../src/cli/progress-bars.js';
import type { BlobProgress, ProgressSnapshot } from '../../src/download/types.js';
import { formatEta } from '../../src/report/format.js';

// The bars themselves are cli-progress's; what is ours is what goes in them and when a bar
// comes and goes. A PassThrough that says it is a 100-column terminal records the drawing.

function terminal(rows?: number): { stream: NodeJS.WriteStream; output(): string } {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough;
  Object.assign(stream, { isTTY: true, columns: 100, rows, cursorTo: () => true, moveCursor: () => true });
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
    // Shortened in the middle: the file name stays whole.
    [
      'https://a-very-long-host.example.com/models/qwen2.5-0.5b-instruct-q4_k_m.gguf',
      40,
      'https:…qwen2.5-0.5b-instruct-q4_k_m.gguf',
    ],
    ['hf:Qwen/Qwen2.5-0.5B model.safetensors include=*.json', 40, 'hf:Qwen/Qwen2.5-0.5B model.safetensors'],
    [
      'hf:Qwen/Qwen2.5-7B-Instruct model-00002-of-00004.safetensors',
      40,
      'hf:Qwen…model-00002-of-00004.safetensors',
    ],
    // A file name longer than the room keeps its start (where shards differ) and its extension.
    ['hf:Qwen/Qwen2.5-7B-Instruct model-00002-of-00004.safetensors', 24, 'model-00002-of-0…tensors'],
  ])('shorten(%j, %d)', (label, width, expected) => {
    expect(shorten(label, width)).toBe(expected);
    expect(expected.length).toBeLessThanOrEqual(width);
  });

  it('two shards never read alike in any room a bar gives a label', () => {
    const shard = (n: number) => `hf:Qwen/Qwen2.5-72B-Instruct model-0000${n}-of-00004.safetensors`;
    for (let width = 20; width <= 70; width++)
      expect(shorten(shard(1), width)).not.toBe(shorten(shard(2), width));
  });

  it('an unknown size shows ?% and no ETA instead of a made-up one', () => {
    const f = fields('tiny.gguf', 5 * 1024 * 1024, undefined, 1024 * 1024, 12);
    expect(f).toEqual({
      pctText: '  ?%',
      labelText: 'tiny.gguf   ',
      amountText: '5.0 MiB/?'.padStart(17),
      rateText: '  1.0 MiB/s',
      etaText: ' ETA ?',
    });
  });

  it('a known size shows the percentage and the time left at the current rate', () => {
    const f = fields('total', 1024 * 1024, 4 * 1024 * 1024, 1024 * 1024, 8);
    expect(f.pctText).toBe(' 25%');
    expect(f.amountText.trim()).toBe('1.0/4.0 MiB');
    expect(f.etaText).toBe(' ETA 3s');
  });

  it('never past 100%: bytes fetched again after a restart are not progress', () => {
    const MiB = 1024 * 1024;
    const f = fields('model.gguf', 258 * MiB, 257 * MiB, MiB, 20);
    expect(f.pctText).toBe('100%');
    expect(f.amountText.trim()).toBe('257.0/257.0 MiB');
    expect(f.etaText).toBe('');
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

/** Waits until cli-progress (which redraws 5 times a second) has drawn `text`. */
async function drawn(output: () => string, text: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!output().includes(text) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

describe('progressBars on a terminal', () => {
  it('draws a bar per file in flight and a total; a finished file becomes a ✓ line, a failed one a ✗ line', async () => {
    const { stream, output } = terminal();
    const bars = progressBars(stream);
    try {
      const MiB = 1024 * 1024;
      bars.listener(snapshot([blob('a.gguf', MiB, 2 * MiB, 'downloading'), blob('b.bin', 0, 10, 'queued')]));
      await drawn(output, 'a.gguf');
      const first = output();
      expect(first).toContain('\u001b[?25l'); // cursor hidden while drawing
      expect(first).toMatch(/ total +\S+ +49% +1\.0\/2\.0 MiB +2\.0 MiB\/s ETA 1s/);
      expect(first).toMatch(/ a\.gguf +\S+ +50% +1\.0\/2\.0 MiB +1\.0 MiB\/s/);
      expect(first).not.toContain('b.bin'); // queued: no bar yet
      bars.log('a line logged while the bars run');
      const done = { ...blob('a.gguf', 2 * MiB, 2 * MiB, 'done'), fetchMs: 2500 };
      bars.listener(
        snapshot([done, blob('b.bin', 5, 10, 'downloading'), blob('c.bin', 0, 10, 'downloading')]),
      );
      bars.listener(
        snapshot([
          done,
          blob('b.bin', 5, 10, 'downloading'),
          { ...blob('c.bin', 0, 10, 'failed'), error: 'c.bin: HTTP 404 from h', fetchMs: 10 },
          // Fetched between two frames: it never had a bar, and still gets its line.
          { ...blob('d.bin', 7, 7, 'done'), fetchMs: 300 },
          // Found good on disk: nothing was fetched, no line.
          blob('e.bin', 7, 7, 'done'),
        ]),
      );
      bars.stop();
      bars.stop(); // idempotent
      const rest = output().slice(first.length);
      expect(rest).toContain('a line logged while the bars run\n');
      expect(rest).toContain(' ✓ a.gguf 2.0 MiB 2.5 s\n');
      expect(rest).toContain(' ✗ c.bin: HTTP 404 from h\n');
      expect(rest).toContain(' ✓ d.bin 7 B 300 ms\n');
      expect(rest).not.toContain('e.bin');
      expect(rest.split(' ✓ a.gguf')).toHaveLength(2); // told once
      expect(rest).toMatch(/ b\.bin +\S+ +50% /);
      expect(rest).not.toMatch(/ a\.gguf +\S+ +\d+%/); // done: its bar is gone
      expect(rest).toContain('\u001b[?25h'); // cursor shown again
    } finally {
      bars.stop();
    }
  });

  test.each([
    [undefined, 8],
    [40, 8],
    [10, 6],
    [3, 1],
  ])('a terminal of %p rows shows at most %d file bars', (rows, limit) => {
    expect(fileBarLimit(rows)).toBe(limit);
  });

  it('many small files in flight: at most a screenful of bars, the rest counted in the total', async () => {
    const { stream, output } = terminal(10); // room for 6 file bars
    const bars = progressBars(stream);
    try {
      const names = Array.from({ length: 9 }, (_, i) => `shard-${i}.bin`);
      bars.listener(snapshot(names.map((n) => blob(n, 1, 4, 'downloading'))));
      await drawn(output, 'total, 3 more files');
      const first = output();
      for (const n of names.slice(0, 6)) expect(first).toMatch(new RegExp(` ${n} +\\S+ +25% `));
      for (const n of names.slice(6)) expect(first).not.toContain(n);
      // Two finish: two of the waiting files get the freed bars, one is still counted.
      const done = names.slice(0, 2).map((n) => ({ ...blob(n, 4, 4, 'done'), fetchMs: 5 }));
      bars.listener(snapshot([...done, ...names.slice(2).map((n) => blob(n, 2, 4, 'downloading'))]));
      await drawn(output, 'total, 1 more file ');
      const rest = output().slice(first.length);
      expect(rest).toMatch(/ shard-6\.bin +\S+ +50% /);
      expect(rest).toMatch(/ shard-7\.bin +\S+ +50% /);
      expect(rest).not.toMatch(/ shard-8\.bin +\S+ +\d+%/);
      expect(rest).toContain(' ✓ shard-0.bin 4 B 5 ms\n');
    } finally {
      bars.stop();
    }
  });

  it('a run that only verifies files on disk draws no bar and no rate', async () => {
    const { stream, output } = terminal();
    const bars = progressBars(stream);
    bars.listener(snapshot([blob('a.gguf', 0, 2048, 'checking')]));
    bars.listener(snapshot([blob('a.gguf', 2048, 2048, 'done')]));
    bars.log('ollama:a: verifying');
    bars.stop();
    expect(output()).toContain('ollama:a: verifying\n');
    expect(output()).not.toMatch(/total|\/s|✓/);
  });
});
