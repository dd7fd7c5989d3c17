import type { FileHandle } from 'node:fs/promises';
import { type Clock, systemClock } from '../clock.js';
import { ModelPullError } from '../errors.js';
import { ensureDirs } from '../fs-dirs.js';
import type { HttpClient } from '../http/client.js';
import type { RetryPolicy } from '../http/retry.js';
import { downloadToSink, type LandedBytes, type PrefixFollower } from './blob-download.js';
import type { ByteSink } from './body-writer.js';
import { acquireLease } from './lease.js';
import { PrefixHasher } from './prefix-hasher.js';
import { createExclusive } from './safe-fs.js';
import { commitStaged, discardStaging, stagingPaths } from './staging.js';
import type { BlobLocation, BlobSpec } from './types.js';

const MiB = 1024 * 1024;
/** Bytes handed to a stream's consumer per call. */
const BLOCK = MiB;
/**
 * Every MiB of the window is fresh memory the first time it fills, and fresh memory is what a
 * restore costs most on a small VM (a page fault per 4 KiB, ~7 ms per MiB measured here):
 * 128 MiB cost ~0.5 CPU-seconds per GiB restored over 64 MiB, and its first fill, 16
 * connections landing bytes the consumer could not take yet, kept the main thread from the
 * consumer for the first second of a restore under load. A connection whose bytes lie beyond
 * the window pauses with them in its socket's buffer, which costs nothing.
 */
const DEFAULT_WINDOW = 64 * MiB;

/** A blob whose digest nobody knows in advance (a cache archive): fetched to be read, not kept. */
export interface StreamSpec {
  /** Shown in errors. */
  readonly label: string;
  /** The size, when known (ranges are then planned from the start); else learned from the server. */
  readonly size?: number;
  locate(signal?: AbortSignal): Promise<BlobLocation>;
}

export interface StreamOptions {
  readonly http: HttpClient;
  readonly connections: number;
  readonly retry: RetryPolicy;
  readonly signal?: AbortSignal;
  /** Time for retries (default: real time). */
  readonly clock?: Clock;
  /** Smallest range worth a request of its own (default 4 MiB). */
  readonly minSplit?: number;
  /** Most bytes held in memory ahead of the consumer (default 64 MiB). */
  readonly window?: number;
  readonly onBytes?: (bytes: number) => void;
  readonly onSize?: (size: number) => void;
}

export interface StreamResult {
  readonly size: number;
  /** Bytes fetched over the network. */
  readonly fetched: number;
}

/**
 * Fetches a blob with the engine's parallel ranges, retries and URL refreshes, and hands its
 * bytes to `consume` strictly in order, in whole 1 MiB blocks, as the contiguous prefix grows.
 * A block is lent, not given: once `consume`'s promise resolves it is filled with later bytes,
 * so the consumer must be done with it (and with any view of it) by then.
 * Nothing touches the disk: ranges land in a bounded window in memory, and a connection whose
 * bytes would land further than `window` ahead of the consumer waits (its body pauses, as for
 * a slow disk), so memory stays bounded whatever the consumer's pace. Ranges are handed out in
 * pieces small enough that every connection works inside the window. A consumer that throws
 * stops the download at once, and its error is what this rejects with.
 *
 * Nothing is kept for a later run: without a digest no staged byte could be checked, and a
 * compressed stream cannot be entered halfway anyway. (A cache restore resumes by what it
 * committed: files already in place are passed over.)
 */
export async function streamBlob(
  spec: StreamSpec,
  options: StreamOptions,
  consume: (chunk: Buffer) => Promise<void>,
): Promise<StreamResult> {
  const blob: BlobSpec = {
    // Never compared nor used to name a file: a stream has no staging entry.
    digest: { algorithm: 'sha256', hex: '' },
    label: spec.label,
    target: '',
    ingestDir: '',
    locate: spec.locate,
    ...(spec.size !== undefined ? { size: spec.size } : {}),
  };
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal?.reason);
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  const limit = Math.max(BLOCK, options.window ?? DEFAULT_WINDOW);
  const minSplit = options.minSplit ?? 4 * MiB;
  const window = new StreamWindow(limit, stop.signal);
  let consumerFailure: { error: unknown } | undefined;
  try {
    const landed = await downloadToSink(
      blob,
      {
        http: options.http,
        connections: options.connections,
        retry: options.retry,
        minSplit,
        // One round of pieces fills the window: those ahead wait in their sockets' buffers for
        // the consumer (pieces of half that doubled the requests, each a pause of its connection).
        maxPiece: Math.max(minSplit, Math.floor(limit / Math.max(1, options.connections))),
        flushBytes: Number.POSITIVE_INFINITY,
        flushIntervalMs: Number.POSITIVE_INFINITY,
        signal: stop.signal,
        clock: options.clock ?? systemClock,
        ...(options.onBytes ? { onBytes: options.onBytes } : {}),
        ...(options.onSize ? { onSize: options.onSize } : {}),
      },
      window,
      (landed) =>
        new WindowReader(window, landed, consume, (error) => {
          consumerFailure ??= { error };
          stop.abort(error);
        }),
    );
    return { size: landed.size, fetched: landed.fetched };
  } catch (error) {
    // The engine's own stop says progress is kept; nothing of a stream is.
    if (options.signal?.aborted) {
      throw new ModelPullError('ERR_ABORTED', `${spec.label}: stopped; none of it is kept`, {
        cause: error,
      });
    }
    throw consumerFailure ? consumerFailure.error : error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    window.clear();
  }
}

