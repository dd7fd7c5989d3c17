import { stat } from 'node:fs/promises';
import { type Clock, systemClock } from '../clock.js';
import { hashFile } from '../digest.js';
import { describeError, isModelPullError, ModelPullError } from '../errors.js';
import { ensureDirs } from '../fs-dirs.js';
import type { HttpClient } from '../http/client.js';
import type { RetryPolicy } from '../http/retry.js';
import type { Logger } from '../report/logger.js';
import { downloadToStaging } from './blob-download.js';
import { eventLoopLoad, type GateTuning, MIN_SOLO_RATE } from './connection-gate.js';
import { checkDiskSpace } from './disk.js';
import { acquireLease, describeHolder, type Lease, type LeaseTiming } from './lease.js';
import { poolSettled } from './pool.js';
import { ProgressTracker } from './progress.js';
import { commitStaged, discardStaging, loadProgress, stagingPaths, targetInfo } from './staging.js';
import type { BlobResult, BlobSpec, ProgressListener } from './types.js';

const MiB = 1024 * 1024;
/**
 * Blobs from this size start on one connection and open the rest once the main thread has room
 * (connection-gate.ts): big enough that a window or two on one connection costs little.
 */
const GATED_BLOB = 256 * MiB;
/** A blob's progress is recorded every this many new bytes: what a kill -9 may cost a resume. */
export const FLUSH_BYTES = 8 * MiB;

export interface EngineOptions {
  readonly http: HttpClient;
  /** Blobs fetched at once. */
  readonly concurrency: number;
  /** Parallel range requests per large blob. */
  readonly connections: number;
  /** How an existing target is trusted: `full` re-hashes it, `size` checks its length. */
  readonly verify: 'full' | 'size';
  /** Retry budget and delays; its `onRetry` hears every retry with its cause and wait. */
  readonly retry: RetryPolicy;
  readonly signal?: AbortSignal;
  readonly onProgress?: ProgressListener;
  readonly progressIntervalMs?: number;
  /** Smallest range worth a request of its own (default 4 MiB). */
  readonly minSplit?: number;
  /** Progress is recorded at least every this many bytes per blob (default FLUSH_BYTES). */
  readonly flushBytes?: number;
  /** Time for retries, lease waits and rates (tests pass a fake one); default: real time. */
  readonly clock?: Clock;
  /** Waits for another process are said here (info); quiet failures go to debug. */
  readonly log?: Logger;
  /** Heartbeat, staleness and longest wait of staging leases (lease.ts has the defaults). */
  readonly lease?: Partial<LeaseTiming>;
  /** Told as each blob ends, downloaded or reused, so callers can time their models. */
  readonly onSettled?: (blob: BlobSpec, outcome: PromiseSettledResult<BlobResult>) => void;
  /** Told as a blob that is not on disk starts downloading (every check on disk is over by then). */
  readonly onFetchStart?: (blob: BlobSpec) => void;
  /**
   * Which blobs start on one connection, and what opens the rest (default: 256 MiB and up, the
   * main thread's event-loop utilisation; tests pass a load of their own).
   */
  readonly gate?: GateTuning;
}

/** Places every blob, verified, at its target (reusing verified ones), or throws the first error. */
export async function fetchBlobs(blobs: readonly BlobSpec[], options: EngineOptions): Promise<BlobResult[]> {
  const settled = await fetchBlobsSettled(blobs, options);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<BlobResult>).value);
}

/**
 * Like fetchBlobs, but every blob gets its own outcome, so one broken model does not stop the
 * others. The disk check covers all of them together, before the first byte.
 */
export async function fetchBlobsSettled(
  blobs: readonly BlobSpec[],
  options: EngineOptions,
): Promise<PromiseSettledResult<BlobResult>[]> {
  // Two specs for one target (one blob shared by two models) are fetched once.
  const unique = [...new Map(blobs.map((b) => [b.target, b])).values()];
  const outcomes = await fetchUnique(unique, options);
  const byTarget = new Map(unique.map((b, i) => [b.target, outcomes[i]!]));
  return blobs.map((b) => byTarget.get(b.target)!);
}

