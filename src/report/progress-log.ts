import type { ProgressListener, ProgressSnapshot } from '../download/types.js';
import { formatBytes, formatEta, formatRate, percent } from './format.js';

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
  const lines = active.map((b) => {
    // Bytes fetched again after a restart are traffic: progress never passes the size.
    const done = b.total === undefined ? b.done : Math.min(b.done, b.total);
    return `  ${b.label}: ${formatBytes(done)} of ${b.total === undefined ? '?' : formatBytes(b.total)} (${percent(done, b.total)}) at ${formatRate(b.rate)}`;
  });
  // The time left only when every size is known (an unknown one counts as done so far, which
  // would promise the end too soon) and something is left.
  const known = snapshot.blobs.every((b) => b.total !== undefined || b.state === 'done');
  const left = snapshot.total - snapshot.done;
  const eta = known && left > 0 && snapshot.rate > 0 ? `, about ${formatEta(left / snapshot.rate)} left` : '';
  const total = known ? formatBytes(snapshot.total) : '?';
  lines.push(
    `downloading: ${formatBytes(Math.min(snapshot.done, snapshot.total))} of ${total} (${known ? percent(snapshot.done, snapshot.total) : '?%'}) at ${formatRate(snapshot.rate)}${eta}`,
  );
  return lines;
}
