import type { CacheClient, RestoreResult, SaveResult } from './cache/client.js';
import type { RestoreProgress } from './cache/restore.js';
import { type Clock, systemClock } from './clock.js';
import { Inputs } from './constants.js';
import { fetchBlobsSettled, reusedResult } from './download/engine.js';
import { ProgressTracker } from './download/progress.js';
import type { BlobResult, ProgressListener } from './download/types.js';
import { ModelPullError } from './errors.js';
import { HttpClient } from './http/client.js';
import { describeRetry, type RetryEvent, type RetryListener } from './http/retry.js';
import { type LockEntries, readLockEntries } from './lockfile.js';
import { type BlobOwners, type FetchOutcome, ModelRun, type RunContext } from './model-run.js';
import type { SourceContext } from './plan.js';
import { parseLines } from './refs/index.js';
import { formatBytes } from './report/format.js';
import type { Logger } from './report/logger.js';
import { type ModelListener, ModelPhases } from './report/phases.js';
import type { ModelReport, PullReport } from './report/types.js';
import { type LockTarget, lockLines, resolveIdentities } from './resolve.js';
import type { Settings } from './settings/settings.js';
import { checkSourceList, createSources, phaseWords, type SourceList } from './sources/descriptor.js';
import { checkingStores } from './stores.js';

export interface PullDeps {
  /** The kinds of line this run accepts (the action and the CLI pass DEFAULT_SOURCES). */
  readonly sources: SourceList;
  readonly log: Logger;
  readonly cache: CacheClient;
  readonly onProgress?: ProgressListener;
  /** Hears every retry (host, cause, attempt, wait); default: an info line on `log`. */
  readonly onRetry?: RetryListener;
  /** Hears each model's phases (resolving … done), and each failure as it happens. */
  readonly onModel?: ModelListener;
  readonly signal?: AbortSignal;
  /** The wall clock unless a test gives its own (retry waits, token expiry, durations). */
  readonly clock?: Clock;
}

/**
 * The whole pipeline for a list of model lines: parse (every line, before any request),
 * identify (or read the lock), plan, restore from the Actions cache, fetch what is missing,
 * commit the layouts, save new cache entries. One model's failure does not stop the others;
 * the report says which failed and why.
 */
export async function pull(settings: Settings, deps: PullDeps): Promise<PullReport> {
  checkSourceList(deps.sources);
  const lockfile = await lockTarget(settings, deps.sources);
  const refs = parseLines(linesOf(settings, lockfile), deps.sources);
  const http = new HttpClient(settings.http);
  try {
    const clock = deps.clock ?? systemClock;
    const onRetry = deps.onRetry ?? ((event: RetryEvent) => deps.log.info(describeRetry(event)));
    const retry = { ...settings.retry, onRetry };
    const ctx: SourceContext = { http, retry, log: deps.log, clock, signal: deps.signal };
    const phases = new ModelPhases(deps.onModel, (ref) => phaseWords(deps.sources, ref.kind));
    const created = createSources(deps.sources, settings);
    const sources = phases.watching(checkingStores(created, deps.sources, settings, refs), refs);
    const started = clock.now();
    const { identities, fromLock, entries, wrote } = await resolveIdentities(refs, sources, ctx, lockfile);
    if (wrote) {
      const lines = `${wrote.added} line${wrote.added === 1 ? '' : 's'}`;
      deps.log.info(
        wrote.created
          ? `wrote lock file ${lockfile!.shown} (${lines})`
          : `added ${lines} to lock file ${lockfile!.shown}`,
      );
    }
    const run: RunContext = {
      sources,
      ctx,
      log: deps.log,
      cache: settings.cache
        ? { client: oncePerEntry(deps.cache), keyPrefix: settings.cacheKeyPrefix }
        : undefined,
      verify: settings.verify,
    };
    let models = await Promise.all(
      refs.map((ref, i) =>
        new ModelRun(ref, run).prepare(identities[i]!, fromLock[i] ? lockfile?.shown : undefined),
      ),
    );
    if (lockfile?.mode === 'update' && entries) models = await refreshRefused(models, lockfile, entries, run);
    // A model that could not be planned is reported now, not after the others' downloads.
    for (const model of models) if (model.error) phases.failed(model.ref.line, model.error);
    if (settings.failOnCacheMiss) await requireCacheEntries(models, settings);
    const restoring = restoreProgress(deps.onProgress, clock, phases);
    try {
      await Promise.all(models.map((m) => m.restore(restoring.of)));
    } finally {
      restoring.stop();
    }
    if (settings.failOnCacheMiss) requireRestored(models, settings);
    const fetched = await fetchAll(models, settings, ctx, deps, started, phases);
    const reports: ModelReport[] = [];
    for (const [model, owns] of ownership(models)) {
      const report = await model.finish(fetched, owns);
      phases.finished(report);
      reports.push(report);
    }
    return summarise(reports);
  } finally {
    await http.close();
  }
}

/**
 * `lock-mode: update`: lines whose lock entry their source refused (edited by hand, copied from
 * another line) are looked up again and prepared with the fresh identity; the file takes the
 * new entries when all of them resolved.
 */
