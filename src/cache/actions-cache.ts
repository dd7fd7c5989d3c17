import { describeError, isModelPullError } from '../errors.js';
import type { HttpClient } from '../http/client.js';
import type { RetryPolicy } from '../http/retry.js';
import type { Logger } from '../report/logger.js';
import { type CoreLine, CoreOutputCapture } from './capture.js';
import {
  type CacheClient,
  type LookupResult,
  notLookedUp,
  type RestoreEntry,
  type RestoreResult,
  type SaveResult,
} from './client.js';
import { type Problem, saveProblem } from './outcome.js';
import { findEntry, type RestoreDeps, restoreEntry } from './restore.js';
import { type CacheServiceConfig, type FoundEntry, savedPathList } from './service.js';

// Kept apart from client.ts so the CLI, which never uses the Actions cache, does not load
// @actions/cache and the Azure SDK behind it; the action loads them only to save, after the pulls
// (the action's bundle started at 86 MiB peak RSS with them, 70 MiB without).

export interface ActionsCacheOptions {
  readonly log: Logger;
  /** The runner's cache service; undefined when the job has none. */
  readonly service: CacheServiceConfig | undefined;
  /** The run's configured client (proxy, ca-cert): lookups and archive downloads go through it. */
  readonly http: HttpClient;
  readonly retry: RetryPolicy;
  /** Parallel ranges per archive. */
  readonly connections: number;
  readonly signal?: AbortSignal;
}

/**
 * The real client. Restoring is ours (restore.ts): the entry is looked up with the key and
 * version @actions/cache saves it under and read member by member, because the library's own
 * restore runs `tar -P`, which writes wherever the archive says. Saving is @actions/cache's
 * saveCache (it only reads our files), reporting through `log`, one warning per kind of problem.
 */
export function createActionsCache(options: ActionsCacheOptions): ActionsCacheClient {
  // @actions/core writes to this process's stdout; the capture reads the library's reports there.
  return new ActionsCache(options, new CoreOutputCapture(process.stdout));
}

/** The service's 5xx are retried a few times with short waits; a cache is not worth a long wait. */
const SERVICE_RETRY_CAP = { retries: 3, baseDelayMs: 1000, maxDelayMs: 5000, maxRetryAfterMs: 10_000 };

type Direction = 'restore' | 'save';

export interface ActionsCacheClient extends CacheClient {
  /** Entries being restored now: a stop keeps only the files they committed. */
  readonly restoring: number;
}

class ActionsCache implements ActionsCacheClient {
  restoring = 0;
  readonly #options: ActionsCacheOptions;
  readonly #log: Logger;
  readonly #capture: CoreOutputCapture;
  /** Why a direction is off for the rest of the run; set once, never cleared. */
  readonly #off: Partial<Record<Direction, string>> = {};
  readonly #warned = new Set<string>();
  /** Keys the service found but whose archive could not be restored: entries are immutable. */
  readonly #found = new Set<string>();
  /** Answers of lookup(), by key and paths, for the restore that follows. */
  readonly #lookups = new Map<string, Promise<FoundEntry | undefined>>();
  #checked = false;

  constructor(options: ActionsCacheOptions, capture: CoreOutputCapture) {
    this.#options = options;
    this.#log = options.log;
    this.#capture = capture;
  }

