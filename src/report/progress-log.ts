import type { ProgressListener, ProgressSnapshot } from '../download/types.js';
import { formatBytes, formatRate, percent } from './format.js';

/**
 * Progress as plain lines for logs (the action, a CLI without a terminal): at most one batch
 * every `intervalMs`, a line per file being fetched and a total, never a line per chunk.
 */
export function progressLines(write: (line: string) => void, intervalMs = 5000): ProgressListener {
  let last = 0;
  return (snapshot: ProgressSnapshot) => {
    const now = Date.now();
    const active = snapshot.blobs.filter((b) => b.state === 'downloading');
    if (active.length === 0 || now - last < intervalMs) return;
    last = now;
    for (const line of describe(snapshot)) write(line);
  };
}

export function describe(snapshot: ProgressSnapshot): string[] {
  const active = snapshot.blobs.filter((b) => b.state === 'downloading');
  const lines = active.map(
    (b) =>
      `  ${b.label}: ${formatBytes(b.done)} of ${b.total === undefined ? '?' : formatBytes(b.total)} (${percent(b.done, b.total)}) at ${formatRate(b.rate)}`,
  );
  const eta = snapshot.rate > 0 ? Math.ceil((snapshot.total - snapshot.done) / snapshot.rate) : undefined;
  lines.push(
    `downloading: ${formatBytes(snapshot.done)} of ${formatBytes(snapshot.total)} (${percent(snapshot.done, snapshot.total)}) at ${formatRate(snapshot.rate)}${eta !== undefined ? `, about ${eta} s left` : ''}`,
  );
  return lines;
}
