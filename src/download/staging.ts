import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type Digest, formatDigest } from '../digest.js';
import { ensureDirs } from '../fs-dirs.js';
import { realSleep } from '../http/retry.js';
import type { SegmentRecord } from './range-plan.js';

/**
 * The staging area: `<ingestDir>/<algo>-<hex>.partial` holds the bytes, `.progress.json` which
 * ranges of it are written. Both live outside the consumer's folders until the digest matches,
 * then the data file is renamed onto the target (same filesystem, so the switch is atomic).
 */
export interface StagingPaths {
  readonly data: string;
  readonly record: string;
}

interface ProgressRecord {
  readonly version: 1;
  readonly digest: string;
  readonly size: number | null;
  readonly segments: readonly { start: number; pos: number; end: number | null }[];
}

export interface SavedProgress {
  readonly size: number | undefined;
  readonly segments: readonly SegmentRecord[];
}

export function stagingPaths(ingestDir: string, digest: Digest): StagingPaths {
  const base = join(ingestDir, `${digest.algorithm}-${digest.hex}`);
  return { data: `${base}.partial`, record: `${base}.progress.json` };
}

/** The saved progress, when it belongs to this digest and size; anything odd means start over. */
export async function loadProgress(
  paths: StagingPaths,
  digest: Digest,
  size: number | undefined,
): Promise<SavedProgress | undefined> {
  let record: ProgressRecord;
  try {
    record = JSON.parse(await readFile(paths.record, 'utf8')) as ProgressRecord;
  } catch {
    return undefined;
  }
  if (record.version !== 1 || record.digest !== formatDigest(digest)) return undefined;
  if (size !== undefined && record.size !== null && record.size !== size) return undefined;
  const segments = record.segments.map((s) => ({
    start: s.start,
    pos: s.pos,
    end: s.end ?? Number.POSITIVE_INFINITY,
  }));
  const sane = segments.every(
    (s, i) => s.start <= s.pos && s.pos <= s.end && (i === 0 ? s.start === 0 : true),
  );
  if (!sane) return undefined;
  return { size: record.size ?? undefined, segments };
}

/** Written to a temporary name and renamed, so a kill mid-write leaves the previous record. */
export async function saveProgress(
  paths: StagingPaths,
  digest: Digest,
  size: number | undefined,
  segments: readonly SegmentRecord[],
): Promise<void> {
  const record: ProgressRecord = {
    version: 1,
    digest: formatDigest(digest),
    size: size ?? null,
    segments: segments.map((s) => ({
      start: s.start,
      pos: s.pos,
      end: Number.isFinite(s.end) ? s.end : null,
    })),
  };
  const tmp = `${paths.record}.tmp`;
  await writeFile(tmp, JSON.stringify(record));
  await rename(tmp, paths.record);
}

export async function discardStaging(paths: StagingPaths): Promise<void> {
  await Promise.all([rm(paths.data, { force: true }), rm(paths.record, { force: true })]);
}

/** Moves verified bytes onto the target: 0644, parent folders 0755, then the record goes. */
export async function commitStaged(paths: StagingPaths, target: string): Promise<void> {
  await ensureDirs(dirname(target));
  await chmod(paths.data, 0o644);
  await rename(paths.data, target);
  await rm(paths.record, { force: true });
}

/** In-process holders of staging locks: two blobs of one run with the same digest take turns. */
const holders = new Map<string, Promise<void>>();

/**
 * One writer per staging entry. Two downloads of one digest into one ingest folder (two lines
 * naming the same bytes, two processes sharing a store) would otherwise truncate each other's
 * file while each hashes its own bytes from memory. In this process the second waits for the
 * first; across processes a `.lock` file holds the owner's pid, and the second waits while
 * that process lives (a lock left by a killed process is taken over).
 */
export async function lockStaging(paths: StagingPaths, signal?: AbortSignal): Promise<() => Promise<void>> {
  const lockPath = paths.data.replace(/\.partial$/, '.lock');
  const previous = holders.get(lockPath);
  let releaseLocal!: () => void;
  const mine = new Promise<void>((resolve) => {
    releaseLocal = resolve;
  });
  const turn = (previous ?? Promise.resolve()).then(() => mine);
  holders.set(lockPath, turn);
  const done = () => {
    releaseLocal();
    if (holders.get(lockPath) === turn) holders.delete(lockPath);
  };
  try {
    await previous;
    await takeFileLock(lockPath, signal);
  } catch (error) {
    done();
    throw error;
  }
  return async () => {
    await rm(lockPath, { force: true });
    done();
  };
}

async function takeFileLock(lockPath: string, signal?: AbortSignal): Promise<void> {
  for (;;) {
    try {
      await writeFile(lockPath, String(process.pid), { flag: 'wx' });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
    if (owner && owner !== process.pid && isAlive(owner)) {
      await realSleep(500, signal);
      continue;
    }
    await rm(lockPath, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
