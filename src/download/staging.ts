import { type FileHandle, lstat, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { removeStaleTemps, writeFileAtomicSync } from '../atomic-write.js';
import { type Digest, formatDigest } from '../digest.js';
import { ModelPullError } from '../errors.js';
import { ensureDirs } from '../fs-dirs.js';
import type { SegmentRecord } from './range-plan.js';
import { createExclusive, openOwnFile, readSmall } from './safe-fs.js';

/**
 * The staging area: `<ingestDir>/<algo>-<hex>.partial` holds the bytes, `.progress.json` which
 * ranges of it are written. Both live outside the consumer's folders until the digest matches,
 * then the data file is renamed onto the target (same filesystem, so the switch is atomic).
 * The folder may be shared with other processes (design.md, "Trust boundaries"): its files are
 * created exclusively, never opened through a link, and a record is only believed when every
 * field has the shape we write.
 */
export interface StagingPaths {
  readonly data: string;
  readonly record: string;
  /** The lease file that names the one process writing this entry (lease.ts). */
  readonly lease: string;
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

/** A record holds a few hundred segments at most (the plan coalesces finished ones). */
const MAX_RECORD_BYTES = 1024 * 1024;

export function stagingPaths(ingestDir: string, digest: Digest): StagingPaths {
  const base = join(ingestDir, `${digest.algorithm}-${digest.hex}`);
  return { data: `${base}.partial`, record: `${base}.progress.json`, lease: `${base}.lock` };
}

/** The saved progress, when it belongs to this digest and size; anything odd means start over. */
export async function loadProgress(
  paths: StagingPaths,
  digest: Digest,
  size: number | undefined,
): Promise<SavedProgress | undefined> {
  const bytes = await readSmall(paths.record, MAX_RECORD_BYTES);
  if (!bytes) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  return parseRecord(value, formatDigest(digest), size);
}

const isOffset = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/**
 * Valid JSON of the wrong shape (`null`, no segments, overlapping ranges) is as good as no
 * record: the blob starts over instead of every run failing on it.
 */
function parseRecord(value: unknown, digest: string, size: number | undefined): SavedProgress | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Partial<Record<keyof ProgressRecord, unknown>>;
  if (record.version !== 1 || record.digest !== digest) return undefined;
  const recorded = record.size;
  if (recorded !== null && !isOffset(recorded)) return undefined;
  if (size !== undefined && recorded !== null && recorded !== size) return undefined;
  if (!Array.isArray(record.segments) || record.segments.length === 0) return undefined;
  // The segments must partition [0, size): each starts where the previous one ended.
  const segments: SegmentRecord[] = [];
  let next = 0;
  for (const [i, raw] of record.segments.entries()) {
    if (typeof raw !== 'object' || raw === null) return undefined;
    const { start, pos, end } = raw as Record<string, unknown>;
    const last = i === record.segments.length - 1;
    const open = end === null && last && recorded === null;
    if (!isOffset(start) || !isOffset(pos) || (!open && !isOffset(end))) return undefined;
    const stop = open ? Number.POSITIVE_INFINITY : (end as number);
    if (start !== next || pos < start || pos > stop) return undefined;
    segments.push({ start, pos, end: stop });
    next = stop;
  }
  if (recorded !== null && next !== recorded) return undefined;
  return { size: recorded ?? undefined, segments };
}

/** Written to a fresh temporary file and renamed, so a kill mid-write leaves the previous record. */
export function saveProgress(
  paths: StagingPaths,
  digest: Digest,
  size: number | undefined,
  segments: readonly SegmentRecord[],
): void {
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
  writeFileAtomicSync(paths.record, JSON.stringify(record));
}

/**
 * The staged data file: the existing one when there is progress to resume and it is a plain
 * file of ours, else a new one created exclusively (a planted link or a hard link to another
 * file is removed, never written through). `resumed` says which.
 */
export async function openStagingData(
  paths: StagingPaths,
  resume: boolean,
): Promise<{ file: FileHandle; resumed: boolean }> {
  const existing = resume ? await openOwnFile(paths.data) : undefined;
  if (existing) return { file: existing, resumed: true };
  return { file: await createExclusive(paths.data, 0o644, true), resumed: false };
}

export async function discardStaging(paths: StagingPaths): Promise<void> {
  await Promise.all([rm(paths.data, { force: true }), removeRecord(paths)]);
}

/**
 * The record and the temporary files of record writes a kill cut short. A record is only a hint
 * (loadProgress ignores anything that is not a well-formed file), so one that cannot be removed,
 * a folder planted in its place say, is left rather than failing a blob that is in place.
 */
async function removeRecord(paths: StagingPaths): Promise<void> {
  await Promise.all([rm(paths.record, { force: true }), removeStaleTemps(paths.record)]).catch(
    () => undefined,
  );
}

/**
 * Moves verified bytes onto the target: 0644, parent folders 0755, then the record goes. The
 * rename replaces whatever the target was (an older file, a planted link) in one step, so a
 * reader sees the old bytes or the new ones, never none.
 */
export async function commitStaged(paths: StagingPaths, target: string): Promise<void> {
  await ensureDirs(dirname(target));
  const file = await openOwnFile(paths.data);
  if (!file) {
    throw new ModelPullError(
      'ERR_STAGING_LOCK',
      `the staged file ${paths.data} was replaced by another process before its commit`,
    );
  }
  try {
    await file.chmod(0o644);
  } finally {
    await file.close();
  }
  await rename(paths.data, target);
  await removeRecord(paths);
}

/** What is at a final path, without following a link there. */
export async function targetInfo(
  target: string,
): Promise<{ kind: 'file' | 'other'; size: number; ino: number; mtimeMs: number } | undefined> {
  try {
    const info = await lstat(target);
    return { kind: info.isFile() ? 'file' : 'other', size: info.size, ino: info.ino, mtimeMs: info.mtimeMs };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
}
