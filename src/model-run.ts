import type { CacheClient, LookupResult, RestoreResult } from './cache/client.js';
import { cacheKey } from './cache/key.js';
import type { RestoreProgress } from './cache/restore.js';
import type { BlobResult } from './download/types.js';
import { describeError, isModelPullError, ModelPullError } from './errors.js';
import type { Identity, PlanEntry, SourceContext } from './plan.js';
import type { ModelRef } from './refs/index.js';
import type { Logger } from './report/logger.js';
import type { CacheState, ModelOutput, ModelReport } from './report/types.js';
import { lockCommand } from './resolve.js';
import { type Sources, sourceOf } from './sources/descriptor.js';

/** What every model of a run shares. */
export interface RunContext {
  readonly sources: Sources;
  readonly ctx: SourceContext;
  /** Undefined when the Actions cache is off for this run. */
  readonly cache: { readonly client: CacheClient; readonly keyPrefix: string } | undefined;
  readonly log: Logger;
  /** How files already on disk are trusted (a restore passes over the ones that verify). */
  readonly verify: 'full' | 'size';
}

/** How the engine's work ended, for every blob of the run (by target). */
export interface FetchOutcome {
  readonly results: ReadonlyMap<string, PromiseSettledResult<BlobResult>>;
  /** When each blob settled, on the run's clock. */
  readonly settledAt: ReadonlyMap<string, number>;
  readonly started: number;
}

/**
 * Which model a shared blob's bytes count for: a blob two lines share is fetched (or restored)
 * once, and its bytes count for the first line that lists it, so totals are real traffic.
 */
export interface BlobOwners {
  fetched(target: string): boolean;
  restored(target: string): boolean;
}

/**
 * One model through the pipeline: before the engine, `prepare` (plan, name the cache entry),
 * then `restore` from the Actions cache (it needs the plan's paths); after it, `finish` (count
 * the bytes, commit the layout, tell the cache state, save a missed entry, build the output).
 */
export class ModelRun {
  plan: PlanEntry | undefined;
  /** The cache named an entry for this model (restored in whole, in part, or refused). */
  restored = false;
  /** What the restore placed (verified) and what it refused. */
  restoreResult: RestoreResult | undefined;
  /** Why the model cannot go on (identify, plan or restore failed). */
  error: Error | undefined;
  /** The key of the model's cache entry, once planned with the cache on. */
  key: string | undefined;

  constructor(
    readonly ref: ModelRef,
    private readonly run: RunContext,
  ) {}

  /**
   * The identity came from the lock file and the source refused it as not naming this line
   * (`lock-mode: update` looks such lines up again).
   */
  get lockEntryRefused(): boolean {
    return this.fromLock && isModelPullError(this.error, 'ERR_LOCKFILE');
  }

  private fromLock = false;

  /** `lockPath`: the identity came from this lock file, so a misfit is the file's fault. */
  async prepare(identity: PromiseSettledResult<Identity>, lockPath: string | undefined): Promise<this> {
    if (identity.status === 'rejected') {
      this.error = asError(identity.reason);
      return this;
    }
    this.fromLock = lockPath !== undefined;
    try {
      this.plan = await sourceOf(this.run.sources, this.ref).plan(this.ref.ref, identity.value, this.run.ctx);
      const cache = this.run.cache;
      if (cache) this.key = cacheKey(cache.keyPrefix, this.plan.identity);
    } catch (error) {
      this.error =
        lockPath && isModelPullError(error, 'ERR_LOCKFILE')
          ? new ModelPullError('ERR_LOCKFILE', `lock file ${lockPath}: ${error.message}`, {
              cause: error,
              fix: `look the line up again with \`${lockCommand(lockPath, [this.ref.line])}\``,
            })
          : asError(error);
      this.plan = undefined;
    }
    return this;
  }

  /**
   * Whether the model's cache entry exists, nothing downloaded (for fail-on-cache-miss);
   * undefined when the model has none to ask about (it failed already, or the cache is off).
   */
  async lookup(): Promise<{ key: string; found: LookupResult } | undefined> {
    const plan = this.plan;
    const key = this.key;
    if (!plan || this.error || !key || !this.run.cache) return undefined;
    return { key, found: await this.run.cache.client.lookup({ key, paths: plan.cachePaths }) };
  }

  /**
   * The model's Actions cache entry, named by its content, restored onto the plan's paths;
   * files already in place and verified are kept, and when all are, no archive is fetched.
   */
  async restore(progress?: (model: ModelRun) => RestoreProgress): Promise<this> {
    const plan = this.plan;
    const cache = this.run.cache;
    if (!plan || this.error || !cache || !this.key) return this;
    this.restoreResult = await cache.client.restore({
      key: this.key,
      paths: plan.cachePaths,
      blobs: plan.blobs,
      verify: this.run.verify,
      ...(progress ? { progress: progress(this) } : {}),
    });
    this.restored = this.restoreResult.state !== 'miss' && this.restoreResult.state !== 'off';
    if (this.restored) {
      const present = this.restoreResult.present?.size ?? 0;
      const kept = present > 0 ? `, ${present} already in place` : '';
      this.run.log.info(
        `${this.ref.line}: restored ${this.restoreResult.restored.size} of ${plan.blobs.length} files from the Actions cache${kept} (${this.key})`,
      );
    }
    return this;
  }

