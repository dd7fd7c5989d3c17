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
 * Where the connections of one blob fetch from. The first connection asks the source; the URL
 * a redirect lands on (a signed CDN URL) is shared with the others, so sixteen ranges cost the
 * registry one request, not sixteen. When that URL expires, one refresh serves every connection.
 */
export class Locator {
  private current: Promise<BlobLocation> | undefined;
  private learned: string | undefined;
  private refreshes = 0;
  private writtenAtRefresh = 0;
  private generation = 0;
  lastUrl: string | undefined;

  constructor(
    private readonly blob: BlobSpec,
    private readonly signal?: AbortSignal,
  ) {}

  async get(): Promise<Target & { generation: number }> {
    if (!this.current) {
      // A failed locate (a token service hiccup) is forgotten, so the retry asks again.
      const pending = this.blob.locate(this.signal);
      this.current = pending;
      pending.catch(() => {
        if (this.current === pending) this.current = undefined;
      });
    }
    const location = await this.current;
    const url = this.learned ?? location.url;
    this.lastUrl = url;
    return { url, location, redirected: this.learned !== undefined, generation: this.generation };
  }

  /** Remembers where a redirect led, for the other connections. */
  learn(finalUrl: string, requested: string): void {
    if (finalUrl !== requested) this.learned = finalUrl;
    this.lastUrl = finalUrl;
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
    this.current = undefined;
  }
}
