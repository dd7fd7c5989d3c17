import type { BlobProgress, ProgressSnapshot } from '../../src/download/types.js';
import { describe as progressText } from '../../src/report/progress-log.js';

// Progress as plain log lines (CI logs, pipes): what a batch says must be true.

const MiB = 1024 * 1024;

function snapshot(blobs: BlobProgress[], rate: number): ProgressSnapshot {
  return {
    blobs,
    done: blobs.reduce((s, b) => s + b.done, 0),
    total: blobs.reduce((s, b) => s + (b.total ?? b.done), 0),
    rate,
    elapsedMs: 1000,
  };
}

const blob = (label: string, done: number, total: number | undefined): BlobProgress => ({
  label,
  target: `/t/${label}`,
  done,
  total,
  rate: MiB,
  state: 'downloading',
});

test('with a size still unknown, no total and no time left (never "about 0 s left" with MiBs to go)', () => {
  const lines = progressText(
    snapshot([blob('a.gguf', 20 * MiB, 150 * MiB), blob('b.gguf', 5 * MiB, undefined)], 2 * MiB),
  );
  expect(lines).toEqual([
    '  a.gguf: 20.0 MiB of 150.0 MiB (13%) at 1.0 MiB/s',
    '  b.gguf: 5.0 MiB of ? (?%) at 1.0 MiB/s',
    'downloading: 25.0 MiB of ? (?%) at 2.0 MiB/s',
  ]);
});

test('every size known: the time left, rounded up', () => {
  const lines = progressText(snapshot([blob('a.gguf', 20 * MiB, 150 * MiB)], 2 * MiB));
  expect(lines.at(-1)).toBe('downloading: 20.0 MiB of 150.0 MiB (13%) at 2.0 MiB/s, about 1m05s left');
  const almost = progressText(snapshot([blob('a.gguf', 150 * MiB - 1, 150 * MiB)], 100 * MiB));
  expect(almost.at(-1)).toMatch(/, about 1s left$/);
});

test('bytes fetched again after a restart never push a file past 100%', () => {
  const lines = progressText(snapshot([blob('a.gguf', 258 * MiB, 257 * MiB)], MiB));
  expect(lines[0]).toBe('  a.gguf: 257.0 MiB of 257.0 MiB (100%) at 1.0 MiB/s');
});
