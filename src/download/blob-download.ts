import { type FileHandle, open } from 'node:fs/promises';
import { isModelPullError, ModelPullError } from '../errors.js';
import { pathExists } from '../fs-dirs.js';
import { type HttpClient, type HttpResponse, networkError, statusError } from '../http/client.js';
import { isRetryable, type RetryPolicy, realSleep, retryDelayMs } from '../http/retry.js';
import { writeBody } from './body-writer.js';
import { Locator } from './locator.js';
import { PrefixHasher } from './prefix-hasher.js';
import { RangePlan, type Segment } from './range-plan.js';
import { loadProgress, type StagingPaths, saveProgress, stagingPaths } from './staging.js';
import type { BlobSpec } from './types.js';

export interface DownloadTuning {
  readonly http: HttpClient;
  readonly connections: number;
  readonly retry: RetryPolicy;
  /** Smallest range worth its own request; also the floor of a steal. */
  readonly minSplit: number;
  /** Progress is recorded after this many new bytes (and at least every flushIntervalMs). */
  readonly flushBytes: number;
  readonly flushIntervalMs: number;
  readonly signal?: AbortSignal;
  readonly sleep?: typeof realSleep;
  /** Called with every batch of bytes written, for progress. */
  readonly onBytes?: (bytes: number) => void;
  /** Called once when a blob of unknown size learns it from the server. */
  readonly onSize?: (size: number) => void;
  /**
   * What follows the contiguous written prefix; by default the digest's hasher. A caller that
   * does not know the digest in advance (a cache archive) reads the bytes in order instead.
   */
  readonly follow?: (staged: StagedFile) => PrefixFollower;
}

/** The staging file as a follower sees it while ranges land. */
export interface StagedFile {
  readonly file: FileHandle;
  readonly path: string;
  /** The blob's size, once known. */
  size(): number | undefined;
  /** Bytes [0, n) are written to the file. */
  prefix(): number;
}

/**
 * Follows the contiguous written prefix of a staging file: told of every write, it takes the
 * bytes in file order (from memory or read back), and `finish` resolves once it has taken
 * `total` bytes, with the digest when it computes one.
 */
export interface PrefixFollower {
  written(offset: number, chunk: Uint8Array): void;
  catchUp(): void;
  finish(total: number): Promise<{ readonly hex: string }>;
  dispose(): Promise<void>;
}

/** A staged blob whose every byte arrived, with the digest computed while it streamed. */
export interface StagedBlob {
  readonly paths: StagingPaths;
  readonly size: number;
  readonly hex: string;
  /** Bytes fetched over the network in this run. */
  readonly fetched: number;
  /** Host that served the bytes last, for error messages. */
  readonly host: string;
}

/** Thrown inside a download when a server answered a range request with the whole body. */
class RangesIgnored extends Error {}

const RATE_WINDOW_MS = 250;

/**
 * Downloads one blob into its staging file (the caller holds its staging lock) over up to `connections` ranges with work
 * stealing, hashing the contiguous prefix as it lands and recording progress so that a killed
 * process resumes. Returns once every byte is staged; the caller compares the digest.
 */
export async function downloadToStaging(blob: BlobSpec, tuning: DownloadTuning): Promise<StagedBlob> {
  const paths = stagingPaths(blob.ingestDir, blob.digest);
  const saved = (await pathExists(paths.data))
    ? await loadProgress(paths, blob.digest, blob.size)
    : undefined;
  const file = await open(paths.data, saved ? 'r+' : 'w+');
  try {
    const run = new BlobRun(blob, tuning, paths, file, saved?.segments, saved?.size, false);
    try {
      return await run.execute();
    } catch (error) {
      if (!(error instanceof RangesIgnored)) throw error;
    }
    // The server sends whole bodies only: start over as one stream (undici's rule: a 200 to a
    // range request means "restart", never "append"). A stream cut short cannot resume
    // there either, so each cut restarts from byte 0, within the retry budget.
    for (let attempt = 0; attempt <= tuning.retry.retries; attempt++) {
      const single = new BlobRun(blob, tuning, paths, file, undefined, blob.size, true);
      try {
        return await single.execute();
      } catch (error) {
        if (!(error instanceof RangesIgnored)) throw error;
      }
    }
    throw new ModelPullError(
      'ERR_RANGE_IGNORED',
      `${blob.label}: the server ignores Range and its connection kept breaking; gave up after ${tuning.retry.retries + 1} full restarts`,
    );
  } finally {
    await file.close();
  }
}

