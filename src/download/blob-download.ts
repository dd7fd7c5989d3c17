import type { Clock } from '../clock.js';
import { isModelPullError, ModelPullError } from '../errors.js';
import { discardBody, statusError } from '../http/body.js';
import type { HttpClient, HttpResponse } from '../http/client.js';
import { hostOf, networkError } from '../http/errors.js';
import { RateGuard } from '../http/rate-guard.js';
import { RawBody } from '../http/raw.js';
import { isRetryable, nextRetry, type RetryPolicy, retryEvent } from '../http/retry.js';
import { formatBytes } from '../report/format.js';
import type { Logger } from '../report/logger.js';
import { type ByteSink, writeBody, writeRawBody } from './body-writer.js';
import { ConnectionGate, GATE_TICK_MS, type GateTuning, idleThread } from './connection-gate.js';
import { checkDiskSpace } from './disk.js';
import { Locator } from './locator.js';
import { PrefixHasher } from './prefix-hasher.js';
import { RangePlan, type Segment, type SegmentRecord } from './range-plan.js';
import {
  discardStaging,
  loadProgress,
  openStagingData,
  type StagingPaths,
  saveProgress,
  stagingPaths,
} from './staging.js';
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
  readonly clock: Clock;
  /** Hears what goes wrong quietly (a progress record that could not be saved). */
  readonly log?: Pick<Logger, 'debug'>;
  /** Called with every batch of bytes written, for progress. */
  readonly onBytes?: (bytes: number) => void;
  /**
   * Called as each attempt starts with the bytes already staged: what a previous run left (a
   * resume), or 0 when the blob starts over. Progress counts from there, so bytes fetched
   * again after a restart are traffic, never more than 100%. `size`: the blob's size when known
   * (a resumed file of unknown size knows it from its record before any request).
   */
  readonly onStart?: (staged: number, size: number | undefined) => void;
  /** Called once when a blob of unknown size learns it from the server. */
  readonly onSize?: (size: number) => void;
  /** Largest range handed to one connection at a time (default: the plan's own, 64 MiB). */
  readonly maxPiece?: number;
  /**
   * A staged blob of at least `minSize` starts on one connection and opens the others once the
   * main thread shows room for them (connection-gate.ts). Without it, all start at once.
   */
  readonly gate?: GateTuning;
}

/** The bytes landed so far, as a follower sees them while ranges land. */
export interface LandedBytes {
  /** The blob's size, once known. */
  size(): number | undefined;
  /** Bytes [0, n) are written. */
  prefix(): number;
}

/**
 * Where one download's bytes go: the sink its ranges write to, what follows the contiguous
 * prefix, and, for a staging file, where its progress is recorded for a resume.
 */
interface RunOutput {
  readonly sink: ByteSink;
  follow(landed: LandedBytes): PrefixFollower;
  /** The staging entry (progress records, the disk check); none for a stream read in memory. */
  readonly paths?: StagingPaths;
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
  const recorded = await loadProgress(paths, blob.digest, blob.size);
  // The record is only worth something with its own data file (not a link planted in its place).
  const { file, resumed } = await openStagingData(paths, recorded !== undefined);
  const saved = resumed ? recorded : undefined;
  const output: RunOutput = {
    sink: file,
    paths,
    follow: (landed) => new PrefixHasher(blob.digest.algorithm, file, landed.size, landed.prefix),
  };
  try {
    return { paths, ...(await runWithRestarts(blob, tuning, output, saved)) };
  } catch (error) {
    // Refused for lack of room before its first byte: leave no empty staging file behind.
    if (isModelPullError(error, 'ERR_DISK_SPACE') && !saved) await discardStaging(paths);
    throw error;
  } finally {
    await file.close();
  }
}

/**
 * Downloads a blob into a sink of the caller's (a stream's in-memory window) instead of a
 * staging file: the same ranges, retries, steals and URL refreshes, nothing on disk and nothing
 * recorded for a resume. `follow` takes the contiguous prefix as it grows.
 */
export async function downloadToSink(
  blob: BlobSpec,
  tuning: DownloadTuning,
  sink: ByteSink,
  follow: (landed: LandedBytes) => PrefixFollower,
): Promise<Omit<StagedBlob, 'paths'>> {
  return runWithRestarts(blob, tuning, { sink, follow }, undefined);
}

