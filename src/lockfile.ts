import { writeFileAtomic } from './atomic-write.js';
import { isSha256Hex } from './digest.js';
import { readBounded } from './download/safe-fs.js';
import { describeError, ModelPullError } from './errors.js';
import type { Identity } from './plan.js';
import { type ModelRef, parseLine } from './refs/index.js';
import type { SourceList } from './sources/descriptor.js';

/**
 * The lock file pins every line to the identity it resolved to (Ollama manifest digest and
 * bytes, HF commit and file list, URL sha256), so a run that reads it makes no tag or branch
 * lookup and knows its cache keys before any request. Sorted JSON, one model per key: stable
 * and reviewable in a diff.
 */
export const LOCK_VERSION = 1;

/**
 * A lock holds each HF line's whole listing, as a snapshot record does, so it gets the record's
 * bound (MAX_RECORD_BYTES in sources/hf/record.ts); a file past it was not written by us.
 */
export const MAX_LOCK_BYTES = 256 * 1024 * 1024;

export interface LockFile {
  readonly version: typeof LOCK_VERSION;
  /** By the canonical form of the model line (ModelRef.key); files from before kept the line as written. */
  readonly models: Readonly<Record<string, Identity>>;
}

/**
 * An identity as the file writes it: the field names are the file's format, which users commit,
 * so they stay put when the code's names change (`digest` is `Identity.pin`).
 */
interface LockEntry {
  readonly source: string;
  readonly ref: string;
  readonly name: string;
  readonly digest: string;
  readonly contentDigest: string;
  readonly detail?: Readonly<Record<string, unknown>>;
}

function toEntry({ pin, ...rest }: Identity): LockEntry {
  return { ...rest, digest: pin };
}

function fromEntry({ digest, ...rest }: LockEntry): Identity {
  return { ...rest, pin: digest };
}

/**
 * The lock, or undefined when the file does not exist. It comes with the repository, so it is
 * read like any file from outside: bounded, never through a link, never blocking on a FIFO.
 */
export async function readLock(path: string): Promise<LockFile | undefined> {
  const read = await readBounded(path, MAX_LOCK_BYTES);
  if (read.kind === 'missing') return undefined;
  if (read.kind === 'refused')
    throw new ModelPullError('ERR_LOCKFILE', `cannot read lock file ${path}: ${read.reason}`);
  const text = read.bytes.toString('utf8');
  let parsed: { version?: unknown; models?: Record<string, LockEntry> | null };
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ModelPullError('ERR_LOCKFILE', `lock file ${path} is not valid JSON`);
  }
  if (parsed?.version !== LOCK_VERSION || typeof parsed.models !== 'object' || parsed.models === null) {
    throw new ModelPullError(
      'ERR_LOCKFILE',
      `lock file ${path} is not a version ${LOCK_VERSION} model-pull lock`,
    );
  }
  const models: Record<string, Identity> = {};
  for (const [line, entry] of Object.entries(parsed.models)) {
    checkEntry(path, line, entry);
    models[line] = fromEntry(entry);
  }
  return { version: LOCK_VERSION, models };
}

/** The entries of a lock file by the canonical form of their line (ModelRef.key). */
export type LockEntries = ReadonlyMap<string, Identity>;

/**
 * Keys every entry by its line's canonical form, so a lock written as `hf:a/b` serves the line
 * `hf:a/b@main` (and locks written before keys were canonical keep working). An entry whose
 * key is no model line, whose source is not its line's, or which repeats another's line, is
 * refused: the file was edited by hand or by a newer model-pull.
 */
export function lockEntries(lock: LockFile, path: string, sources: SourceList): LockEntries {
  const entries = new Map<string, Identity>();
  const keptAs = new Map<string, string>();
  for (const [line, identity] of Object.entries(lock.models)) {
    let ref: ModelRef;
    try {
      ref = parseLine(line, sources);
    } catch (error) {
      throw new ModelPullError('ERR_LOCKFILE', `lock file ${path}: ${describeError(error)}`, {
        cause: error,
      });
    }
    if (identity.source !== ref.kind) {
      throw new ModelPullError(
        'ERR_LOCKFILE',
        `lock file ${path} has a ${identity.source} entry for the ${ref.kind} line "${line}"`,
      );
    }
    const other = keptAs.get(ref.key);
    if (other !== undefined) {
      throw new ModelPullError(
        'ERR_LOCKFILE',
        `lock file ${path} has two entries for one model line: "${other}" and "${line}" (keep one)`,
      );
    }
    keptAs.set(ref.key, line);
    entries.set(ref.key, identity);
  }
  return entries;
}

/** The entries of the lock file at `path` (named `shown` in messages); undefined when it does not exist. */
export async function readLockEntries(
  path: string,
  shown: string,
  sources: SourceList,
): Promise<LockEntries | undefined> {
  const lock = await readLock(path);
  return lock ? lockEntries(lock, shown, sources) : undefined;
}

/**
 * Writes atomically (temp file + rename) with sorted keys and a final newline; `entries` are
 * keyed by canonical line, which each entry's `ref` repeats.
 */
export async function writeLock(path: string, entries: LockEntries): Promise<void> {
  const models: Record<string, LockEntry> = {};
  for (const [key, identity] of entries) models[key] = toEntry({ ...identity, ref: key });
  const text = `${stableStringify({ version: LOCK_VERSION, models })}\n`;
  await writeFileAtomic(path, text);
}

function checkEntry(path: string, line: string, entry: LockEntry): void {
  const ok =
    entry &&
    typeof entry === 'object' &&
    entry.ref === line &&
    typeof entry.source === 'string' &&
    typeof entry.name === 'string' &&
    typeof entry.digest === 'string' &&
    typeof entry.contentDigest === 'string' &&
    isSha256Hex(entry.contentDigest) &&
    (entry.detail === undefined || (typeof entry.detail === 'object' && entry.detail !== null));
  if (!ok)
    throw new ModelPullError('ERR_LOCKFILE', `lock file ${path}: the entry for "${line}" is malformed`);
}

/** JSON with object keys sorted at every level, two-space indented. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(sortKeys(value), null, 2);
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}