type Progress = ReturnType<ProgressTracker['add']>;

async function fetchUnique(
  blobs: readonly BlobSpec[],
  options: EngineOptions,
): Promise<PromiseSettledResult<BlobResult>[]> {
  const clock = options.clock ?? systemClock;
  const tracker = new ProgressTracker(options.onProgress, options.progressIntervalMs ?? 1000, clock);
  try {
    const entries = blobs.map((blob) => ({
      blob,
      progress: tracker.add(blob.label, blob.target, blob.size),
    }));
    // Each target is checked on its own: one that cannot be read fails its blob, not the run.
    const checks = await poolSettled(entries, options.concurrency, async ({ blob, progress }) => {
      progress.state = 'checking';
      const verdict = await checkExisting(blob, options.verify);
      if (verdict.ok) tracker.finish(progress, verdict.size);
      return verdict;
    });
    const early = entries.map(({ blob, progress }, i): PromiseSettledResult<BlobResult> | undefined => {
      const check = checks[i]!;
      let outcome: PromiseSettledResult<BlobResult>;
      if (check.status === 'rejected') {
        outcome = { status: 'rejected', reason: labelled(blob, check.reason) };
        failedWith(progress, outcome.reason);
      } else if (check.value.ok) {
        outcome = { status: 'fulfilled', value: reusedResult(blob, check.value.size) };
      } else {
        return undefined;
      }
      options.onSettled?.(blob, outcome);
      return outcome;
    });
    const missing = entries.flatMap((entry, i) => {
      const check = checks[i]!;
      return check.status === 'fulfilled' && !check.value.ok ? [{ ...entry, verdict: check.value }] : [];
    });
    await checkDiskSpace(await bytesToFetch(missing.map((e) => e.blob)));
    // The connections of `concurrency` large blobs are the budget: a blob too small to split takes
    // one of them, so many small files (a sharded repo) run side by side instead of four at a
    // time on one connection each, and the tail of a repo does not crawl.
    const minSplit = options.minSplit ?? 4 * MiB;
    const connectionsOf = ({ blob }: { blob: BlobSpec }) =>
      blob.size === undefined
        ? options.connections
        : Math.min(options.connections, Math.max(1, Math.floor(blob.size / minSplit)));
    const budget = { limit: options.concurrency * options.connections, weight: connectionsOf };
    const fetched = await poolSettled(missing, budget, async ({ blob, progress, verdict }) => {
      tracker.start(progress);
      options.onFetchStart?.(blob);
      try {
        const result = await fetchVerified(blob, options, verdict, {
          onStart: (staged, size) => {
            if (size !== undefined) progress.total = size;
            tracker.startAt(progress, staged);
          },
          onBytes: (n) => {
            progress.done += n;
          },
          onSize: (size) => {
            progress.total = size;
          },
        });
        tracker.finish(progress, result.size);
        options.onSettled?.(blob, { status: 'fulfilled', value: result });
        return result;
      } catch (caught) {
        const error = labelled(blob, caught);
        failedWith(progress, error);
        options.onSettled?.(blob, { status: 'rejected', reason: error });
        throw error;
      }
    });
    const byBlob = new Map(missing.map((e, i) => [e.blob, fetched[i]!]));
    return entries.map(({ blob }, i) => early[i] ?? byBlob.get(blob)!);
  } finally {
    tracker.stop();
  }
}

function failedWith(progress: Progress, error: unknown): void {
  progress.state = 'failed';
  progress.error = describeError(error);
}

/** A blob whose target already holds its verified bytes: nothing fetched. */
export function reusedResult(blob: BlobSpec, size: number): BlobResult {
  return {
    target: blob.target,
    digest: blob.digest,
    size,
    downloadedBytes: 0,
    reused: true,
    replaced: false,
  };
}

/**
 * Downloads, compares the streamed digest, commits; one fresh try after a mismatch. The lease
 * spans download, verification and the rename: nobody else may touch the staged file. Another
 * process pulling the same blob waits for it, then finds the blob committed and reuses it.
 */
