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
 * archive stores them relative to `GITHUB_WORKSPACE` (else the working directory) and restore
 * writes them back relative to it, so both runs need the same workspace folder.
 */
export interface CacheClient {
  /** True only when the entry with exactly this key was restored; false on a miss or any problem. */
  restore(paths: readonly string[], key: string): Promise<boolean>;
  save(paths: readonly string[], key: string): Promise<SaveResult>;
}

/** For `cache: false`: nothing is restored or saved, and nothing is logged. */
export function createNoCache(): CacheClient {
  return {
    restore: async () => false,
    save: async () => 'unavailable',
  };
}
