import cliProgress from 'cli-progress';
import type { ProgressListener, ProgressSnapshot } from '../download/types.js';
import { formatBytes, formatRate } from '../report/format.js';

/**
 * Live bars for a terminal: one per file being fetched plus a total with rate and ETA.
 * cli-progress does the redrawing (cursor moves, terminal width, no flicker); we only feed it.
 */
export function progressBars(stream: NodeJS.WriteStream): { listener: ProgressListener; stop(): void } {
  const multi = new cliProgress.MultiBar(
    {
      stream,
      hideCursor: true,
      clearOnComplete: false,
      format: ' {bar} {percentage}% | {label} | {doneText} / {totalText} | {rateText} | ETA {eta_formatted}',
      barsize: 24,
      etaBuffer: 50,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  let total: cliProgress.SingleBar | undefined;
  const payload = (label: string, done: number, all: number | undefined, rate: number) => ({
    label,
    doneText: formatBytes(done),
    totalText: all === undefined ? '?' : formatBytes(all),
    rateText: formatRate(rate),
  });
  const listener = (snapshot: ProgressSnapshot) => {
    for (const blob of snapshot.blobs) {
      if (blob.state !== 'downloading' && !bars.has(blob.target)) continue;
      const size = blob.total ?? Math.max(blob.done, 1);
      let bar = bars.get(blob.target);
      if (!bar) {
        bar = multi.create(size, 0, payload(shorten(blob.label), 0, blob.total, 0));
        bars.set(blob.target, bar);
      }
      bar.setTotal(size);
      bar.update(blob.done, payload(shorten(blob.label), blob.done, blob.total, blob.rate));
    }
    const size = Math.max(snapshot.total, 1);
    total ??= multi.create(size, 0, payload('total', 0, snapshot.total, 0));
    total.setTotal(size);
    total.update(snapshot.done, payload('total', snapshot.done, snapshot.total, snapshot.rate));
  };
  return { listener, stop: () => multi.stop() };
}

function shorten(label: string): string {
  return label.length > 40 ? `…${label.slice(-39)}` : label;
}