  async lookup(entry: Pick<RestoreEntry, 'key' | 'paths'>): Promise<LookupResult> {
    const deps = this.#readable(entry.key);
    if (!deps) return 'off';
    const found = findEntry(entry, deps);
    const result = await found.catch((error: unknown) => this.#lookupFailed(entry.key, error));
    if (result === 'off') return 'off';
    // The restore that follows uses this answer instead of asking again.
    this.#lookups.set(lookupId(entry), found);
    return result ? 'found' : 'missing';
  }

  async restore(entry: RestoreEntry): Promise<RestoreResult> {
    const deps = this.#readable(entry.key);
    if (!deps) return notLookedUp(entry);
    let result: RestoreResult;
    this.restoring++;
    try {
      const asked = this.#lookups.get(lookupId(entry));
      this.#lookups.delete(lookupId(entry));
      result = await restoreEntry(entry, deps, asked ?? findEntry(entry, deps));
    } catch (error) {
      // Only the lookup throws: the service itself is failing (or refuses this job).
      if (deps.signal?.aborted) return notLookedUp(entry);
      this.#lookupFailed(entry.key, error);
      return notLookedUp(entry);
    } finally {
      this.restoring--;
    }
    // Entries are immutable: one found here is never saved again, whatever it held.
    if (result.found) this.#found.add(entry.key);
    if (result.refused !== undefined) {
      // Refused members mean someone wrote this entry to do harm: always said, once per entry.
      const failure = result.failure !== undefined ? `; then ${result.failure}` : '';
      this.#log.warning(
        `Cache entry ${entry.key}: ${result.refused}${failure}; ` +
          `${result.missing} of ${entry.blobs.length} files are downloaded from the origin instead.`,
      );
    } else if (result.failure !== undefined && deps.signal?.aborted) {
      // Stopped (Ctrl-C, a cancelled job): not a problem of the entry, and nothing is downloaded.
      const placed = result.restored.size + (result.present?.size ?? 0);
      this.#log.info(
        `Cache entry ${entry.key}: stopped with ${placed} of ${entry.blobs.length} files in place (verified; they are kept). ` +
          'The next run fetches the archive again from its start for the others.',
      );
    } else if (result.failure !== undefined) {
      this.#report('restore', entry.key, { kind: 'entry', reason: result.failure });
    }
    return result;
  }

  /** What a lookup needs, when reads are possible in this run (else why not is said once). */
  #readable(key: string): RestoreDeps | undefined {
    const service = this.#options.service;
    if (!this.#usable('restore') || !service) return undefined;
    if (!service.readable) {
      this.#report('restore', key, {
        kind: 'disabled',
        reason: `the effective cache-mode '${service.mode}' does not permit reads`,
      });
      return undefined;
    }
    return { ...this.#options, service, retry: { ...this.#options.retry, ...SERVICE_RETRY_CAP } };
  }

  /** The service itself is failing (or refuses this job): said once, and it is off from now on. */
  #lookupFailed(key: string, error: unknown): 'off' {
    const reason = describeError(error);
    const denied = /cache read denied:/.test(reason);
    this.#report('restore', key, { kind: denied ? 'disabled' : 'service', reason });
    if (!isModelPullError(error)) this.#log.debug(`cache ${key}: ${String(error)}`);
    return 'off';
  }

  async save(paths: readonly string[], key: string): Promise<SaveResult> {
    if (!this.#usable('save')) return 'unavailable';
    if (this.#found.has(key)) {
      // Saving would archive and upload the whole model only to meet a 409 and a second warning.
      this.#log.info(`Cache entry ${key} exists (its restore failed above); not saved again.`);
      return 'exists';
    }
    const result = await this.#capture.run(async () =>
      (await import('@actions/cache')).saveCache(savedPathList(paths), key),
    );
    this.#replay(key, result.lines);
    const problem = saveProblem(result);
    if (problem === undefined) return 'saved';
    this.#report('save', key, problem);
    if (problem.kind === 'conflict') return 'exists';
    return problem.kind === 'disabled' ? 'unavailable' : 'failed';
  }

  /** Whether the job has a cache service (the settings module read the runner's variables). */
  #usable(direction: Direction): boolean {
    if (!this.#checked) {
      this.#checked = true;
      if (!this.#options.service) {
        const reason = 'no Actions cache service is configured for this job';
        this.#off.restore = reason;
        this.#off.save = reason;
        this.#warnOnce(
          'service',
          `Actions cache unavailable: ${reason}; models are downloaded and not cached.`,
        );
      }
    }
    return this.#off[direction] === undefined;
  }

  #report(direction: Direction, key: string, problem: NonNullable<Problem>): void {
    switch (problem.kind) {
      case 'service':
        this.#off.restore ??= problem.reason;
        this.#off.save ??= problem.reason;
        this.#warnOnce(
          'service',
          `Actions cache service failing (${problem.reason}); continuing without the cache for the rest of this run.`,
        );
        return;
      case 'disabled':
        this.#off[direction] ??= problem.reason;
        // A policy of the runner, not a fault: say it once, without an annotation.
        if (!this.#warned.has(`disabled-${direction}`)) {
          this.#warned.add(`disabled-${direction}`);
          this.#log.info(`Actions cache ${direction} is not allowed in this run (${problem.reason}).`);
        }
        return;
      case 'conflict':
        this.#warnOnce(
          'conflict',
          `Cache entry ${key} is already saved or being saved by another job; not saved here.`,
        );
        return;
      case 'entry':
        this.#warnOnce(
          `entry-${direction}`,
          direction === 'restore'
            ? `Could not restore cache entry ${key} (${problem.reason}); its files are downloaded instead.`
            : `Could not save cache entry ${key} (${problem.reason}).`,
        );
    }
  }

  /** The first problem of a kind is a warning; later ones are only logged, so a run warns once. */
  #warnOnce(kind: string, message: string): void {
    if (this.#warned.has(kind)) {
      this.#log.info(message);
      return;
    }
    this.#warned.add(kind);
    this.#log.warning(message);
  }

  /** Everything the library said stays available in debug output, tagged with the entry. */
  #replay(key: string, lines: readonly CoreLine[]): void {
    for (const line of lines) this.#log.debug(`cache ${key}: ${line.command ?? 'info'}: ${line.message}`);
  }
}

/** One entry: its key and the path list its version hashes. */
function lookupId(entry: Pick<RestoreEntry, 'key' | 'paths'>): string {
  return [entry.key, ...savedPathList(entry.paths)].join('\0');
}