  async finish(fetched: FetchOutcome, owns: BlobOwners): Promise<ModelReport> {
    const plan = this.plan;
    if (!plan || this.error) return this.failed(this.error, zeroTraffic);
    const results = plan.blobs.map((b) => fetched.results.get(b.target)!);
    const traffic = this.traffic(plan, results, fetched, owns);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) return this.failed(failed.reason, traffic);
    const done = results.map((r) => (r as PromiseFulfilledResult<BlobResult>).value);
    let files = plan.files;
    try {
      files = (await plan.commit())?.files ?? files;
    } catch (error) {
      return this.failed(error, traffic);
    }
    const cache = this.cacheState(done);
    this.warnRepaired(done);
    await this.save(plan, cache);
    const result = output(this.ref.line, { ...plan, files }, done, cache);
    return { ...this.base(), output: result, identity: plan.identity, ...traffic };
  }

  /** Bytes fetched and restored for this model, and how long its blobs took. */
  private traffic(
    plan: PlanEntry,
    results: readonly PromiseSettledResult<BlobResult>[],
    fetched: FetchOutcome,
    owns: BlobOwners,
  ): Traffic {
    const durationMs = Math.max(
      0,
      ...plan.blobs.map((b) => (fetched.settledAt.get(b.target) ?? fetched.started) - fetched.started),
    );
    let downloadedBytes = 0;
    let cachedBytes = 0;
    const from: Record<string, number> = {};
    for (const r of results) {
      if (r.status !== 'fulfilled') continue;
      if (owns.fetched(r.value.target)) {
        downloadedBytes += r.value.downloadedBytes;
        const host = r.value.host;
        if (host && r.value.downloadedBytes > 0) from[host] = (from[host] ?? 0) + r.value.downloadedBytes;
      }
      // A file the restore found in place came from the disk, not from the cache.
      const inPlace = this.restoreResult?.present?.has(r.value.target) === true;
      if (this.restored && r.value.reused && !inPlace && owns.restored(r.value.target))
        cachedBytes += r.value.size;
    }
    // Restored bytes count only for a model that ends in place (a failed one restored nothing usable).
    const anyFailed = results.some((r) => r.status === 'rejected');
    return {
      downloadedBytes,
      cachedBytes: anyFailed ? 0 : cachedBytes,
      durationMs,
      ...(Object.keys(from).length > 0 ? { from } : {}),
    };
  }

  /** `off` when nothing was looked up; `miss` only when the entry was looked up and not found. */
  private cacheState(done: readonly BlobResult[]): CacheState {
    if (!this.run.cache || !this.restoreResult || this.restoreResult.state === 'off') return 'off';
    if (!this.restored) return 'miss';
    // A refused member (the restore warned) or any file from the origin makes it partial.
    const fetched = done.some((r) => r.downloadedBytes > 0 || r.replaced);
    return this.restoreResult?.state === 'partial' || fetched ? 'partial' : 'hit';
  }

  /** Files that were on disk but did not verify were fetched again: worth a warning. */
  private warnRepaired(done: readonly BlobResult[]): void {
    const repaired = done.filter((r) => r.replaced).length;
    if (repaired === 0) return;
    const files = repaired === 1 ? '1 file' : `${repaired} files`;
    const were = repaired === 1 ? 'was' : 'were';
    this.run.log.warning(
      `${this.ref.line}: ${files} on disk failed verification and ${were} downloaded again`,
    );
  }

  /**
   * Only a miss is saved: a restored entry that needed repair keeps its key (entries are
   * immutable), and the repaired files are on disk for this run anyway. (The client also knows
   * an entry it found but could not read, and does not save that one again.)
   */
  private async save(plan: PlanEntry, cache: CacheState): Promise<void> {
    if (cache !== 'miss' || !this.key || !this.run.cache) return;
    const saved = await this.run.cache.client.save(plan.cachePaths, this.key);
    if (saved === 'saved') this.run.log.info(`${this.ref.line}: saved to the Actions cache (${this.key})`);
  }

  private base(): Pick<ModelReport, 'line' | 'source' | 'key'> {
    return { line: this.ref.line, source: this.ref.kind, ...(this.key ? { key: this.key } : {}) };
  }

  private failed(reason: unknown, traffic: Traffic): ModelReport {
    return { ...this.base(), error: reason === undefined ? undefined : asError(reason), ...traffic };
  }
}

type Traffic = Pick<ModelReport, 'downloadedBytes' | 'cachedBytes' | 'durationMs' | 'from'>;
const zeroTraffic: Traffic = { downloadedBytes: 0, cachedBytes: 0, durationMs: 0 };

/** The `models` output object; file sizes the plan did not know come from the engine. */
function output(line: string, plan: PlanEntry, done: readonly BlobResult[], cache: CacheState): ModelOutput {
  const sizes = new Map(done.map((r) => [r.target, r.size]));
  const files = plan.files.map((f) => (f.size > 0 ? f : { ...f, size: sizes.get(f.path) ?? f.size }));
  const identity = plan.identity;
  return {
    ref: line,
    source: identity.source,
    name: identity.name,
    digest: identity.pin,
    path: plan.path,
    size: plan.size > 0 ? plan.size : files.reduce((s, f) => s + f.size, 0),
    cache,
    files,
  };
}

export function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(describeError(reason));
}