class BlobRun {
  private readonly plan: RangePlan;
  private readonly hasher: PrefixFollower;
  private readonly locator: Locator;
  private readonly abort = new AbortController();
  private readonly workers = new Set<Promise<void>>();
  private failure: unknown;
  private fetched = 0;
  private unflushed = 0;
  private lastFlush = Date.now();
  private flushing: Promise<void> | undefined;
  constructor(
    private readonly blob: BlobSpec,
    private readonly tuning: DownloadTuning,
    private readonly paths: StagingPaths,
    private readonly file: FileHandle,
    saved: readonly { start: number; pos: number; end: number }[] | undefined,
    size: number | undefined,
    /** One request for the whole blob: the server ignores Range. */
    private singleStream: boolean,
  ) {
    const connections = singleStream ? 1 : tuning.connections;
    this.plan = new RangePlan(blob.size ?? size, tuning.minSplit, saved, connections);
    const staged: StagedFile = {
      file,
      path: paths.data,
      size: () => this.plan.size,
      prefix: () => this.plan.contiguousPrefix(),
    };
    this.hasher = tuning.follow
      ? tuning.follow(staged)
      : new PrefixHasher(blob.digest.algorithm, file, paths.data, staged.size, staged.prefix);
    this.locator = new Locator(blob, this.abort.signal);
    // A blob that starts after Ctrl-C must stop at once, not download in full.
    if (tuning.signal?.aborted) this.abort.abort(tuning.signal.reason);
    else tuning.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private readonly onAbort = () => this.abort.abort(this.tuning.signal?.reason);

  async execute(): Promise<StagedBlob> {
    try {
      this.hasher.catchUp();
      this.spawnWorkers();
      while (this.workers.size > 0) await Promise.race(this.workers);
      await this.flush(true);
      if (this.failure) throw this.failure;
      if (this.tuning.signal?.aborted) {
        throw new ModelPullError(
          'ERR_ABORTED',
          `${this.blob.label}: stopped; progress kept for the next run`,
        );
      }
      if (!this.plan.complete()) {
        throw new ModelPullError('ERR_TRUNCATED', `${this.blob.label}: download ended with bytes missing`);
      }
      const size = this.plan.size ?? 0;
      const { hex } = await this.hasher.finish(size);
      const host = this.locator.lastUrl ? new URL(this.locator.lastUrl).host : 'unknown host';
      return { paths: this.paths, size, hex, fetched: this.fetched, host };
    } finally {
      this.tuning.signal?.removeEventListener('abort', this.onAbort);
      await this.hasher.dispose();
    }
  }

  private spawnWorkers(): void {
    const wanted = this.singleStream || this.plan.size === undefined ? 1 : this.tuning.connections;
    while (this.workers.size < wanted && !this.abort.signal.aborted) {
      const segment = this.plan.take();
      if (!segment) return;
      const worker: Promise<void> = this.work(segment).finally(() => this.workers.delete(worker));
      this.workers.add(worker);
    }
  }

  /** One connection: streams its segment, then steals more until nothing is left. */
  private async work(first: Segment): Promise<void> {
    let segment: Segment | undefined = first;
    let rate = 0;
    try {
      while (segment && !this.abort.signal.aborted) {
        await this.fetchSegment(segment);
        rate = segment.rate;
        this.plan.release(segment);
        segment = this.singleStream ? undefined : this.plan.take(rate);
      }
    } catch (error) {
      if (segment) this.plan.release(segment);
      if (!this.failure && !this.abort.signal.aborted) this.failure = error;
      this.abort.abort(error);
    }
  }

  /** Retries one segment until it is complete, giving up after `retries` attempts without progress. */
  private async fetchSegment(segment: Segment): Promise<void> {
    let failures = 0;
    while (segment.pos < segment.end && !this.abort.signal.aborted) {
      const before = segment.pos;
      try {
        await this.stream(segment);
      } catch (error) {
        if (this.abort.signal.aborted || error instanceof RangesIgnored) throw error;
        if (isModelPullError(error, 'ERR_URL_EXPIRED') && error.status !== undefined) continue;
        if (!isRetryable(error)) throw error;
        failures = segment.pos > before ? 1 : failures + 1;
        const delay =
          failures > this.tuning.retry.retries
            ? undefined
            : retryDelayMs(failures, this.tuning.retry, (error as ModelPullError).retryAfterSeconds);
        if (delay === undefined) {
          throw new ModelPullError(
            'ERR_RETRIES_EXHAUSTED',
            `${this.blob.label}: giving up after ${failures} failed attempts: ${(error as Error).message}`,
            { cause: error },
          );
        }
        await (this.tuning.sleep ?? realSleep)(delay, this.abort.signal);
      }
    }
  }

  private async stream(segment: Segment): Promise<void> {
    const target = await this.locator.get();
    const last = Number.isFinite(segment.end) ? String(segment.end - 1) : '';
    const response = await this.tuning.http.request(target.url, {
      headers: {
        ...target.location.headers,
        range: `bytes=${segment.pos}-${last}`,
        'accept-encoding': 'identity',
      },
      credentials: target.location.credentials,
      signal: this.abort.signal,
    });
    this.locator.learn(response.url, target.url);
    // A signed CDN URL reached through a redirect has expired, or the registry's own token has
    // (a plain registry serves the bytes itself): either way the source mints a new location.
    const expired =
      ((response.status === 401 || response.status === 403) &&
        (target.redirected || response.crossedOrigin)) ||
      (response.status === 401 && target.location.credentials !== undefined);
    if (expired) {
      await response.body.dump().catch(() => undefined);
      this.locator.expire(target.generation, this.plan.written());
      throw new ModelPullError('ERR_URL_EXPIRED', `${this.blob.label}: download URL expired`, {
        status: response.status,
      });
    }
    if (response.status === 416) return this.rangeNotSatisfiable(segment, response);
    if (response.status === 200) {
      if (segment.pos !== 0 || this.plan.records().length > 1) {
        response.body.destroy();
        this.singleStream = true;
        throw new RangesIgnored();
      }
      this.singleStream = true;
      this.plan.streamWhole();
      const length = Number(response.headers['content-length']);
      if (this.plan.size === undefined && Number.isFinite(length)) this.setSize(length, segment);
      return this.consume(segment, response, this.plan.size);
    }
    if (response.status !== 206) throw await statusError(response);
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(response.headers['content-range'] ?? ''));
    if (!range || Number(range[1]) !== segment.pos) {
      response.body.destroy();
      throw new ModelPullError(
        'ERR_NETWORK',
        `${this.blob.label}: unexpected Content-Range "${response.headers['content-range']}" for bytes from ${segment.pos}`,
      );
    }
    if (range[3] !== '*') this.setSize(Number(range[3]), segment);
    return this.consume(segment, response, Number(range[2]) + 1);
  }

