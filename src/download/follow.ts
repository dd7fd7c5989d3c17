import type { FileHandle } from 'node:fs/promises';
import { type Clock, systemClock } from '../clock.js';
import { sha256Hex } from '../digest.js';
import { ModelPullError } from '../errors.js';
import { ensureDirs } from '../fs-dirs.js';
import type { HttpClient } from '../http/client.js';
import type { RetryPolicy } from '../http/retry.js';
import { downloadToStaging, type PrefixFollower, type StagedFile } from './blob-download.js';
import { acquireLease } from './lease.js';
import { PrefixHasher } from './prefix-hasher.js';
import { createExclusive } from './safe-fs.js';
import { commitStaged, discardStaging, stagingPaths } from './staging.js';
import type { BlobLocation, BlobSpec } from './types.js';

const MiB = 1024 * 1024;
/** Bytes read back per step while following a prefix. */
const READ_BLOCK = MiB;

/** A blob whose digest nobody knows in advance (a cache archive): fetched to be read, not kept. */
export interface StreamSpec {
  /** Names its staging entry: one writer per id, in this process and across processes. */
  readonly id: string;
  /** Shown in errors. */
  readonly label: string;
  /** Staging folder (the bytes live there only while they are read). */
  readonly ingestDir: string;
  /** The size, when known (ranges are then planned from the start); else learned from the server. */
  readonly size?: number;
  /**
   * The id names these exact bytes (an immutable object: its name, version, storage path and
   * size), so bytes staged by a run that stopped may be read again instead of fetched again.
   */
  readonly resumable?: boolean;
  locate(signal?: AbortSignal): Promise<BlobLocation>;
}

export interface StreamOptions {
  readonly http: HttpClient;
  readonly connections: number;
  readonly retry: RetryPolicy;
  readonly signal?: AbortSignal;
  /** Time for retries and lease waits (default: real time). */
  readonly clock?: Clock;
  /** Smallest range worth a request of its own (default 4 MiB). */
  readonly minSplit?: number;
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
 * bytes to `consume` strictly in order, as the contiguous prefix grows: ranges landing ahead are
 * read back from the staging file once the gap before them closes, so memory stays bounded
 * whatever the consumer's pace. A consumer that throws stops the download at once, and its
 * error is what this rejects with.
 *
 * Without a digest nothing checks the staged bytes, so a run that stopped leaves them for the
 * next only when the spec is `resumable` (its id names immutable bytes) and the download, not
 * the consumer, failed; otherwise they are removed, and a leftover is discarded before starting.
 * A resumed stream hands over every byte again from the first (the consumer starts afresh).
 */
export async function streamBlob(
  spec: StreamSpec,
  options: StreamOptions,
  consume: (chunk: Buffer) => Promise<void>,
): Promise<StreamResult> {
  // The staging entry is named by a digest of the id; `stream:` keeps it apart from any blob's.
  const digest = { algorithm: 'sha256' as const, hex: sha256Hex(`stream:${spec.id}`) };
  const blob: BlobSpec = {
    digest,
    label: spec.label,
    target: '',
    ingestDir: spec.ingestDir,
    locate: spec.locate,
    ...(spec.size !== undefined ? { size: spec.size } : {}),
  };
  await ensureDirs(spec.ingestDir);
  const paths = stagingPaths(spec.ingestDir, digest);
  const clock = options.clock ?? systemClock;
  const lease = await acquireLease(paths.lease, spec.label, { clock, signal: options.signal });
  const release = () => lease.release();
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal?.reason);
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  let consumerFailure: { error: unknown } | undefined;
  let keep = false;
  try {
    if (!spec.resumable) await discardStaging(paths);
    const staged = await downloadToStaging(blob, {
      http: options.http,
      connections: options.connections,
      retry: options.retry,
      minSplit: options.minSplit ?? 4 * MiB,
      flushBytes: 8 * MiB,
      flushIntervalMs: 1000,
      signal: stop.signal,
      clock,
      ...(options.onBytes ? { onBytes: options.onBytes } : {}),
      ...(options.onSize ? { onSize: options.onSize } : {}),
      follow: (file) =>
        new PrefixReader(file, consume, (error) => {
          consumerFailure ??= { error };
          stop.abort(error);
        }),
    });
    return { size: staged.size, fetched: staged.fetched };
  } catch (error) {
    keep = spec.resumable === true && !consumerFailure;
    throw consumerFailure ? consumerFailure.error : error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    if (!keep) await discardStaging(paths);
    await release();
  }
}

/** Hands the written prefix of a staging file, in order, to an async consumer. */
class PrefixReader implements PrefixFollower {
  private frontier = 0;
  private running: Promise<void> | undefined;
  private failure: { error: unknown } | undefined;
  private stopped = false;

  constructor(
    private readonly staged: StagedFile,
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
   * Hands over the prefix in whole blocks while the download runs (a 64 KiB socket read each
   * time would cost every stage after it a call per 64 KiB); `finish` takes the last, short one.
   */
  private async drain(least = READ_BLOCK): Promise<void> {
    while (!this.stopped && this.staged.prefix() - this.frontier >= least) {
      const want = Math.min(READ_BLOCK, this.staged.prefix() - this.frontier);
      // A fresh buffer each time: the consumer may keep what it is given.
      const buffer = Buffer.allocUnsafe(want);
      const { bytesRead } = await this.staged.file.read(buffer, 0, want, this.frontier);
      if (bytesRead === 0) throw new Error(`staged file ended at ${this.frontier} bytes`);
      this.frontier += bytesRead;
      await this.consume(bytesRead === want ? buffer : buffer.subarray(0, bytesRead));
    }
  }

  async finish(total: number): Promise<{ hex: string }> {
    await this.running;
    if (!this.failure && this.frontier < total)
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
    paths.data,
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
      const { bytesWritten } = await handle.write(chunk, 0, chunk.length, written);
      if (bytesWritten !== chunk.length) {
        throw new ModelPullError('ERR_DISK_SPACE', `${blob.label}: short write (the disk may be full)`);
      }
      const at = written;
      written += chunk.length;
      hasher.written(at, chunk);
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