async function refreshRefused(
  models: readonly ModelRun[],
  lockfile: LockTarget,
  entries: LockEntries,
  run: RunContext,
): Promise<ModelRun[]> {
  const refused = models.filter((m) => m.lockEntryRefused);
  if (refused.length === 0) return [...models];
  const refs = refused.map((m) => m.ref);
  const { results, written } = await lockLines(lockfile.path, refs, run.sources, run.ctx, entries);
  if (written) run.log.info(`refreshed ${refs.length} line(s) of lock file ${lockfile.shown}`);
  const fresh = new Map(
    await Promise.all(
      refused.map(
        async (m, i) => [m, await new ModelRun(m.ref, run).prepare(results[i]!, undefined)] as const,
      ),
    ),
  );
  return models.map((m) => fresh.get(m) ?? m);
}

/**
 * fail-on-cache-miss: every model's entry is looked up first, downloading nothing; when any has
 * none (or the cache cannot be asked), the run stops before anything is restored or fetched,
 * naming those models and their keys. Models that already failed keep their own error.
 */
async function requireCacheEntries(models: readonly ModelRun[], settings: Settings): Promise<void> {
  const answers = await Promise.all(
    models.map(async (m) => ({ line: m.ref.line, answer: await m.lookup() })),
  );
  const asked = answers.filter((a) => a.answer !== undefined);
  const missing = asked.filter((a) => a.answer!.found !== 'found');
  if (missing.length === 0) return;
  const listed = missing.map((a) => `"${a.line}" (${a.answer!.key})`).join(', ');
  const fix = `run the job that pulls and saves them first (a job this one needs:), or set ${settings.settingText(Inputs.FailOnCacheMiss, 'false')}`;
  if (missing.every((a) => a.answer!.found === 'off')) {
    throw new ModelPullError(
      'ERR_CACHE_MISS',
      `the Actions cache could not be asked for ${missing.length} of ${asked.length} models (see the warning above), and fail-on-cache-miss is true: ${listed}`,
      {
        fix: `make the cache service reachable, or set ${settings.settingText(Inputs.FailOnCacheMiss, 'false')}`,
      },
    );
  }
  throw new ModelPullError(
    'ERR_CACHE_MISS',
    `${missing.length} of ${asked.length} models have no Actions cache entry, and fail-on-cache-miss is true: ${listed}`,
    { fix },
  );
}

/**
 * fail-on-cache-miss, after the restores: an entry that was there but could not supply every
 * file (unreadable, refused members) would send the engine to the origin; stop instead.
 */
function requireRestored(models: readonly ModelRun[], settings: Settings): void {
  const short = models.flatMap((m) => {
    const result = m.restoreResult;
    if (!result || !m.key || !m.plan || result.missing === 0) return [];
    return [`"${m.ref.line}" (${m.key}: ${result.missing} of ${m.plan.blobs.length} files)`];
  });
  if (short.length === 0) return;
  throw new ModelPullError(
    'ERR_CACHE_MISS',
    `${short.length} of ${models.length} models could not be restored in full from their Actions cache entries (see the warning above), and fail-on-cache-miss is true: ${short.join(', ')}`,
    {
      fix: `run the job that saves them again, or set ${settings.settingText(Inputs.FailOnCacheMiss, 'false')}`,
    },
  );
}

/** The run's lock file, read and keyed by canonical line, when one is configured. */
async function lockTarget(settings: Settings, sources: SourceList): Promise<LockTarget | undefined> {
  const config = settings.lockfile;
  if (!config) return undefined;
  const entries = await readLockEntries(config.path, config.shown, sources);
  return { ...config, entries, setting: settings.settingText };
}

/** The lines given, or with none (`pull --lockfile FILE`), every line of the lock, like `npm ci`. */
function linesOf(settings: Settings, lockfile: LockTarget | undefined): readonly string[] {
  if (settings.lines.length > 0) return settings.lines;
  if (!lockfile) throw new ModelPullError('ERR_BAD_INPUT', 'no model line given');
  if (!lockfile.entries) {
    throw new ModelPullError(
      'ERR_LOCKFILE',
      `lock file ${lockfile.shown} does not exist, and no model line was given`,
      {
        fix: `create it with \`model-pull lock --lockfile ${lockfile.shown} LINE...\``,
      },
    );
  }
  if (lockfile.entries.size === 0) {
    throw new ModelPullError(
      'ERR_LOCKFILE',
      `lock file ${lockfile.shown} holds no model line, and none was given`,
    );
  }
  return [...lockfile.entries.keys()];
}

