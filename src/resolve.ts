import { type LockFile, lockedIdentity, writeLock } from './lock/lockfile.js';
import type { Identity, SourceContext } from './plan.js';
import type { ModelRef } from './refs/index.js';
import { type Sources, sourceOf } from './sources/descriptor.js';

/** The lock file of a run, when one is configured: its path, and its content when it exists. */
export interface LockTarget {
  readonly path: string;
  readonly lock: LockFile | undefined;
}

/**
 * The identity of every line, settled one by one (a line that fails is that model's failure):
 * from the lock file when it exists, with no lookup at all; else looked up by each line's
 * source, and when a lock file is configured but absent, written there once every line resolved.
 */
export async function resolveIdentities(
  refs: readonly ModelRef[],
  sources: Sources,
  ctx: SourceContext,
  lockfile: LockTarget | undefined,
): Promise<{ identities: PromiseSettledResult<Identity>[]; wroteLock: boolean }> {
  const lock = lockfile?.lock;
  if (lockfile && lock) {
    const identities = refs.map((ref) =>
      settle(() => lockedIdentity(lock, lockfile.path, ref.line, ref.kind)),
    );
    return { identities, wroteLock: false };
  }
  if (lockfile) {
    const { results, written } = await lockLines(lockfile.path, refs, sources, ctx);
    return { identities: results, wroteLock: written };
  }
  return { identities: await identifyLines(refs, sources, ctx), wroteLock: false };
}

/** Asks each line's source, all at once; one result per line, in line order. */
export function identifyLines(
  refs: readonly ModelRef[],
  sources: Sources,
  ctx: SourceContext,
): Promise<PromiseSettledResult<Identity>[]> {
  return Promise.allSettled(refs.map(async (ref) => sourceOf(sources, ref).identify(ref.ref, ctx)));
}

/**
 * Looks every line up and writes them all into the lock file, keeping `previous`'s other lines;
 * writes nothing when any line failed: a lock that pins only some of the lines asked for would
 * surprise later.
 */
export async function lockLines(
  path: string,
  refs: readonly ModelRef[],
  sources: Sources,
  ctx: SourceContext,
  previous?: LockFile,
): Promise<{ results: PromiseSettledResult<Identity>[]; written: boolean }> {
  const results = await identifyLines(refs, sources, ctx);
  const identities = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  if (identities.length < results.length) return { results, written: false };
  await writeLock(path, identities, previous);
  return { results, written: true };
}

function settle<T>(fn: () => T): PromiseSettledResult<T> {
  try {
    return { status: 'fulfilled', value: fn() };
  } catch (reason) {
    return { status: 'rejected', reason };
  }
}
