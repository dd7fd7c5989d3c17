import * as cache from '@actions/cache';
import type { Logger } from '../report/logger.js';
import { type CoreLine, CoreOutputCapture } from './capture.js';
import type { CacheClient, SaveResult } from './client.js';
import { type Problem, restoreProblem, saveProblem } from './outcome.js';

// Kept apart from client.ts so the CLI, which never uses the Actions cache, does not load
// @actions/cache and the Azure SDK behind it (tens of MiB of resident memory).

/** The real client: @actions/cache 6, reporting through `log`, one warning per kind of problem. */
export function createActionsCache(log: Logger): CacheClient {
  // @actions/core writes to this process's stdout; the capture reads the library's reports there.
  return new ActionsCache(log, new CoreOutputCapture(process.stdout));
}

type Direction = 'restore' | 'save';

class ActionsCache implements CacheClient {
  readonly #log: Logger;
  readonly #capture: CoreOutputCapture;
  /** Why a direction is off for the rest of the run; set once, never cleared. */
  readonly #off: Partial<Record<Direction, string>> = {};
  readonly #warned = new Set<string>();
  /** Keys the service found but whose archive could not be restored: entries are immutable. */
  readonly #found = new Set<string>();
  #checked = false;

  constructor(log: Logger, capture: CoreOutputCapture) {
    this.#log = log;
    this.#capture = capture;
  }

  async restore(paths: readonly string[], key: string): Promise<boolean> {
    if (!this.#usable('restore')) return false;
    const result = await this.#capture.run(() => cache.restoreCache(patterns(paths), key));
    this.#replay(key, result.lines);
    const problem = restoreProblem(result, key);
    if (problem !== undefined) this.#report('restore', key, problem);
    if (problem?.kind === 'entry' && result.lines.some((l) => l.message.startsWith('Cache hit for: ')))
      this.#found.add(key);
    return problem === undefined && result.ok && result.value === key;
  }

  async save(paths: readonly string[], key: string): Promise<SaveResult> {
    if (!this.#usable('save')) return 'unavailable';
    if (this.#found.has(key)) {
      // Saving would archive and upload the whole model only to meet a 409 and a second warning.
      this.#log.info(`Cache entry ${key} exists (its restore failed above); not saved again.`);
      return 'exists';
    }
    const result = await this.#capture.run(() => cache.saveCache(patterns(paths), key));
    this.#replay(key, result.lines);
    const problem = saveProblem(result);
    if (problem === undefined) return 'saved';
    this.#report('save', key, problem);
    if (problem.kind === 'conflict') return 'exists';
    return problem.kind === 'disabled' ? 'unavailable' : 'failed';
  }

  /** Asks the library once whether a service is configured (it reads the runner's variables). */
  #usable(direction: Direction): boolean {
    if (!this.#checked) {
      this.#checked = true;
      if (!cache.isFeatureAvailable()) {
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

/**
 * @actions/cache treats each path as a glob (@actions/glob); escape `\`, `[`, `?` and `*` so a file
 * named `model[1].bin` is taken literally. Sorted and deduplicated so the version, which hashes
 * the list, does not depend on the caller's order.
 */
function patterns(paths: readonly string[]): string[] {
  const escaped = paths.map((p) =>
    p.replace(/\\/g, '\\\\').replace(/\[/g, '[[]').replace(/\?/g, '[?]').replace(/\*/g, '[*]'),
  );
  return [...new Set(escaped)].sort();
}
