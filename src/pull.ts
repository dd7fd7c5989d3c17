import type { CacheClient, SaveResult } from './cache/client.js';
import { cacheKey } from './cache/key.js';
import { type Clock, systemClock } from './clock.js';
import { fetchBlobsSettled } from './download/engine.js';
import type { BlobResult, ProgressListener } from './download/types.js';
import { describeError, isModelPullError, ModelPullError } from './errors.js';
import { HttpClient } from './http/client.js';
import { lockedIdentity, readLock, writeLock } from './lock/lockfile.js';
import type { Identity, ModelFile, PlanEntry, Source, SourceContext, SourceKind } from './plan.js';
import { type ModelRef, parseLines } from './refs/index.js';
import type { Logger } from './report/logger.js';
import type { Settings } from './settings/settings.js';
import { checkSourceList, createSources, type SourceList } from './sources/descriptor.js';

/** The run's source instances, by kind. */
export type Sources = ReadonlyMap<SourceKind, Source<unknown>>;

export type CacheState = 'hit' | 'miss' | 'partial' | 'off';

/** One object of the `models` output, as interface.md specifies it. */
export interface ModelOutput {
  readonly ref: string;
  readonly source: Identity['source'];
  readonly name: string;
  readonly digest: string;
  readonly path: string;
  readonly size: number;
  readonly cache: CacheState;
  readonly files: readonly ModelFile[];
}

export interface ModelReport {
  readonly line: string;
  readonly source: Identity['source'];
  /** Present when the model is in place and verified. */
  readonly output?: ModelOutput;
  readonly error?: ModelPullError | Error;
  readonly downloadedBytes: number;
  readonly cachedBytes: number;
  readonly durationMs: number;
}

export interface PullReport {
  readonly models: readonly ModelReport[];
  readonly downloadedBytes: number;
  readonly cachedBytes: number;
  /** True when every model came from the cache with no download. */
  readonly cacheHit: boolean;
  readonly ok: boolean;
}

export interface PullDeps {
  /** The kinds of line this run accepts (the action and the CLI pass DEFAULT_SOURCES). */
  readonly sources: SourceList;
  readonly log: Logger;
  readonly cache: CacheClient;
  readonly onProgress?: ProgressListener;
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
  const refs = parseLines(settings.lines, deps.sources);
  const lock = settings.lockfile ? await readLock(settings.lockfile) : undefined;
  const http = new HttpClient(settings.http);
  try {
    const clock = deps.clock ?? systemClock;
    const ctx: SourceContext = { http, retry: settings.retry, log: deps.log, clock, signal: deps.signal };
    const sources = createSources(deps.sources, settings);
    const started = clock.now();
    const identities = await Promise.allSettled(
      // async: a line the lock does not cover rejects its own promise instead of throwing out of
      // map(), so it fails as that model's error and the other lines still land.
      refs.map(async (ref) =>
        lock && settings.lockfile
          ? lockedIdentity(lock, settings.lockfile, ref.line, ref.kind)
          : identifyRef(sources, ref, ctx),
      ),
    );
    if (settings.lockfile && !lock && identities.every((i) => i.status === 'fulfilled')) {
      await writeLock(
        settings.lockfile,
        identities.map((i) => (i as PromiseFulfilledResult<Identity>).value),
      );
      deps.log.info(`wrote lock file ${settings.lockfile}`);
    }
    const runDeps = { ...deps, cache: oncePerEntry(deps.cache) };
    const models = await Promise.all(
      refs.map(async (ref, i) =>
        new ModelRun(ref, identities[i]!, sources, ctx, settings, runDeps).prepare(
          lock ? settings.lockfile : undefined,
        ),
      ),
    );
    const blobs = models.flatMap((m) => m.plan?.blobs ?? []);
    const settledAt = new Map<string, number>();
    const outcomes = await fetchBlobsSettled(blobs, {
      http,
      concurrency: settings.concurrency,
      connections: settings.connections,
      verify: settings.verify,
      retry: settings.retry,
      signal: deps.signal,
      onProgress: deps.onProgress,
      onSettled: (blob) => settledAt.set(blob.target, clock.now()),
    }).catch((error: unknown) => blobs.map(() => ({ status: 'rejected' as const, reason: error })));
    const byTarget = new Map(blobs.map((b, i) => [b.target, outcomes[i]!]));
    // A blob two lines share is fetched (or restored) once; its bytes count for the first line
    // that lists it (among the restored lines, for restored bytes), so totals are real traffic.
    const fetchedBy = firstLister(models, () => true);
    const restoredBy = firstLister(models, (m) => m.restored);
    const reports: ModelReport[] = [];
    for (const model of models) {
      const owns = {
        fetched: (target: string) => fetchedBy.get(target) === model,
        restored: (target: string) => restoredBy.get(target) === model,
      };
      reports.push(await model.finish(byTarget, settledAt, started, owns));
    }
    return {
      models: reports,
      downloadedBytes: reports.reduce((sum, r) => sum + r.downloadedBytes, 0),
      cachedBytes: reports.reduce((sum, r) => sum + r.cachedBytes, 0),
      cacheHit: reports.every((r) => r.output?.cache === 'hit'),
      ok: reports.every((r) => r.output !== undefined),
    };
  } finally {
    await http.close();
  }
}