async function fetchVerified(
  blob: BlobSpec,
  options: EngineOptions,
  verdict: Missing,
  progress: {
    onStart(staged: number, size: number | undefined): void;
    onBytes(n: number): void;
    onSize(size: number): void;
  },
): Promise<BlobResult> {
  if (options.signal?.aborted) {
    throw new ModelPullError('ERR_ABORTED', `${blob.label}: not started, stopped by the user`);
  }
  // The ingest folder may be the first thing created in a new store: its parents must be 0755.
  await ensureDirs(blob.ingestDir);
  const paths = stagingPaths(blob.ingestDir, blob.digest);
  const lease = await acquireLease(paths.lease, blob.label, {
    clock: options.clock ?? systemClock,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.lease ? { timing: options.lease } : {}),
    onWait: (holder) => options.log?.info(`waiting for ${describeHolder(holder)} to finish ${blob.label}`),
  });
  try {
    const committed = await committedMeanwhile(blob, options.verify, verdict);
    if (committed) return committed;
    const result = await fetchVerifiedLocked(blob, options, progress, lease);
    // A target that was there but failed verification has just been replaced.
    return { ...result, replaced: verdict.present };
  } finally {
    await lease.release();
  }
}

/**
 * The target as another process may have left it while this blob queued or waited for the
 * lease: unchanged since the first check (absent, or the same wrong file) means fetch; anything
 * new is checked like any existing target and reused when verified.
 */
async function committedMeanwhile(
  blob: BlobSpec,
  verify: 'full' | 'size',
  before: Missing,
): Promise<BlobResult | undefined> {
  const now = await targetInfo(blob.target);
  if (!now) return undefined;
  const seen = before.seen;
  if (seen && seen.ino === now.ino && seen.mtimeMs === now.mtimeMs && seen.size === now.size)
    return undefined;
  const verdict = await checkExisting(blob, verify);
  return verdict.ok ? reusedResult(blob, verdict.size) : undefined;
}

async function fetchVerifiedLocked(
  blob: BlobSpec,
  options: EngineOptions,
  progress: {
    onStart(staged: number, size: number | undefined): void;
    onBytes(n: number): void;
    onSize(size: number): void;
  },
  lease: Lease,
): Promise<BlobResult> {
  let downloaded = 0;
  // A blob has one other place at most (the origin behind a mirror): one fallback, so two
  // places that both fail, or a mirror that is its own origin, cannot send it back and forth.
  let fellBack = false;
  const fallBack = (error: unknown) => {
    if (fellBack || !fallsBack(blob, error, options)) return false;
    fellBack = true;
    return true;
  };
  for (let attempt = 1; ; attempt++) {
    let staged: Awaited<ReturnType<typeof downloadToStaging>>;
    try {
      staged = await downloadToStaging(blob, {
        http: options.http,
        connections: options.connections,
        retry: options.retry,
        minSplit: options.minSplit ?? 4 * MiB,
        flushBytes: options.flushBytes ?? FLUSH_BYTES,
        flushIntervalMs: 1000,
        signal: options.signal,
        clock: options.clock ?? systemClock,
        log: options.log,
        onStart: progress.onStart,
        onBytes: progress.onBytes,
        onSize: progress.onSize,
        gate: options.gate ?? { load: eventLoopLoad, minSize: GATED_BLOB, minRate: MIN_SOLO_RATE },
      });
    } catch (error) {
      if (!fallBack(error)) throw error;
      await discardStaging(stagingPaths(blob.ingestDir, blob.digest));
      attempt = 0;
      continue;
    }
    downloaded += staged.fetched;
    // The file itself must hold as many bytes as were hashed (the hash saw them in memory).
    const onDisk = (await stat(staged.paths.data)).size;
    const sizeOk = onDisk === staged.size && (blob.size === undefined || staged.size === blob.size);
    if (sizeOk && staged.hex === blob.digest.hex) {
      if (!(await lease.held())) {
        throw new ModelPullError(
          'ERR_STAGING_LOCK',
          `another process took over the download of ${blob.label} (it judged this one stalled)`,
        );
      }
      await commitStaged(staged.paths, blob.target);
      return {
        target: blob.target,
        digest: blob.digest,
        size: staged.size,
        downloadedBytes: downloaded,
        host: staged.host,
        reused: false,
        replaced: false,
      };
    }
    // Staged bytes that do not match are never kept: the next try starts from byte 0.
    await discardStaging(staged.paths);
    const mismatch = new ModelPullError(
      'ERR_DIGEST_MISMATCH',
      `${blob.label}: ${blob.digest.algorithm} mismatch from ${staged.host}: expected ${blob.digest.hex}, got ${staged.hex}`,
      { host: staged.host },
    );
    // Another place for the blob gets its own two tries; the same place, one more.
    if (fallBack(mismatch)) attempt = 0;
    else if (attempt >= 2) throw mismatch;
  }
}

