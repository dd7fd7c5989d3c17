import { ModelPullError } from '../errors.js';
import type { BlobLocation, BlobSpec } from './types.js';

/** How often one blob may ask its source for a fresh URL before we call it broken. */
const MAX_REFRESHES = 5;

export interface Target {
  readonly url: string;
  readonly location: BlobLocation;
  /** True when `url` was learned from a redirect (a signed CDN URL that may expire). */
  readonly redirected: boolean;
}

/**
 * Where the connections of one blob fetch from. The first connection asks the source and sends
 * the first request; the others wait for its answer, then share the URL a redirect landed on (a
 * signed CDN URL), so sixteen ranges cost the registry (the Hub's `resolve/`) one request, not
 * sixteen. When that URL expires, one refresh serves every connection the same way.
 */
export class Locator {
  private current: Promise<BlobLocation> | undefined;
  private learned: string | undefined;
  private refreshes = 0;
  private writtenAtRefresh = 0;
  private generation = 0;
  /** The source's URL answered with the bytes itself (no redirect): nothing to wait for. */
  private direct = false;
  /** The first request of this generation is on its way; the others wait for its answer. */
  private probe: { readonly done: Promise<void>; readonly settle: () => void } | undefined;
  lastUrl: string | undefined;

  constructor(
    private readonly blob: BlobSpec,
    private readonly signal?: AbortSignal,
  ) {}

  /**
   * The URL to request now. Until the first request of this location has answered, one caller
   * gets it (and must `learn` its answer or `unblock` after a failure) and the others wait.
   */
  async get(): Promise<Target & { generation: number; first: boolean }> {
    while (this.probe && this.learned === undefined && !this.direct) await this.probe.done;
    const first = this.learned === undefined && !this.direct;
    if (first) {
      let settle = (): void => undefined;
      const done = new Promise<void>((resolve) => {
        settle = resolve;
      });
      this.probe = { done, settle };
    }
    if (!this.current) {
      // A failed locate (a token service hiccup) is forgotten, so the retry asks again.
      const pending = this.blob.locate(this.signal);
      this.current = pending;
      pending.catch(() => {
        if (this.current === pending) this.current = undefined;
      });
    }
    let location: BlobLocation;
    try {
      location = await this.current;
    } catch (error) {
      if (first) this.unblock();
      throw error;
    }
    const url = this.learned ?? location.url;
    this.lastUrl = url;
    return { url, location, redirected: this.learned !== undefined, generation: this.generation, first };
  }

  /** Remembers where a redirect led, for the other connections. */
  learn(finalUrl: string, requested: string): void {
    if (finalUrl !== requested) this.learned = finalUrl;
    else if (this.learned === undefined) this.direct = true;
    this.lastUrl = finalUrl;
    this.unblock();
  }

  /** The first request (`first` from get) failed before an answer: the next caller tries in its place. */
  unblock(): void {
    const probe = this.probe;
    this.probe = undefined;
    probe?.settle();
  }

  /**
   * The signed URL expired: ask the source again (once for all connections that saw it).
   * `written` is the blob's progress: refreshes only count against the limit while no bytes
   * land between them, so a long download through short-lived URLs is not cut off.
   */
  expire(generation: number, written: number): void {
    if (generation !== this.generation) return;
    if (written > this.writtenAtRefresh) this.refreshes = 0;
    this.writtenAtRefresh = written;
    if (++this.refreshes > MAX_REFRESHES) {
      throw new ModelPullError(
        'ERR_URL_REFRESH_LIMIT',
        `${this.blob.label}: the download URL kept expiring (${MAX_REFRESHES} fresh URLs refused)`,
      );
    }
    this.generation++;
    this.learned = undefined;
    this.direct = false;
    this.current = undefined;
  }
}
