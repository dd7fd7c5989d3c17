import cliProgress from 'cli-progress';
import type { BlobProgress, ProgressListener, ProgressSnapshot } from '../download/types.js';
import { formatBytes, formatRate } from '../report/format.js';
import { printable } from '../report/text.js';

export interface ProgressBars {
  readonly listener: ProgressListener;
  /** Prints a line above the bars (writing to the stream directly would tear them). */
  log(line: string): void;
  /** Draws the last state and gives the cursor back; call once, also after an error. */
  stop(): void;
}

/**
 * Live bars for a terminal: a total (rate, ETA) on top and one bar per file being fetched below
 * it; a file's bar goes away when the file is done, so a repo of many files stays readable.
 * cli-progress does the redrawing (cursor moves, clipping to the terminal width); we only feed it.
 */
export function progressBars(stream: NodeJS.WriteStream): ProgressBars {
  const columns = stream.columns || 80;
  // " {bar} 100% {label} 123.4 MiB/123.4 MiB 123.4 MiB/s ETA 12m34s": everything but the label
  // takes about 50 columns plus the bar; the label gets what is left of the line.
  const barsize = columns >= 100 ? 20 : 10;
  const labelWidth = Math.max(12, Math.min(40, columns - barsize - 52));
  const multi = new cliProgress.MultiBar(
    {
      stream,
      hideCursor: true,
      clearOnComplete: false,
      format: ' {bar} {pctText} {labelText} {amountText} {rateText} {etaText}',
      barsize,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const total = multi.create(1, 0, fields('total', 0, undefined, 0, labelWidth));
  const bars = new Map<string, cliProgress.SingleBar>();
  const listener = (snapshot: ProgressSnapshot) => {
    for (const blob of snapshot.blobs) updateFile(blob);
    // The snapshot counts an unknown size as what has arrived so far; the total is then unknown.
    const known =
      snapshot.total > 0 && snapshot.blobs.every((b) => b.total !== undefined || b.state === 'done');
    draw(total, 'total', snapshot.done, known ? snapshot.total : undefined, snapshot.rate);
  };
  const updateFile = (blob: BlobProgress) => {
    let bar = bars.get(blob.target);
    if (blob.state === 'done' || blob.state === 'failed') {
      if (bar) multi.remove(bar);
      bars.delete(blob.target);
      return;
    }
    if (blob.state !== 'downloading' && blob.state !== 'verifying') return;
    if (!bar) {
      bar = multi.create(1, 0, fields(blob.label, 0, blob.total, 0, labelWidth));
      bars.set(blob.target, bar);
    }
    draw(bar, blob.label, blob.done, blob.total, blob.rate);
  };
  const draw = (
    bar: cliProgress.SingleBar,
    label: string,
    done: number,
    all: number | undefined,
    rate: number,
  ) => {
    // An unknown size (a plain URL before its first response) shows an empty bar, not a full one.
    bar.setTotal(all ?? 1);
    bar.update(all === undefined ? 0 : Math.min(done, all), fields(label, done, all, rate, labelWidth));
  };
  let stopped = false;
  return {
    listener,
    log: (line) => multi.log(`${line}\n`),
    stop: () => {
      if (stopped) return;
      stopped = true;
      multi.update(); // flushes lines logged since the last redraw
      multi.stop();
    },
  };
}

/** The payload of one bar line, each field padded to a fixed width so columns line up. */
export function fields(
  label: string,
  done: number,
  all: number | undefined,
  rate: number,
  labelWidth: number,
) {
  const pct = all ? `${Math.min(100, Math.floor((done / all) * 100))}%` : '?%';
  const remaining = all === undefined ? undefined : all - done;
  // Own names: cli-progress fills `eta`, `percentage`, `value`… itself and would win.
  return {
    pctText: pct.padStart(4),
    labelText: shorten(printable(label), labelWidth).padEnd(labelWidth),
    amountText: `${formatBytes(done)}/${all === undefined ? '?' : formatBytes(all)}`.padStart(19),
    rateText: formatRate(rate).padStart(11),
    etaText: `ETA ${remaining !== undefined && rate > 0 ? formatEta(remaining / rate) : '?'}`,
  };
}

/**
 * What identifies a file in little room: the reference without its `key=value` options (a
 * URL's sha256 says nothing to a reader), then its end, where file and layer names are.
 */
export function shorten(label: string, width: number): string {
  const words = label.split(/\s+/).filter((w) => !/^[a-z0-9_-]+=/i.test(w));
  const text = words.join(' ');
  return text.length > width ? `…${text.slice(-(width - 1))}` : text;
}

export function formatEta(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
