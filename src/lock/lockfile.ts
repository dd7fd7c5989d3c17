import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ModelPullError } from '../errors.js';
import type { Identity, SourceKind } from '../plan.js';

/**
 * The lock file pins every line to the identity it resolved to (Ollama manifest digest and
 * bytes, HF commit and file list, URL sha256), so a run that reads it makes no tag or branch
 * lookup and knows its cache keys before any request. Sorted JSON, one model per key: stable
 * and reviewable in a diff.
 */
export const LOCK_VERSION = 1;

export interface LockFile {
  readonly version: typeof LOCK_VERSION;
  /** By model line, exactly as written (trimmed). */
  readonly models: Readonly<Record<string, Identity>>;
}

/** The lock, or undefined when the file does not exist. */
export async function readLock(path: string): Promise<LockFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ModelPullError('ERR_LOCKFILE', `cannot read lock file ${path}: ${(error as Error).message}`);
  }
  let parsed: LockFile;
  try {
    parsed = JSON.parse(text) as LockFile;
  } catch {
    throw new ModelPullError('ERR_LOCKFILE', `lock file ${path} is not valid JSON`);
  }
  if (parsed?.version !== LOCK_VERSION || typeof parsed.models !== 'object' || parsed.models === null) {
    throw new ModelPullError(
      'ERR_LOCKFILE',
      `lock file ${path} is not a version ${LOCK_VERSION} model-pull lock`,
    );
  }
  for (const [line, identity] of Object.entries(parsed.models)) checkIdentity(path, line, identity);
  return parsed;
}

/**
 * The entry for a line, when it is of the line's kind. Whether it names what the line names is
 * for the line's source to check (Source.plan), since only the source knows what that means.
 */
export function lockedIdentity(lock: LockFile, path: string, line: string, kind: SourceKind): Identity {
  const identity = lock.models[line];
  if (!identity) {
    throw new ModelPullError(
      'ERR_LOCKFILE',
      `lock file ${path} does not cover "${line}": update it with \`model-pull lock --lockfile ${path} <lines>\` or delete it to re-create it`,
    );
  }
  if (identity.source !== kind) {
    throw new ModelPullError(
      'ERR_LOCKFILE',
      `lock file ${path} has a ${identity.source} entry for the ${kind} line "${line}"`,
    );
  }
  return identity;
}

/** Writes atomically (temp file + rename) with sorted keys and a final newline. */
export async function writeLock(
  path: string,
  identities: readonly Identity[],
  previous?: LockFile,
): Promise<void> {
  const models: Record<string, Identity> = { ...(previous?.models ?? {}) };
  for (const identity of identities) models[identity.ref] = identity;
  const text = `${stableStringify({ version: LOCK_VERSION, models })}\n`;
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

function checkIdentity(path: string, line: string, identity: Identity): void {
  const ok =
    identity &&
    typeof identity === 'object' &&
    identity.ref === line &&
    typeof identity.source === 'string' &&
    typeof identity.name === 'string' &&
    typeof identity.digest === 'string' &&
    /^[0-9a-f]{64}$/.test(identity.contentDigest);
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
