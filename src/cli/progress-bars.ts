import cliProgress from 'cli-progress';
import type { BlobProgress, ProgressListener, ProgressSnapshot } from '../download/types.js';
import { formatBytes, formatDuration, formatEta, formatRate } from '../report/format.js';
import { printable } from '../report/text.js';

export interface ProgressBars {
  readonly listener: ProgressListener;
  /** Prints a line above the bars (writing to the stream directly would tear them). */
  log(line: string): void;
  /** Draws the last state and gives the cursor back; call once, also after an error. */
  stop(): void;
}

/**
 * Live bars for a terminal: one bar per file being fetched and a total (rate, time left) below
 * them. A finished file leaves its bar for one `✓ name size time` line above the bars, a failed
 * one a `✗ name: reason` line, so a repository of many files stays readable. Files checked on
 * disk get no bar: nothing is downloaded for them (the log lines say `verifying`). cli-progress
 * does the redrawing (cursor moves, clipping to the terminal width); we only feed it.
 */
export function progressBars(stream: NodeJS.WriteStream): ProgressBars {
  const columns = stream.columns || 80;
  const layout = barLayout(columns);
  // Small files run many at once (up to concurrency × connections): past a screenful of bars
  // the display would scroll and tear, so files beyond the cap wait for a free bar and the
  // total counts them (`total, 12 more files`). Their bytes are in the total all along.
  const maxBars = fileBarLimit(stream.rows);
  const multi = new cliProgress.MultiBar(
    {
      stream,
      hideCursor: true,
      clearOnComplete: false,
      format: ' {labelText} {bar} {pctText} {amountText} {rateText}{etaText}',
      barsize: layout.barsize,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  const ended = new Set<string>();
  let unseen = 0;
  let total: cliProgress.SingleBar | undefined;
  // cli-progress turns the terminal's line wrap off while it draws, so a line longer than the
  // screen would be cut: it is wrapped here instead, nothing lost. It clears only the first row
  // of what it prints between two frames, so each row clears itself (ESC[2K): a second line
  // printed over a longer bar would otherwise keep the bar's tail.
  const log = (line: string) =>
    multi.log(
      `${wrap(line, columns)
        .split('\n')
        .map((row) => `\x1b[2K${row}`)
        .join('\n')}\n`,
    );
  const listener = (snapshot: ProgressSnapshot) => {
    unseen = 0;
    for (const blob of snapshot.blobs) updateFile(blob);
    // The total appears with the first download: a run that only verifies shows no rate at all.
    if (!total && bars.size === 0) return;
    // The snapshot counts an unknown size as what has arrived so far; the total is then unknown.
    const known =
      snapshot.total > 0 && snapshot.blobs.every((b) => b.total !== undefined || b.state === 'done');
    total ??= multi.create(1, 0, fields('total', 0, undefined, 0, layout.label));
    const label = unseen > 0 ? `total, ${unseen} more file${unseen === 1 ? '' : 's'}` : 'total';
    draw(total, label, snapshot.done, known ? snapshot.total : undefined, snapshot.rate, true);
  };
  const updateFile = (blob: BlobProgress) => {
    let bar = bars.get(blob.target);
    if (blob.state === 'done' || blob.state === 'failed') {
      if (bar) multi.remove(bar);
      bars.delete(blob.target);
      // One line per file this run fetched (a file found good on disk was never fetched), even
      // one that finished between two frames and never had a bar.
      if (blob.fetchMs === undefined || ended.has(blob.target)) return;
      ended.add(blob.target);
      const name = shorten(printable(blob.label), layout.line);
      if (blob.state === 'done')
        log(` ✓ ${name} ${formatBytes(blob.total ?? blob.done)} ${formatDuration(blob.fetchMs)}`);
      else log(` ✗ ${name}: ${printable(withoutLabel(blob.error ?? 'failed', blob.label))}`);
      return;
    }
    if (blob.state !== 'downloading' && blob.state !== 'verifying') return;
    if (!bar && bars.size >= maxBars) {
      unseen += 1;
      return;
    }
    if (!bar) {
      // Above the total, which stays the last line.
      bar = multi.create(1, 0, fields(blob.label, 0, blob.total, 0, layout.label), {});
      if (total) {
        multi.remove(total);
        total = multi.create(1, 0, fields('total', 0, undefined, 0, layout.label));
      }
      bars.set(blob.target, bar);
    }
    draw(bar, blob.label, blob.done, blob.total, blob.rate, false);
  };
  const draw = (
    bar: cliProgress.SingleBar,
    label: string,
    done: number,
    all: number | undefined,
    rate: number,
    eta: boolean,
  ) => {
    // An unknown size (a plain URL before its first response) shows an empty bar, not a full one.
    bar.setTotal(all ?? 1);
    bar.update(
      all === undefined ? 0 : Math.min(done, all),
      fields(label, done, all, rate, layout.label, eta),
    );
  };
  let stopped = false;
  return {
    listener,
    log,
    stop: () => {
      if (stopped) return;
      stopped = true;
      multi.update(); // flushes lines logged since the last redraw
      multi.stop();
    },
  };
}

/** How many file bars a terminal of `rows` lines shows at most: 8, fewer on a short screen. */
export function fileBarLimit(rows: number | undefined): number {
  return Math.max(1, Math.min(8, (rows || 24) - 4));
}

/** An engine error names its file first; the ✗ line has named it already. */
function withoutLabel(error: string, label: string): string {
  return error.startsWith(`${label}: `) ? error.slice(label.length + 2) : error;
}

/** `text` cut into lines of at most `width` characters. */
export function wrap(text: string, width: number): string {
  const chars = [...text];
  const lines: string[] = [];
  for (let i = 0; i < chars.length; i += width) lines.push(chars.slice(i, i + width).join(''));
  return lines.join('\n');
}

/**
 * Widths for a terminal of `columns`: the numbers after the label take about 45 columns plus
 * the bar; the label gets the rest (log lines about a file, the whole width less their marks).
 */
export function barLayout(columns: number): { barsize: number; label: number; line: number } {
  const barsize = columns >= 110 ? 20 : 10;
  return {
    barsize,
    label: Math.max(20, Math.min(60, columns - barsize - 46)),
    line: Math.max(20, columns - 30),
  };
}

/** The payload of one bar line, each field padded to a fixed width so columns line up. */
export function fields(
  label: string,
  done: number,
  all: number | undefined,
  rate: number,
  labelWidth: number,
  eta = true,
) {
  // Never past the end: bytes fetched again after a restart are traffic, not progress.
  const shown = all === undefined ? done : Math.min(done, all);
  const pct = all ? `${Math.floor((shown / all) * 100)}%` : '?%';
  const remaining = all === undefined ? undefined : all - shown;
  // Own names: cli-progress fills `eta`, `percentage`, `value`… itself and would win.
  return {
    pctText: pct.padStart(4),
    labelText: shorten(printable(label), labelWidth).padEnd(labelWidth),
    amountText: amount(shown, all).padStart(17),
    rateText: formatRate(rate).padStart(11),
    etaText: !eta
      ? ''
      : remaining === 0
        ? ''
        : ` ETA ${remaining !== undefined && rate > 0 ? formatEta(remaining / rate) : '?'}`,
  };
}

/** `12.3/257.0 MiB`, or `12.3 KiB/1.0 GiB` when the units differ, or `12.3 MiB/?`. */
function amount(done: number, all: number | undefined): string {
  if (all === undefined) return `${formatBytes(done)}/?`;
  const [n, unit] = formatBytes(done).split(' ');
  const whole = formatBytes(all);
  return whole.endsWith(` ${unit}`) ? `${n}/${whole}` : `${formatBytes(done)}/${whole}`;
}

/**
 * What identifies a file in little room: the reference without its `key=value` options (a
 * URL's sha256 says nothing to a reader), shortened in the middle so that the file name stays
 * whole (two shards must never read alike); a file name longer than the room keeps its start
 * (where shards differ) and its end (the extension).
 */
export function shorten(label: string, width: number): string {
  const words = label.split(/\s+/).filter((w) => !/^[a-z0-9_-]+=/i.test(w));
  const text = words.join(' ');
  if (text.length <= width) return text;
  const cut = Math.max(text.lastIndexOf('/'), text.lastIndexOf(' ')) + 1;
  const name = text.slice(cut);
  if (name.length + 2 <= width) return `${text.slice(0, width - name.length - 1)}…${name}`;
  const end = Math.min(name.length, Math.floor((width - 1) / 3));
  return `${name.slice(0, width - 1 - end)}…${name.slice(name.length - end)}`;
}