/**
 * Whether the blob is fetched again from the source's other place after this failure: never
 * for a stop, a local fault (disk, filesystem, another process's lease), which no other
 * server mends.
 */
function fallsBack(blob: BlobSpec, error: unknown, options: EngineOptions): boolean {
  if (!blob.fallback || options.signal?.aborted) return false;
  const local = [
    'ERR_ABORTED',
    'ERR_DISK_SPACE',
    'ERR_FILESYSTEM',
    'ERR_STAGING_LOCK',
    'ERR_NOT_WRITABLE',
  ] as const;
  if (local.some((code) => isModelPullError(error, code))) return false;
  return blob.fallback(error);
}

/**
 * The size of the blob's target when it already holds the verified bytes (checked as the
 * engine checks before a download), else undefined. A target that cannot be read throws.
 */
export async function verifiedSize(blob: BlobSpec, verify: 'full' | 'size'): Promise<number | undefined> {
  const verdict = await checkExisting(blob, verify);
  return verdict.ok ? verdict.size : undefined;
}

type TargetSeen = NonNullable<Awaited<ReturnType<typeof targetInfo>>>;
type Missing = { ok: false; present: boolean; seen?: TargetSeen };
type Verdict = { ok: true; present: true; size: number } | Missing;

/**
 * Is the target already the right bytes? Never follows a link there, and never deletes a wrong
 * file: the commit's rename replaces it atomically, so a failed download leaves the old file,
 * and a target another process has just committed is not removed under it.
 */
async function checkExisting(blob: BlobSpec, verify: 'full' | 'size'): Promise<Verdict> {
  let seen: TargetSeen | undefined;
  try {
    seen = await targetInfo(blob.target);
    if (!seen) return { ok: false, present: false };
    if (seen.kind !== 'file') return { ok: false, present: true, seen };
    if (blob.size !== undefined && seen.size !== blob.size) return { ok: false, present: true, seen };
    // Without a known size only the hash can tell; a git-sha1 always comes with its size.
    if (verify === 'size' && blob.size !== undefined) return { ok: true, present: true, size: seen.size };
    const hex = await hashFile(blob.target, blob.digest.algorithm, seen.size);
    if (hex === blob.digest.hex) return { ok: true, present: true, size: seen.size };
    return { ok: false, present: true, seen };
  } catch (error) {
    throw new ModelPullError(
      'ERR_FILESYSTEM',
      `cannot check the existing file ${blob.target}: ${describeError(error)}`,
      { cause: error },
    );
  }
}

/** Bytes still to land per ingest folder: expected size minus what a previous run staged. */
async function bytesToFetch(blobs: readonly BlobSpec[]): Promise<Map<string, number>> {
  const needs = new Map<string, number>();
  for (const blob of blobs) {
    if (blob.size === undefined) continue;
    const saved = await loadProgress(stagingPaths(blob.ingestDir, blob.digest), blob.digest, blob.size);
    const staged = saved ? saved.segments.reduce((sum, s) => sum + (s.pos - s.start), 0) : 0;
    needs.set(blob.ingestDir, (needs.get(blob.ingestDir) ?? 0) + blob.size - staged);
  }
  return needs;
}

/** Every blob error names its blob first, once. */
function labelled(blob: BlobSpec, error: unknown): unknown {
  if (!(error instanceof ModelPullError) || error.message.startsWith(`${blob.label}: `)) return error;
  return error.withMessage(`${blob.label}: ${error.message}`);
}