/**
 * The bytes of a stream between what its consumer took (`frontier`, a multiple of BLOCK until
 * the last, short block) and `frontier + limit`, in 1 MiB blocks. A write further ahead waits
 * until the consumer has moved on; bytes below the frontier (a range the server sent again
 * after a restart) were handed over already and are dropped.
 */
class StreamWindow implements ByteSink {
  readonly #blocks = new Map<number, Buffer>();
  /**
   * Blocks the consumer is done with, filled again: fresh memory for every MiB cost a page
   * fault per 4 KiB on first touch and garbage collection later (~1.1 CPU-seconds per GiB
   * in the copy into the window alone, measured; with reused blocks the copy is ~0.1 s).
   */
  readonly #free: Buffer[] = [];
  #frontier = 0;
  #moved: { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void } | undefined;
  #failure: { error: unknown } | undefined;

  constructor(
    private readonly limit: number,
    signal: AbortSignal,
  ) {
    const fail = () => this.#fail(signal.reason ?? new Error('stopped'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  }

  get frontier(): number {
    return this.#frontier;
  }

  async write(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesWritten: number }> {
    while (!this.#failure && position >= this.#frontier + this.limit) await this.#nextMove();
    this.#put(buffer, offset, length, position);
    return { bytesWritten: length };
  }

  tryWrite(buffer: Buffer, position: number): boolean {
    if (!this.#failure && position >= this.#frontier + this.limit) return false;
    this.#put(buffer, 0, buffer.length, position);
    return true;
  }

  #put(buffer: Buffer, offset: number, length: number, position: number): void {
    if (this.#failure) throw this.#failure.error;
    const end = position + length;
    for (let at = Math.max(position, this.#frontier); at < end; ) {
      const index = Math.floor(at / BLOCK);
      const blockStart = index * BLOCK;
      let block = this.#blocks.get(index);
      if (!block) {
        block = this.#free.pop() ?? Buffer.allocUnsafe(BLOCK);
        this.#blocks.set(index, block);
      }
      const n = Math.min(end, blockStart + BLOCK) - at;
      const from = offset + (at - position);
      buffer.copy(block, at - blockStart, from, from + n);
      at += n;
    }
  }

  /**
   * Takes the next block out of the window once `prefix` (the contiguous bytes landed) covers
   * at least `least` bytes of it; `least` 1 takes the last, short one.
   */
  take(prefix: number, least: number): Buffer | undefined {
    const want = Math.min(BLOCK, prefix - this.#frontier);
    if (want <= 0 || want < least) return undefined;
    const index = Math.floor(this.#frontier / BLOCK);
    const block = this.#blocks.get(index);
    if (!block) throw new Error(`the stream window has no bytes at ${this.#frontier}`);
    this.#blocks.delete(index);
    this.#frontier += want;
    const moved = this.#moved;
    this.#moved = undefined;
    moved?.resolve();
    return want === BLOCK ? block : block.subarray(0, want);
  }

  /** A block `take` gave, which its consumer is done with: later bytes land in it. */
  recycle(block: Buffer): void {
    // The last, short block is a view; it is left to the collector.
    if (block.length === BLOCK && !this.#failure) this.#free.push(block);
  }

  clear(): void {
    this.#fail(new Error('the stream ended'));
    this.#blocks.clear();
    this.#free.length = 0;
  }

  #nextMove(): Promise<void> {
    if (!this.#moved) {
      let resolve!: () => void;
      let reject!: (error: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.#moved = { promise, resolve, reject };
    }
    return this.#moved.promise;
  }

  #fail(error: unknown): void {
    this.#failure ??= { error };
    const moved = this.#moved;
    this.#moved = undefined;
    moved?.reject(error);
  }
}

/** Hands the landed prefix of a stream, in order, to an async consumer (one per download attempt). */
class WindowReader implements PrefixFollower {
  private running: Promise<void> | undefined;
  private failure: { error: unknown } | undefined;
  private stopped = false;

  constructor(
    private readonly window: StreamWindow,
    private readonly landed: LandedBytes,
    private readonly consume: (chunk: Buffer) => Promise<void>,
    private readonly fail: (error: unknown) => void,
  ) {}

  written(): void {
    this.kick();
  }

  catchUp(): void {
    this.kick();
  }

  private kick(): void {
    if (this.running || this.failure || this.stopped) return;
    this.running = this.drain()
      .catch((error: unknown) => {
        this.failure = { error };
        this.fail(error);
      })
      .finally(() => {
        this.running = undefined;
      });
  }

  /**
   * Hands over whole blocks while the download runs (a 64 KiB socket read each time would cost
   * every stage after it a call per 64 KiB); `finish` takes the last, short one.
   */
  private async drain(least = BLOCK): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const chunk = this.window.take(this.landed.prefix(), least);
      if (!chunk) return;
      await this.consume(chunk);
      // Only a consumer that finished with its block gives it back (one that threw may not have).
      this.window.recycle(chunk);
    }
  }

  async finish(total: number): Promise<{ hex: string }> {
    await this.running;
    if (!this.failure && this.window.frontier < total)
      await this.drain(1).catch((error: unknown) => {
        // Told like a failure during the download: the caller must know the consumer failed.
        this.failure = { error };
        this.fail(error);
      });
    if (this.failure) throw this.failure.error;
    return { hex: '' };
  }

  async dispose(): Promise<void> {
    this.stopped = true;
    await this.running;
  }
}

/** How a locally streamed blob ended. */
export type LocalOutcome =
  | { readonly ok: true; readonly size: number }
  | { readonly ok: false; readonly reason: string };

/** A blob being written from local bytes; `commit` verifies and places it, `abort` drops it. */
export interface LocalBlobWriter {
  write(chunk: Uint8Array): Promise<void>;
  commit(): Promise<LocalOutcome>;
  abort(): Promise<void>;
}

/**
 * Writes a blob from bytes at hand (a member of a cache archive) through the same path as a
 * download: its staging file (never followed through a link), hashed while written, compared
 * with the expected digest and size, and only then renamed onto its target.
 * `size` is how many bytes will come; more than that, or a size other than the blob's, fails.
 */
export async function openLocalBlob(
  blob: BlobSpec,
  size: number,
  signal?: AbortSignal,
): Promise<LocalBlobWriter> {
  await ensureDirs(blob.ingestDir);
  const paths = stagingPaths(blob.ingestDir, blob.digest);
  const lease = await acquireLease(paths.lease, blob.label, { clock: systemClock, signal });
  const release = () => lease.release();
  let file: FileHandle;
  try {
    await discardStaging(paths);
    file = await createExclusive(paths.data, 0o644, true);
  } catch (error) {
    await release();
    throw error;
  }
  const handle = file;
  const hasher = new PrefixHasher(
    blob.digest.algorithm,
    handle,
    () => size,
    () => written,
  );
  let written = 0;
  let settled = false;
  /** Closes everything; the staged bytes go unless they were just committed. */
  const end = async (committed: boolean): Promise<void> => {
    settled = true;
    try {
      await hasher.dispose();
      await handle.close();
      if (!committed) await discardStaging(paths);
    } finally {
      await release();
    }
  };
  const check = async (): Promise<string | undefined> => {
    if (written !== size) return `${written} of ${size} bytes`;
    if (blob.size !== undefined && size !== blob.size) return `${size} bytes, expected ${blob.size}`;
    const { hex } = await hasher.finish(size);
    if (hex !== blob.digest.hex) return `${blob.digest.algorithm} ${hex}, expected ${blob.digest.hex}`;
    return undefined;
  };
  return {
    async write(chunk) {
      if (settled) throw new Error(`${blob.label}: written after it ended`);
      if (written + chunk.length > size) {
        throw new ModelPullError('ERR_SIZE_MISMATCH', `${blob.label}: more than the ${size} bytes announced`);
      }
      const at = written;
      // The hash reads the chunk on this thread while the thread pool writes it: the two overlap
      // instead of following each other (both only read it, and it is not reused before this
      // resolves). A write that fails or falls short fails the file, whatever was hashed.
      const writing = handle.write(chunk, 0, chunk.length, at);
      hasher.written(at, chunk);
      const { bytesWritten } = await writing;
      if (bytesWritten !== chunk.length) {
        throw new ModelPullError('ERR_DISK_SPACE', `${blob.label}: short write (the disk may be full)`);
      }
      written += chunk.length;
    },
    async commit() {
      if (settled) throw new Error(`${blob.label}: committed after it ended`);
      let problem: string | undefined;
      try {
        problem = await check();
        if (problem === undefined) {
          await handle.close();
          await commitStaged(paths, blob.target);
        }
      } catch (error) {
        await end(false);
        throw error;
      }
      await end(problem === undefined);
      return problem === undefined ? { ok: true, size } : { ok: false, reason: problem };
    },
    async abort() {
      if (!settled) await end(false);
    },
  };
}