export function identifyRef(sources: Sources, ref: ModelRef, ctx: SourceContext): Promise<Identity> {
  return sourceOf(sources, ref).identify(ref.ref, ctx);
}

function sourceOf(sources: Sources, ref: ModelRef): Source<unknown> {
  const source = sources.get(ref.kind);
  // parseLines only returns kinds of the same list, so this is a programming error.
  if (!source) throw new Error(`no source of kind ${ref.kind} for "${ref.line}"`);
  return source;
}

/** One model through the pipeline: plan and cache restore before the engine, commit and save after. */
class ModelRun {
  plan: PlanEntry | undefined;
  private error: Error | undefined;
  private key: string | undefined;
  restored = false;

  constructor(
    private readonly ref: ModelRef,
    private readonly identity: PromiseSettledResult<Identity>,
    private readonly sources: Sources,
    private readonly ctx: SourceContext,
    private readonly settings: Settings,
    private readonly deps: PullDeps,
  ) {}

  /** `lockPath`: the identity came from this lock file, so a misfit is the file's fault. */
  async prepare(lockPath: string | undefined): Promise<this> {
    if (this.identity.status === 'rejected') {
      this.error = asError(this.identity.reason);
      return this;
    }
    const identity = this.identity.value;
    try {
      this.plan = await sourceOf(this.sources, this.ref).plan(this.ref.ref, identity, this.ctx);
      if (this.settings.cache) {
        this.key = cacheKey(this.settings.cacheKeyPrefix, identity);
        this.restored = await this.deps.cache.restore(this.plan.cachePaths, this.key);
        if (this.restored)
          this.deps.log.info(`${this.ref.line}: restored from the Actions cache (${this.key})`);
      }
    } catch (error) {
      this.error =
        lockPath && isModelPullError(error, 'ERR_LOCKFILE')
          ? new ModelPullError('ERR_LOCKFILE', `lock file ${lockPath}: ${error.message}`, { cause: error })
          : asError(error);
      this.plan = undefined;
    }
    return this;
  }

  async finish(
    outcomes: ReadonlyMap<string, PromiseSettledResult<BlobResult>>,
    settledAt: ReadonlyMap<string, number>,
    started: number,
    owns: { fetched(target: string): boolean; restored(target: string): boolean },
  ): Promise<ModelReport> {
    const plan = this.plan;
    const line = this.ref.line;
    const source = this.ref.kind;
    if (!plan || this.error)
      return { line, source, error: this.error, downloadedBytes: 0, cachedBytes: 0, durationMs: 0 };
    const results = plan.blobs.map((b) => outcomes.get(b.target)!);
    const durationMs = Math.max(0, ...plan.blobs.map((b) => (settledAt.get(b.target) ?? started) - started));
    const downloadedBytes = results.reduce(
      (s, r, i) =>
        s + (r.status === 'fulfilled' && owns.fetched(plan.blobs[i]!.target) ? r.value.downloadedBytes : 0),
      0,
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) {
      return { line, source, error: asError(failed.reason), downloadedBytes, cachedBytes: 0, durationMs };
    }
    const done = results.map((r) => (r as PromiseFulfilledResult<BlobResult>).value);
    const cachedBytes = this.restored
      ? done.filter((r) => r.reused && owns.restored(r.target)).reduce((s, r) => s + r.size, 0)
      : 0;
    try {
      await plan.commit();
    } catch (error) {
      return { line, source, error: asError(error), downloadedBytes, cachedBytes, durationMs };
    }
    const cache: CacheState = !this.settings.cache
      ? 'off'
      : !this.restored
        ? 'miss'
        : done.some((r) => r.downloadedBytes > 0 || r.replaced)
          ? 'partial'
          : 'hit';
    const repaired = done.filter((r) => r.replaced).length;
    if (repaired > 0 && this.key) {
      this.deps.log.warning(
        `${line}: ${repaired} file(s) restored from the Actions cache entry ${this.key} failed verification and were downloaded again`,
      );
    }
    // Only a miss is saved: a restored entry that needed repair keeps its key (entries are
    // immutable), and the repaired files are on disk for this run anyway.
    if (cache === 'miss' && this.key) {
      const saved = await this.deps.cache.save(plan.cachePaths, this.key);
      if (saved === 'saved') this.deps.log.info(`${line}: saved to the Actions cache (${this.key})`);
    }
    const sizes = new Map(done.map((r) => [r.target, r.size]));
    const files = plan.files.map((f) => (f.size > 0 ? f : { ...f, size: sizes.get(f.path) ?? f.size }));
    const identity = plan.identity;
    return {
      line,
      source,
      output: {
        ref: line,
        source: identity.source,
        name: identity.name,
        digest: identity.digest,
        path: plan.path,
        size: plan.size > 0 ? plan.size : files.reduce((s, f) => s + f.size, 0),
        cache,
        files,
      },
      downloadedBytes,
      cachedBytes,
      durationMs,
    };
  }
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

/**
 * One restore and one save per entry (key and path list) in a run: two lines naming the same
 * content would otherwise extract one archive twice at once and meet their own reserve conflict.
 */
function oncePerEntry(cache: CacheClient): CacheClient {
  const restores = new Map<string, Promise<boolean>>();
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
    restore: (paths, key) => once(restores, id(paths, key), () => cache.restore(paths, key)),
    save: (paths, key) => once(saves, id(paths, key), () => cache.save(paths, key)),
  };
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(describeError(reason));
}
