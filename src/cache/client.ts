import type { Logger } from '../report/logger.js';
import type { RestoreEntry, RestoreResult } from './restore.js';

export type { RestoreEntry, RestoreResult } from './restore.js';

/**
 * `saved`: a new entry exists under the key. `exists`: another job holds (or is writing) that key.
 * `failed`: this save did not work (already warned). `unavailable`: no cache service in this run.
 */
export type SaveResult = 'saved' | 'exists' | 'failed' | 'unavailable';

/**
 * The pipeline's only view of the Actions cache. Neither method throws: the cache is an
 * optimisation, and every problem with it ends as one warning and a miss.
 *
 * Paths: give restore and save the very same strings for one entry. The service files an entry
 * under a `version` that hashes the path strings (plus compression method and OS), so any
 * difference, even `a/../b` for `b`, is a miss. The client sorts the list, so order does not
 * matter, and escapes glob characters, so paths are taken literally. Give absolute paths: the
 * archive stores them relative to `GITHUB_WORKSPACE` (else the working directory); restore
 * maps each member back to a planned file whatever the workspace, and writes nothing else.
 */
export interface CacheClient {
  /**
   * Fills the entry's planned files that its archive holds, each verified before it reaches its
   * target; a miss, or any problem (after its one warning), is `miss` or `partial`.
   */
  restore(entry: RestoreEntry): Promise<RestoreResult>;
  save(paths: readonly string[], key: string): Promise<SaveResult>;
  /**
   * Whether the service holds the entry, downloading nothing (fail-on-cache-miss asks before
   * anything is restored or fetched); `off` when it cannot be asked (after its one warning).
   */
  lookup(entry: Pick<RestoreEntry, 'key' | 'paths'>): Promise<LookupResult>;
}

export type LookupResult = 'found' | 'missing' | 'off';

/** Nothing restored: every planned file comes from the origin. */
export function missed(entry: RestoreEntry, found = false): RestoreResult {
  return { state: 'miss', found, restored: new Map(), fetched: 0, missing: entry.blobs.length };
}

/** Nothing looked up: the cache is off or cannot be used in this run. */
export function notLookedUp(entry: RestoreEntry): RestoreResult {
  return { ...missed(entry), state: 'off' };
}

/** For `cache: false`: nothing is restored or saved, and nothing is logged. */
export function createNoCache(): CacheClient {
  return {
    restore: async (entry) => notLookedUp(entry),
    save: async () => 'unavailable',
    lookup: async () => 'off',
  };
}

/**
 * For `save: false`: restores as `cache` does and never saves (a matrix job after the job that
 * warms the cache; a pull request from a fork, whose entries others would read).
 */
export function restoreOnly(cache: CacheClient, log: Pick<Logger, 'info'>): CacheClient {
  return {
    restore: (...args) => cache.restore(...args),
    lookup: (...args) => cache.lookup(...args),
    save: async (_paths, key) => {
      log.info(`Cache entry ${key} not saved: save is false in this step.`);
      return 'unavailable';
    },
  };
}
