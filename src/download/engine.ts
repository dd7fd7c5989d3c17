import { rm, stat } from 'node:fs/promises';
import { hashFile } from '../digest.js';
import { ModelPullError } from '../errors.js';
import { ensureDirs } from '../fs-dirs.js';
import type { HttpClient } from '../http/client.js';
import type { RetryPolicy, realSleep } from '../http/retry.js';
import { downloadToStaging } from './blob-download.js';
import { checkDiskSpace } from './disk.js';
import { ProgressTracker } from './progress.js';
import { commitStaged, discardStaging, loadProgress, lockStaging, stagingPaths } from './staging.js';
import type { BlobResult, BlobSpec, ProgressListener } from './types.js';

const MiB = 1024 * 1024;

export interface EngineOptions {
  readonly http: HttpClient;
  /** Blobs fetched at once. */
  readonly concurrency: number;
  /** Parallel range requests per large blob. */
  readonly connections: number;
  /** How an existing target is trusted: `full` re-hashes it, `size` checks its length. */
  readonly verify: 'full' | 'size';
  readonly retry: RetryPolicy;
  readonly signal?: AbortSignal;
  readonly onProgress?: ProgressListener;
  readonly progressIntervalMs?: number;
  /** Smallest range worth a request of its own (default 4 MiB). */
  readonly minSplit?: number;
  /** Progress is recorded at least every this many bytes per blob (default 8 MiB). */
  readonly flushBytes?: number;
  readonly sleep?: typeof realSleep;
  /** Told as each blob ends, downloaded or reused, so callers can time their models. */
  readonly onSettled?: (blob: BlobSpec, outcome: PromiseSettledResult<BlobResult>) => void;
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

async function fetchUnique(
  blobs: readonly BlobSpec[],
  options: EngineOptions,
): Promise<PromiseSettledResult<BlobResult>[]> {
  const tracker = new ProgressTracker(options.onProgress, options.progressIntervalMs ?? 1000);
  try {
    const entries = blobs.map((blob) => ({
      blob,
      progress: tracker.add(blob.label, blob.target, blob.size),
    }));
    const existing = await pool(entries, options.concurrency, async ({ blob, progress }) => {
      progress.state = 'checking';
      const verdict = await checkExisting(blob, options.verify);
      if (verdict.ok) {
        progress.state = 'done';
        progress.total = verdict.size;
        progress.done = verdict.size;
      }
      return verdict;
    });
    const reusedOutcomes = entries.map(({ blob }, i): PromiseSettledResult<BlobResult> | undefined => {
      const verdict = existing[i]!;
      if (!verdict.ok) return undefined;
      const value = { target: blob.target, digest: blob.digest, size: verdict.size, downloadedBytes: 0 };
      const outcome = { status: 'fulfilled' as const, value: { ...value, reused: true, replaced: false } };
      options.onSettled?.(blob, outcome);
      return outcome;
    });
    const missing = entries.filter((_, i) => !existing[i]?.ok);
    await checkDiskSpace(await bytesToFetch(missing.map((e) => e.blob)));
    const fetched = await poolSettled(missing, options.concurrency, async ({ blob, progress }) => {
      tracker.start(progress);
      try {
        const result = await fetchVerified(blob, options, {
          onBytes: (n) => {
            progress.done += n;
          },
          onSize: (size) => {
            progress.total = size;
          },
        });
        progress.state = 'done';
        progress.total = result.size;
        progress.done = result.size;
        // A target that was there but failed verification has just been replaced.
        const replaced = existing[entries.findIndex((e) => e.blob === blob)]!.present;
        const value = { ...result, replaced };
        options.onSettled?.(blob, { status: 'fulfilled', value });
        return value;
      } catch (caught) {
        const error = labelled(blob, caught);
        progress.state = 'failed';
        options.onSettled?.(blob, { status: 'rejected', reason: error });
        throw error;
      }
    });
    const byBlob = new Map(missing.map((e, i) => [e.blob, fetched[i]!]));
    return entries.map(({ blob }, i) => reusedOutcomes[i] ?? byBlob.get(blob)!);
  } finally {
    tracker.stop();
  }
}

/** Downloads, compares the streamed digest, commits; one fresh try after a mismatch. */
async function fetchVerified(
  blob: BlobSpec,
  options: EngineOptions,
  progress: { onBytes(n: number): void; onSize(size: number): void },
): Promise<BlobResult> {
  if (options.signal?.aborted) {
    throw new ModelPullError('ERR_ABORTED', `${blob.label}: not started, stopped by the user`);
  }
  // The lock spans download, verification and the rename: nobody else may touch the staged file.
  // The ingest folder may be the first thing created in a new store: its parents must be 0755.
  await ensureDirs(blob.ingestDir);
  const release = await lockStaging(stagingPaths(blob.ingestDir, blob.digest), options.signal);
  try {
    return await fetchVerifiedLocked(blob, options, progress);
  } finally {
    await release();
  }
}

async function fetchVerifiedLocked(
  blob: BlobSpec,
  options: EngineOptions,
  progress: { onBytes(n: number): void; onSize(size: number): void },
): Promise<BlobResult> {
  let downloaded = 0;
  for (let attempt = 1; ; attempt++) {
    const staged = await downloadToStaging(blob, {
      http: options.http,
      connections: options.connections,
      retry: options.retry,
      minSplit: options.minSplit ?? 4 * MiB,
      flushBytes: options.flushBytes ?? 8 * MiB,
      flushIntervalMs: 1000,
      signal: options.signal,
      sleep: options.sleep,
      onBytes: progress.onBytes,
      onSize: progress.onSize,
    });
    downloaded += staged.fetched;
    // The file itself must hold as many bytes as were hashed (the hash saw them in memory).
    const onDisk = (await stat(staged.paths.data)).size;
    const sizeOk = onDisk === staged.size && (blob.size === undefined || staged.size === blob.size);
    if (sizeOk && staged.hex === blob.digest.hex) {
      await commitStaged(staged.paths, blob.target);
      return {
        target: blob.target,
        digest: blob.digest,
        size: staged.size,
        downloadedBytes: downloaded,
        reused: false,
        replaced: false,
      };
    }
    // Staged bytes that do not match are never kept: the next try starts from byte 0.
    await discardStaging(staged.paths);
    if (attempt >= 2) {
      throw new ModelPullError(
        'ERR_DIGEST_MISMATCH',
        `${blob.label}: ${blob.digest.algorithm} mismatch from ${staged.host}: expected ${blob.digest.hex}, got ${staged.hex}`,
      );
    }
  }
}

type Verdict = { ok: true; present: true; size: number } | { ok: false; present: boolean };

/** Is the target already the right bytes? A wrong file is left to be replaced by the rename. */
async function checkExisting(blob: BlobSpec, verify: 'full' | 'size'): Promise<Verdict> {
  let size: number;
  try {
    const info = await stat(blob.target);
    if (!info.isFile()) return { ok: false, present: true };
    size = info.size;
  } catch {
    return { ok: false, present: false };
  }
  if (blob.size !== undefined && size !== blob.size) return { ok: false, present: true };
  // Without a known size only the hash can tell; a git-sha1 always comes with its size.
  if (verify === 'size' && blob.size !== undefined) return { ok: true, present: true, size };
  const hex = await hashFile(blob.target, blob.digest.algorithm, size);
  if (hex === blob.digest.hex) return { ok: true, present: true, size };
  await rm(blob.target, { force: true });
  return { ok: false, present: true };
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

async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const settled = await poolSettled(items, limit, fn);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<R>).value);
}

async function poolSettled<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { status: 'fulfilled', value: await fn(items[i]!) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

/** Every blob error names its blob first, once. */
function labelled(blob: BlobSpec, error: unknown): unknown {
  if (!(error instanceof ModelPullError) || error.message.startsWith(`${blob.label}: `)) return error;
  return new ModelPullError(error.code, `${blob.label}: ${error.message}`, {
    cause: error,
    ...(error.status !== undefined ? { status: error.status } : {}),
    ...(error.retryAfterSeconds !== undefined ? { retryAfterSeconds: error.retryAfterSeconds } : {}),
  });
}
