import type { Digest } from '../digest.js';
import type { Credentials } from '../http/client.js';

/** Where a blob's bytes can be fetched now. Sources build it; the engine may ask again. */
export interface BlobLocation {
  readonly url: string;
  /** Sent only to the origin they name, never along a redirect to another host. */
  readonly credentials?: Credentials;
  /** Non-secret headers for every hop (e.g. Accept). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** One blob the engine must place, verified, at `target`. */
export interface BlobSpec {
  readonly digest: Digest;
  /** Expected size in bytes, when the source knows it (required for git-sha1). */
  readonly size?: number;
  /** Shown in progress and errors, e.g. `ollama:llama3.2 model layer`. */
  readonly label: string;
  /** Final absolute path; it never holds unverified bytes. */
  readonly target: string;
  /** Staging folder on the same filesystem as `target` (rename must be atomic). */
  readonly ingestDir: string;
  /**
   * One connection until the server answers a range with 206, then all of them. For a server
   * that may answer each range request by fetching the whole blob elsewhere first (a
   * pull-through cache that lacks it): parallel ranges there multiply its upstream traffic.
   */
  readonly probeRanges?: boolean;
  /**
   * Told when fetching failed, or the bytes did not match, at the place locate() named: true
   * when the source has another place for the blob (the origin behind a mirror) and locate()
   * now names it. The engine then fetches the blob again from there with its own retries;
   * nothing staged from the first place is kept. Asked once per blob at most: after a fallback,
   * failures at the other place are final.
   */
  fallback?(error: unknown): boolean;
  /**
   * Where to fetch from. Called before the first request and again when a signed URL reached
   * through a redirect answers 401/403 (expired), so the source can mint a fresh one.
   */
  locate(signal?: AbortSignal): Promise<BlobLocation>;
}

export interface BlobResult {
  readonly target: string;
  readonly digest: Digest;
  readonly size: number;
  /** Bytes fetched over the network for this blob in this run (0 when reused). */
  readonly downloadedBytes: number;
  /** The host (`name[:port]`) that served the bytes kept, when they were downloaded in this run. */
  readonly host?: string;
  /** True when the target already held the verified bytes. */
  readonly reused: boolean;
  /** True when the target held bytes that failed verification and were fetched again. */
  readonly replaced: boolean;
}

export interface BlobProgress {
  readonly label: string;
  readonly target: string;
  readonly done: number;
  readonly total: number | undefined;
  /** Bytes per second over the last few seconds. */
  readonly rate: number;
  readonly state: 'queued' | 'checking' | 'downloading' | 'verifying' | 'done' | 'failed';
  /** `failed`: why, in one line. */
  readonly error?: string;
  /** Milliseconds its download has taken so far (or took); absent for a blob reused from disk. */
  readonly fetchMs?: number;
}

export interface ProgressSnapshot {
  readonly blobs: readonly BlobProgress[];
  readonly done: number;
  readonly total: number;
  readonly rate: number;
  readonly elapsedMs: number;
}

export type ProgressListener = (snapshot: ProgressSnapshot) => void;