async function runWithRestarts(
  blob: BlobSpec,
  tuning: DownloadTuning,
  output: RunOutput,
  saved: { segments: readonly SegmentRecord[]; size: number | undefined } | undefined,
): Promise<Omit<StagedBlob, 'paths'>> {
  const run = new BlobRun(blob, tuning, output, saved?.segments, saved?.size, false);
  try {
    return await run.execute();
  } catch (error) {
    if (!(error instanceof RangesIgnored)) throw error;
  }
  // The server sends whole bodies only: start over as one stream (undici's rule: a 200 to a
  // range request means "restart", never "append"). A stream cut short cannot resume
  // there either, so each cut restarts from byte 0, within the retry budget.
  for (let attempt = 0; attempt <= tuning.retry.retries; attempt++) {
    const single = new BlobRun(blob, tuning, output, undefined, blob.size, true);
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
}

class BlobRun {
  private readonly plan: RangePlan;
  private readonly hasher: PrefixFollower;
  private readonly locator: Locator;
  private readonly gate: ConnectionGate;
  /** Ends the gate's watch with the run. */
  private readonly gateWatch = new AbortController();
  private readonly abort = new AbortController();
  private readonly workers = new Set<Promise<void>>();
  private failure: unknown;
  private fetched = 0;
  private unflushed = 0;
  private lastFlush: number;
  /** Whether more than one connection may ask (see BlobSpec.probeRanges). */
  private rangesShown: boolean;
  constructor(
    private readonly blob: BlobSpec,
    private readonly tuning: DownloadTuning,
    private readonly output: RunOutput,
    saved: readonly SegmentRecord[] | undefined,
    size: number | undefined,
    /** One request for the whole blob: the server ignores Range. */
    private singleStream: boolean,
  ) {
    const connections = singleStream ? 1 : tuning.connections;
    this.plan = new RangePlan(blob.size ?? size, tuning.minSplit, saved, connections, tuning.maxPiece);
    this.hasher = output.follow({
      size: () => this.plan.size,
      prefix: () => this.plan.contiguousPrefix(),
    });
    this.locator = new Locator(blob, this.abort.signal);
    const gate = tuning.gate;
    const total = blob.size ?? size;
    // Only a blob going to a file: a stream read in memory (a cache restore) feeds a consumer
    // on this thread whose pace the gate cannot tell from the download's.
    const gated =
      gate !== undefined &&
      output.paths !== undefined &&
      connections > 1 &&
      total !== undefined &&
      total >= gate.minSize;
    this.gate = new ConnectionGate(gate?.load ?? idleThread, gated, gate?.minRate);
    this.rangesShown = blob.probeRanges !== true;
    this.lastFlush = tuning.clock.now();
    // A blob that starts after Ctrl-C must stop at once, not download in full.
    if (tuning.signal?.aborted) this.abort.abort(tuning.signal.reason);
    else tuning.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private readonly onAbort = () => this.abort.abort(this.tuning.signal?.reason);

  async execute(): Promise<Omit<StagedBlob, 'paths'>> {
    try {
      this.tuning.onStart?.(this.plan.written(), this.plan.size);
      this.hasher.catchUp();
      this.spawnWorkers();
      void this.watchGate();
      while (this.workers.size > 0) await Promise.race(this.workers);
      this.flush();
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
      return { size, hex, fetched: this.fetched, host: this.host() ?? 'unknown host' };
    } finally {
      this.gateWatch.abort();
      this.tuning.signal?.removeEventListener('abort', this.onAbort);
      await this.hasher.dispose();
    }
  }

  /** While the gate is closed, opens it when the one connection goes quiet (ConnectionGate.tick). */
  private async watchGate(): Promise<void> {
    const { signal } = this.gateWatch;
    while (!this.gate.open && !signal.aborted) {
      try {
        await this.tuning.clock.sleep(GATE_TICK_MS, signal);
      } catch {
        return;
      }
      if (this.gate.tick()) this.spawnWorkers();
    }
  }

  private spawnWorkers(): void {
    const wanted =
      this.singleStream || this.plan.size === undefined || !this.rangesShown || !this.gate.open
        ? 1
        : this.tuning.connections;
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
        // Alone behind a closed gate, a connection takes pieces sized for one (fewer requests).
        segment = this.singleStream ? undefined : this.plan.take(rate, this.gate.open ? undefined : 1);
      }
    } catch (error) {
      if (segment) this.plan.release(segment);
      if (!this.failure && !this.abort.signal.aborted) this.failure = error;
      this.abort.abort(error);
    }
  }

  /** Where the bytes come from now, for messages. */
  private host(): string | undefined {
    return this.locator.lastUrl ? hostOf(this.locator.lastUrl) : undefined;
  }

  /**
   * Retries one segment until it is complete, giving up after the policy's retries without
   * progress (fewer for a refused connection). Each retry is announced with its cause and wait.
   */
  private async fetchSegment(segment: Segment): Promise<void> {
    const { retry, clock } = this.tuning;
    let failures = 0;
    while (segment.pos < segment.end && !this.abort.signal.aborted) {
      const before = segment.pos;
      try {
        await this.stream(segment);
      } catch (error) {
        if (this.abort.signal.aborted || error instanceof RangesIgnored) throw error;
        // The locator has already asked the source for a fresh URL: go again at once.
        if (isModelPullError(error, 'ERR_URL_EXPIRED')) continue;
        if (!isRetryable(error)) throw error;
        // Bytes that landed restore the budget, unless they came too slowly to count: a
        // server trickling a byte at a time would otherwise be retried forever.
        const progressed = segment.pos > before && !isModelPullError(error, 'ERR_TOO_SLOW');
        failures = progressed ? 1 : failures + 1;
        const plan = nextRetry(error, failures, retry);
        if (!plan) {
          throw new ModelPullError(
            'ERR_RETRIES_EXHAUSTED',
            `${this.blob.label}: giving up after ${failures} failed attempts: ${error.message}`,
            { cause: error, host: error.host ?? this.host() },
          );
        }
        retry.onRetry?.(retryEvent(error, failures, plan, { host: this.host(), subject: this.blob.label }));
        await clock.sleep(plan.delayMs, this.abort.signal);
      }
    }
  }

  private async stream(segment: Segment): Promise<void> {
    const target = await this.locator.get();
    const last = Number.isFinite(segment.end) ? String(segment.end - 1) : '';
    let response: HttpResponse;
    try {
      response = await this.tuning.http.request(target.url, {
        headers: {
          ...target.location.headers,
          range: `bytes=${segment.pos}-${last}`,
          'accept-encoding': 'identity',
        },
        credentials: target.location.credentials,
        signal: this.abort.signal,
        stream: true,
        // A file takes each read's bytes in place (raw.ts); a stream's window keeps its chunks.
        direct: this.output.sink.fd !== undefined,
      });
    } catch (error) {
      if (target.first) this.locator.unblock();
      throw error;
    }
    this.locator.learn(response.url, target.url);
    // A signed CDN URL reached through a redirect has expired, or the registry's own token has
    // (a plain registry serves the bytes itself): either way the source mints a new location.
    const expired =
      ((response.status === 401 || response.status === 403) &&
        (target.redirected || response.crossedOrigin)) ||
      (response.status === 401 && target.location.credentials !== undefined);
    if (expired) {
      discardBody(response.body);
      this.locator.expire(target.generation, this.plan.written());
      throw new ModelPullError('ERR_URL_EXPIRED', `${this.blob.label}: download URL expired`, {
        status: response.status,
        host: hostOf(response.url),
      });
    }
    if (response.status === 416) return this.rangeNotSatisfiable(segment, response);
    if (response.status === 200) {
      if (segment.pos !== 0 || this.plan.records().length > 1) {
        discardBody(response.body);
        this.singleStream = true;
        throw new RangesIgnored();
      }
      this.singleStream = true;
      this.plan.streamWhole();
      const length = Number(response.headers['content-length']);
      if (this.plan.size === undefined && Number.isFinite(length))
        await this.learnSize(length, segment, response);
      return this.consume(segment, response, this.plan.size);
    }
    if (response.status !== 206) throw await statusError(response);
    const contentRange = String(response.headers['content-range'] ?? '');
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange);
    if (!range || Number(range[1]) !== segment.pos || Number(range[2]) < segment.pos) {
      // Not the bytes we asked for: never written, and the answer is dropped without a trace.
      discardBody(response.body);
      const host = hostOf(response.url);
      throw new ModelPullError(
        'ERR_BAD_RANGE',
        `${host} answered Content-Range "${contentRange.slice(0, 100)}" to a request for bytes from ${segment.pos}`,
        { host },
      );
    }
    if (range[3] !== '*') await this.learnSize(Number(range[3]), segment, response);
    if (!this.rangesShown) {
      this.rangesShown = true;
      this.spawnWorkers();
    }
    return this.consume(segment, response, Number(range[2]) + 1);
  }

  /**
   * The server states the blob's size. A blob whose source did not know it (a URL line) gets
   * its disk-space check here, before its first byte is written.
   */
  private async learnSize(total: number, segment: Segment, response: HttpResponse): Promise<void> {
    // A stream read in memory puts nothing on disk.
    if (this.plan.size === undefined && this.blob.size === undefined && this.output.paths) {
      try {
        await checkDiskSpace(new Map([[this.blob.ingestDir, total - this.plan.written()]]));
      } catch (error) {
        discardBody(response.body);
        throw error;
      }
    }
    try {
      this.setSize(total, segment);
    } catch (error) {
      discardBody(response.body);
      throw error;
    }
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
    discardBody(response.body);
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
    const { clock } = this.tuning;
    let windowStart = clock.now();
    let windowBytes = 0;
    const target = {
      file: this.output.sink,
      segment,
      bodyEnd: declaredEnd,
      bodyError: (error: unknown) => networkError(error, response.url),
      untilRecord: () => this.tuning.flushBytes - this.unflushed,
      landed: (offset: number, bytes: Buffer) => {
        this.fetched += bytes.length;
        this.hasher.written(offset, bytes);
        this.tuning.onBytes?.(bytes.length);
        windowBytes += bytes.length;
        const now = clock.now();
        if (now - windowStart >= RATE_WINDOW_MS) {
          const instant = (windowBytes * 1000) / (now - windowStart);
          segment.rate = segment.rate ? (segment.rate + instant) / 2 : instant;
          windowStart = now;
          windowBytes = 0;
        }
        this.noteProgress(bytes.length);
        if (this.gate.landed(bytes.length)) this.spawnWorkers();
      },
    };
    const fd = this.output.sink.fd;
    const body = response.body;
    if (body instanceof RawBody && body.length !== undefined && fd !== undefined) {
      // Read in place: each read is written and hashed before the buffer is read into again.
      await writeRawBody(body, fd, target, this.rateCheck(response));
    } else {
      const writing = writeBody(body, target);
      // After the writer's listeners: this one must not start the flow before they hear it.
      this.guardRate(response);
      await writing;
    }
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

  /**
   * A body trickling below the minimum rate is cut like a stall (ERR_TOO_SLOW, retried): the
   * check takes each arrival's byte count and returns the error once a window ends too slow.
   */
  private rateCheck(response: HttpResponse): (bytes: number) => ModelPullError | undefined {
    const min = this.tuning.http.minRate;
    const guard = new RateGuard(min, this.tuning.clock.now);
    return (bytes) => {
      const seen = guard.add(bytes);
      if (seen === undefined) return undefined;
      const host = hostOf(response.url);
      return new ModelPullError(
        'ERR_TOO_SLOW',
        `${host} sent ${formatBytes(seen)} in ${min.windowMs / 1000} s, below the minimum of ${formatBytes(min.bytes)}`,
        { host },
      );
    };
  }

  /** The rate check on a body read as a stream: a body too slow is destroyed with its error. */
  private guardRate(response: HttpResponse): void {
    const check = this.rateCheck(response);
    const onData = (chunk: Buffer) => {
      const error = check(chunk.length);
      if (!error) return;
      response.body.off('data', onData);
      response.body.destroy(error);
    };
    response.body.on('data', onData);
  }

  private noteProgress(bytes: number): void {
    this.unflushed += bytes;
    if (
      this.unflushed >= this.tuning.flushBytes ||
      this.tuning.clock.now() - this.lastFlush >= this.tuning.flushIntervalMs
    ) {
      this.flush();
    }
  }

  /**
   * Records which ranges are written, on this thread: the record describes the file as it is
   * now, and no byte lands until it is in place. Written asynchronously, it waited for the thread
   * pool (four calls) while the bodies went on landing, and a starved process or a busy disk let
   * a kill lose what landed meanwhile on top of `flushBytes` (16.2 MiB with a rename slowed by
   * 1 s); now a kill loses less than `flushBytes` and one chunk. Its cost is a small file's write
   * and rename every `flushBytes`, beside the bytes' own synchronous writes.
   */
  private flush(): void {
    const paths = this.output.paths;
    if (!paths) return;
    this.unflushed = 0;
    this.lastFlush = this.tuning.clock.now();
    try {
      saveProgress(paths, this.blob.digest, this.plan.size, this.plan.records());
    } catch (error) {
      // Losing one record costs only resume distance, never correctness: the digest checks all.
      this.tuning.log?.debug(`${this.blob.label}: could not save download progress: ${String(error)}`);
    }
  }
}