  private setSize(total: number, segment: Segment): void {
    const expected = this.blob.size ?? this.plan.size;
    if (expected !== undefined && expected !== total) {
      throw new ModelPullError(
        'ERR_SIZE_MISMATCH',
        `${this.blob.label}: the server has ${total} bytes, expected ${expected}`,
      );
    }
    if (this.plan.size === undefined) {
      this.tuning.onSize?.(total);
      this.plan.setSize(total);
      if (!Number.isFinite(segment.end)) segment.end = total;
      this.spawnWorkers();
    }
  }

  private async rangeNotSatisfiable(segment: Segment, response: HttpResponse): Promise<void> {
    await response.body.dump().catch(() => undefined);
    const total = /^bytes \*\/(\d+)$/.exec(String(response.headers['content-range'] ?? ''));
    // Asking for the bytes after the last one (a resumed blob that had all its bytes) is the
    // one 416 that means "done"; any other says the file is not the size we expect.
    if (total && Number(total[1]) === segment.pos) {
      this.setSize(segment.pos, segment);
      segment.end = segment.pos;
      return;
    }
    throw new ModelPullError(
      'ERR_RANGE_NOT_SATISFIABLE',
      `${this.blob.label}: the server cannot serve bytes from ${segment.pos} (it reports ${response.headers['content-range'] ?? 'no size'})`,
      { status: 416 },
    );
  }

  /** Writes the body into the segment until it ends or a thief has taken the rest. */
  private async consume(
    segment: Segment,
    response: HttpResponse,
    declaredEnd: number | undefined,
  ): Promise<void> {
    let windowStart = Date.now();
    let windowBytes = 0;
    await writeBody(response.body, {
      file: this.file,
      segment,
      bodyEnd: declaredEnd,
      bodyError: (error) => networkError(error, response.url),
      landed: (offset, bytes) => {
        this.fetched += bytes.length;
        this.hasher.written(offset, bytes);
        this.tuning.onBytes?.(bytes.length);
        windowBytes += bytes.length;
        const now = Date.now();
        if (now - windowStart >= RATE_WINDOW_MS) {
          const instant = (windowBytes * 1000) / (now - windowStart);
          segment.rate = segment.rate ? (segment.rate + instant) / 2 : instant;
          windowStart = now;
          windowBytes = 0;
        }
        this.noteProgress(bytes.length);
      },
    });
    if (segment.pos >= segment.end) return;
    if (!Number.isFinite(segment.end) && declaredEnd === undefined) {
      this.setSize(segment.pos, segment);
      return;
    }
    const expectedEnd = Math.min(declaredEnd ?? segment.end, segment.end);
    if (segment.pos < expectedEnd) {
      throw new ModelPullError(
        'ERR_TRUNCATED',
        `${this.blob.label}: the connection ended at byte ${segment.pos} of ${expectedEnd}`,
      );
    }
  }

  private noteProgress(bytes: number): void {
    this.unflushed += bytes;
    if (
      this.unflushed >= this.tuning.flushBytes ||
      Date.now() - this.lastFlush >= this.tuning.flushIntervalMs
    ) {
      void this.flush(false);
    }
  }

  /** Records which ranges are written; skipped while a record is being written, except at the end. */
  private async flush(final: boolean): Promise<void> {
    if (this.flushing) {
      if (!final) return;
      await this.flushing;
    }
    this.unflushed = 0;
    this.lastFlush = Date.now();
    this.flushing = saveProgress(this.paths, this.blob.digest, this.plan.size, this.plan.records())
      .catch(() => undefined)
      .finally(() => {
        this.flushing = undefined;
      });
    await this.flushing;
  }
}
