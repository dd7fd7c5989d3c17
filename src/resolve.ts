import { ModelPullError } from './errors.js';
import { type LockEntries, writeLock } from './lockfile.js';
import type { Identity, SourceContext } from './plan.js';
import type { ModelRef } from './refs/index.js';
import type { LockMode } from './settings/settings.js';
import { type Sources, sourceOf } from './sources/descriptor.js';

/** The lock file of a run, when one is configured: where, how it is obeyed, what it holds. */
export interface LockTarget {
  readonly path: string;
  /** The path as the user wrote it, for the commands that messages suggest. */
  readonly shown: string;
  readonly mode: LockMode;
  /** Undefined when the file does not exist. */
  readonly entries: LockEntries | undefined;
  /** How the run names its options: `lock-mode: update` or `--lock-mode update`. */
  readonly setting: (input: string, value: string) => string;
}

export interface Resolved {
  readonly identities: PromiseSettledResult<Identity>[];
  /** Per line: its identity is the lock file's entry (so a misfit is the file's fault). */
  readonly fromLock: readonly boolean[];
  /** The lock file's entries after this step (what was there, plus lines written now). */
  readonly entries?: LockEntries;
  /** The lock file was created or given new lines in this run. */
  readonly wrote?: { readonly created: boolean; readonly added: number };
}

/**
 * The identity of every line, settled one by one (a line that fails is that model's failure).
 * Without a lock file, each line's source looks it up. With one in `frozen` mode, every line
 * must be in it, or the run stops here, before any request, saying how to create or update it;
 * then nothing is looked up at all. In `update` mode the lines it lacks are looked up and
 * written into it (created when absent), provided every one of them resolved.
 */
export async function resolveIdentities(
  refs: readonly ModelRef[],
  sources: Sources,
  ctx: SourceContext,
  lockfile: LockTarget | undefined,
): Promise<Resolved> {
  if (!lockfile) {
    return { identities: await identifyLines(refs, sources, ctx), fromLock: refs.map(() => false) };
  }
  const entries = lockfile.entries ?? new Map<string, Identity>();
  const missing = refs.filter((ref) => !entries.has(ref.key));
  if (lockfile.mode === 'frozen' && (lockfile.entries === undefined || missing.length > 0)) {
    throw notCovered(lockfile, lockfile.entries === undefined ? refs : missing, refs.length);
  }
  const lookedUp = new Map<ModelRef, PromiseSettledResult<Identity>>();
  const results = await identifyLines(missing, sources, ctx);
  for (const [i, ref] of missing.entries()) lookedUp.set(ref, results[i]!);
  const identities = refs.map(
    (ref): PromiseSettledResult<Identity> =>
      lookedUp.get(ref) ?? { status: 'fulfilled', value: entries.get(ref.key)! },
  );
  const fromLock = refs.map((ref) => !lookedUp.has(ref));
  if (missing.length === 0 && lockfile.entries !== undefined) return { identities, fromLock, entries };
  const { written, entries: after } = await writeLines(lockfile.path, missing, results, lockfile.entries);
  if (!written) return { identities, fromLock, entries };
  const added = new Set(missing.map((ref) => ref.key)).size;
  return { identities, fromLock, entries: after, wrote: { created: lockfile.entries === undefined, added } };
}

/** Asks each line's source, all at once; one result per line, in line order. */
export function identifyLines(
  refs: readonly ModelRef[],
  sources: Sources,
  ctx: SourceContext,
): Promise<PromiseSettledResult<Identity>[]> {
  return Promise.allSettled(
    refs.map(async (ref) => {
      const identity = await sourceOf(sources, ref).identify(ref.ref, ctx);
      // The kind and line are the lock entry's key and check: a source must answer for its own.
      if (identity.source !== ref.kind || identity.ref !== ref.line)
        throw new Error(
          `the ${ref.kind} source answered "${ref.line}" with a ${identity.source} identity for "${identity.ref}"`,
        );
      return identity;
    }),
  );
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
  previous?: LockEntries,
): Promise<{ results: PromiseSettledResult<Identity>[]; written: boolean }> {
  const results = await identifyLines(refs, sources, ctx);
  const { written } = await writeLines(path, refs, results, previous);
  return { results, written };
}

async function writeLines(
  path: string,
  refs: readonly ModelRef[],
  results: readonly PromiseSettledResult<Identity>[],
  previous: LockEntries | undefined,
): Promise<{ written: boolean; entries?: LockEntries }> {
  if (results.some((r) => r.status === 'rejected')) return { written: false };
  const entries = new Map(previous ?? []);
  for (const [i, ref] of refs.entries())
    entries.set(ref.key, (results[i] as PromiseFulfilledResult<Identity>).value);
  await writeLock(path, entries);
  return { written: true, entries };
}

/**
 * The frozen lock's refusal: which lines it lacks, and the command that adds exactly those
 * (the lock command keeps the file's other lines), ready to paste.
 */
function notCovered(lockfile: LockTarget, lines: readonly ModelRef[], total: number): ModelPullError {
  const command = lockCommand(
    lockfile.shown,
    lines.map((r) => r.line),
  );
  const update = lockfile.setting('lock-mode', 'update');
  if (lockfile.entries === undefined) {
    return new ModelPullError(
      'ERR_LOCKFILE',
      `lock file ${lockfile.shown} does not exist (lock-mode is frozen, so nothing was pulled)`,
      { fix: `create it with \`${command}\` and commit it, or use ${update} to have this run write it` },
    );
  }
  const named = lines.map((r) => `"${r.line}"`).join(', ');
  return new ModelPullError(
    'ERR_LOCKFILE',
    `lock file ${lockfile.shown} does not cover ${lines.length} of ${total} lines: ${named} (lock-mode is frozen, so nothing was pulled)`,
    { fix: `add them with \`${command}\` and commit it, or use ${update} to have this run add them` },
  );
}

/** `model-pull lock --lockfile FILE LINE…`, each word quoted for a POSIX shell. */
export function lockCommand(file: string, lines: readonly string[]): string {
  return ['model-pull', 'lock', '--lockfile', file, ...new Set(lines)].map(shellWord).join(' ');
}

/** A word as a POSIX shell reads it back: bare when safe, else single-quoted. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
