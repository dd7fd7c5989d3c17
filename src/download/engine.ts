import type { HttpClient } from '../http/client.js';
import type { RetryPolicy } from '../http/retry.js';
import type { BlobResult, BlobSpec, ProgressListener } from './types.js';

export interface EngineOptions {
  readonly http: HttpClient;
  /** Blobs fetched at once. */
  readonly concurrency: number;
  /** Parallel range requests per large blob. */
  readonly connections: number;
  /** How an existing target is trusted: `full` re-hashes it, `size` checks its length. */
  readonly verify: 'full' | 'size';
  readonly retry: RetryPolicy;
  readonly signal?: AbortSignal;
  readonly onProgress?: ProgressListener;
}

/** Places every blob, verified, at its target (reusing verified ones), or throws. */
export async function fetchBlobs(_blobs: readonly BlobSpec[], _options: EngineOptions): Promise<BlobResult[]> {
  throw new Error('not implemented yet');
}
