import type { Clock } from '../clock.js';
import type { BlobProgress, ProgressListener, ProgressSnapshot } from './types.js';

const RATE_WINDOW_MS = 5000;

interface Entry {
  label: string;
  target: string;
  done: number;
  total: number | undefined;
  state: BlobProgress['state'];
  error?: string;
  samples: { at: number; done: number }[];
  /** When its download started and ended (a blob reused from disk has neither). */
  startedAt?: number;
  endedAt?: number;
}

/** Counts bytes per blob and hands snapshots (with rates over the last seconds) to a listener. */
export class ProgressTracker {
  private readonly entries: Entry[] = [];
  private readonly started: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly listener: ProgressListener | undefined,
    intervalMs: number,
    private readonly clock: Pick<Clock, 'now'>,
  ) {
    this.started = clock.now();
    if (listener) {
      this.timer = setInterval(() => this.emit(), intervalMs);
      this.timer.unref();
    }
  }

  add(label: string, target: string, total: number | undefined): Entry {
    const entry: Entry = { label, target, done: 0, total, state: 'queued', samples: [] };
    this.entries.push(entry);
    return entry;
  }

  /**
   * The blob's download begins now (its time counts from here); it shows as downloading once its
   * first attempt knows what is already staged (`startAt`), so no snapshot shows a resumed blob
   * at 0.
   */
  start(entry: Entry): void {
    entry.startedAt = this.clock.now();
  }

  /** The blob is in place with `size` bytes (downloaded, or found good on disk). */
  finish(entry: Entry, size: number): void {
    entry.state = 'done';
    entry.total = size;
    entry.done = size;
    if (entry.startedAt !== undefined) entry.endedAt = this.clock.now();
  }

  /**
   * An attempt starts with `staged` bytes in place (a resume, or 0 after a restart): the blob's
   * progress is that, and its rate counts from here, so neither a resume nor a restart looks
   * like a burst of download.
   */
  startAt(entry: Entry, staged: number): void {
    entry.state = 'downloading';
    entry.done = staged;
    entry.samples = [{ at: this.clock.now(), done: staged }];
  }

  snapshot(): ProgressSnapshot {
    const now = this.clock.now();
    const blobs = this.entries.map((e) => ({
      label: e.label,
      target: e.target,
      done: e.done,
      total: e.total,
      state: e.state,
      rate: rateOf(e, now),
      ...(e.error !== undefined ? { error: e.error } : {}),
      ...(e.startedAt !== undefined ? { fetchMs: (e.endedAt ?? now) - e.startedAt } : {}),
    }));
    return {
      blobs,
      done: blobs.reduce((sum, b) => sum + b.done, 0),
      total: blobs.reduce((sum, b) => sum + (b.total ?? b.done), 0),
      rate: blobs.reduce((sum, b) => sum + b.rate, 0),
      elapsedMs: now - this.started,
    };
  }

  /** Stops the ticker and sends a last snapshot. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.emit();
  }

  private emit(): void {
    this.listener?.(this.snapshot());
  }
}

function rateOf(entry: Entry, now: number): number {
  entry.samples.push({ at: now, done: entry.done });
  while (entry.samples.length > 2 && now - entry.samples[0]!.at > RATE_WINDOW_MS) entry.samples.shift();
  const first = entry.samples[0]!;
  const span = now - first.at;
  return span > 0 ? ((entry.done - first.done) * 1000) / span : 0;
}