/** Every planned blob of every model through the engine at once; a blob's failure is its own. */
async function fetchAll(
  models: readonly ModelRun[],
  settings: Settings,
  ctx: SourceContext,
  deps: PullDeps,
  started: number,
  phases: ModelPhases,
): Promise<FetchOutcome> {
  const blobs = models.flatMap((m) => m.plan?.blobs ?? []);
  // Files a cache restore placed were verified as they were written, and the ones it found in
  // place were verified before: the engine skips them.
  const restored = new Map(
    models.flatMap((m) => [...(m.restoreResult?.restored ?? []), ...(m.restoreResult?.present ?? [])]),
  );
  const pending = blobs.filter((b) => !restored.has(b.target));
  const settledAt = new Map<string, number>();
  const told = phases.engineEvents(models, deps.onProgress);
  const outcomes = await fetchBlobsSettled(pending, {
    http: ctx.http,
    concurrency: settings.concurrency,
    connections: settings.connections,
    verify: settings.verify,
    retry: ctx.retry,
    clock: ctx.clock,
    log: deps.log,
    signal: deps.signal,
    onProgress: told.onProgress,
    onFetchStart: told.onFetchStart,
    onSettled: (blob, outcome) => {
      settledAt.set(blob.target, ctx.clock.now());
      told.onSettled(blob, outcome);
    },
  }).catch((error: unknown) =>
    pending.map((): PromiseSettledResult<BlobResult> => ({ status: 'rejected', reason: error })),
  );
  const results = new Map(pending.map((b, i) => [b.target, outcomes[i]!]));
  for (const blob of blobs) {
    const size = restored.get(blob.target);
    if (size === undefined) continue;
    results.set(blob.target, { status: 'fulfilled', value: reusedResult(blob, size) });
  }
  return { results, settledAt, started };
}

/**
 * The restores' progress as the engine's is shown (a bar, or log lines, per archive being
 * fetched), and each model's `restoring` phase as its archive starts.
 */
function restoreProgress(
  listener: ProgressListener | undefined,
  clock: Clock,
  phases: ModelPhases,
): { of: (model: ModelRun) => RestoreProgress; stop: () => void } {
  const tracker = new ProgressTracker(listener, 1000, clock);
  return {
    of: (model) => {
      let entry: ReturnType<ProgressTracker['add']> | undefined;
      return {
        start: (size) => {
          const of = size !== undefined ? `, ${formatBytes(size)}` : '';
          phases.enter(model.ref, 'restoring', `restoring from the Actions cache${of}`);
          entry = tracker.add(`${model.ref.line} (Actions cache)`, `actions-cache:${model.key}`, size);
          tracker.start(entry);
          tracker.startAt(entry, 0);
        },
        size: (size) => {
          if (entry) entry.total = size;
        },
        bytes: (n) => {
          if (entry) entry.done += n;
        },
        end: (ok) => {
          if (!entry) return;
          if (ok) tracker.finish(entry, entry.total ?? entry.done);
          else Object.assign(entry, { state: 'failed', error: 'not restored; its files are downloaded' });
        },
      };
    },
    stop: () => tracker.stop(),
  };
}

/**
 * Each model with the blobs its bytes count for: a blob two lines share is fetched (or
 * restored) once, and counts for the first line that lists it (among the restored lines, for
 * restored bytes), so totals are real traffic.
 */
function ownership(models: readonly ModelRun[]): [ModelRun, BlobOwners][] {
  const fetchedBy = firstLister(models, () => true);
  const restoredBy = firstLister(models, (m) => m.restored);
  return models.map((model) => [
    model,
    {
      fetched: (target) => fetchedBy.get(target) === model,
      restored: (target) => restoredBy.get(target) === model,
    },
  ]);
}

/** For each blob target, the first model (in line order) that lists it and passes `filter`. */
function firstLister(models: readonly ModelRun[], filter: (m: ModelRun) => boolean): Map<string, ModelRun> {
  const owners = new Map<string, ModelRun>();
  for (const model of models) {
    if (!filter(model)) continue;
    for (const blob of model.plan?.blobs ?? []) if (!owners.has(blob.target)) owners.set(blob.target, model);
  }
  return owners;
}

function summarise(reports: readonly ModelReport[]): PullReport {
  return {
    models: reports,
    downloadedBytes: reports.reduce((sum, r) => sum + r.downloadedBytes, 0),
    cachedBytes: reports.reduce((sum, r) => sum + r.cachedBytes, 0),
    cacheHit: reports.every((r) => r.output?.cache === 'hit'),
    ok: reports.every((r) => r.output !== undefined),
  };
}

/**
 * One restore and one save per entry (key and path list) in a run: two lines naming the same
 * content would otherwise extract one archive twice at once and meet their own reserve conflict.
 */
function oncePerEntry(cache: CacheClient): CacheClient {
  const restores = new Map<string, Promise<RestoreResult>>();
  const saves = new Map<string, Promise<SaveResult>>();
  const id = (paths: readonly string[], key: string) => [key, ...[...paths].sort()].join('\0');
  const once = <T>(calls: Map<string, Promise<T>>, entry: string, call: () => Promise<T>): Promise<T> => {
    let pending = calls.get(entry);
    if (!pending) {
      pending = call();
      calls.set(entry, pending);
    }
    return pending;
  };
  return {
    restore: (entry) => once(restores, id(entry.paths, entry.key), () => cache.restore(entry)),
    save: (paths, key) => once(saves, id(paths, key), () => cache.save(paths, key)),
    lookup: (entry) => cache.lookup(entry),
  };
}
