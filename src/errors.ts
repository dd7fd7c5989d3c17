import { printable } from './report/text.js';

/**
 * The one error family of model-pull. The `code` is stable and decides behaviour (retry or not);
 * the message is written for the user and never carries a credential.
 */
export type ErrorCode =
  | 'ERR_BAD_REFERENCE'
  | 'ERR_BAD_INPUT'
  | 'ERR_DIGEST_MISMATCH'
  | 'ERR_SIZE_MISMATCH'
  | 'ERR_RANGE_IGNORED'
  | 'ERR_RANGE_NOT_SATISFIABLE'
  /** A 206 whose Content-Range is not the range asked for: retried, it is the server's fault. */
  | 'ERR_BAD_RANGE'
  | 'ERR_HTTP_STATUS'
  | 'ERR_NETWORK'
  /** The host name does not resolve: retrying cannot help. */
  | 'ERR_DNS'
  /** Nothing listens there: retried a few times only (a restarting server), then given up. */
  | 'ERR_CONNECTION_REFUSED'
  /** The certificate was refused (unknown CA, wrong name, expired): retrying cannot help. */
  | 'ERR_TLS'
  /** A body read into memory passed the limit for its purpose. */
  | 'ERR_TOO_LARGE'
  /** No byte (or no headers) within the stall timeout. */
  | 'ERR_STALLED'
  /** Bytes trickle in below the minimum rate, or a small answer missed its deadline. */
  | 'ERR_TOO_SLOW'
  | 'ERR_TRUNCATED'
  /** A signed URL answered 401/403: the engine asks the source for a fresh one. */
  | 'ERR_URL_EXPIRED'
  /** Fresh URLs kept being refused without any byte landing: the engine gives up. */
  | 'ERR_URL_REFRESH_LIMIT'
  | 'ERR_INSECURE_URL'
  | 'ERR_REDIRECT'
  | 'ERR_DISK_SPACE'
  /** A file in a store could not be read or written (permissions, a folder where a file goes). */
  | 'ERR_FILESYSTEM'
  | 'ERR_RETRIES_EXHAUSTED'
  | 'ERR_AUTH'
  | 'ERR_BAD_MANIFEST'
  | 'ERR_NOT_FOUND'
  | 'ERR_GATED_REPO'
  | 'ERR_REVISION_NOT_FOUND'
  | 'ERR_RATE_LIMITED'
  | 'ERR_LOCKFILE'
  /** fail-on-cache-miss: a model has no Actions cache entry, or the cache cannot be asked. */
  | 'ERR_CACHE_MISS'
  | 'ERR_RUNTIME_INSTALL'
  | 'ERR_RUNTIME_SERVE'
  | 'ERR_CACHE_SERVICE'
  | 'ERR_UNSUPPORTED_PLATFORM'
  | 'ERR_ABORTED'
  | 'ERR_NOT_WRITABLE'
  /** Another process held a staging lease past the longest wait, or took ours over. */
  | 'ERR_STAGING_LOCK';

export class ModelPullError extends Error {
  override readonly name = 'ModelPullError';
  readonly code: ErrorCode;
  /** HTTP status when the error came from a response. */
  readonly status: number | undefined;
  /** Seconds the server asked us to wait (Retry-After / RateLimit t=). */
  readonly retryAfterSeconds: number | undefined;
  /** The host (`name[:port]`) that failed, when the error came from one: retry events name it. */
  readonly host: string | undefined;
  /** What went wrong, without the fix. */
  readonly reason: string;
  /**
   * What the user can do about it, when there is one thing to do ("create it with `…`"): the
   * message ends with it, and the job summary shows it on its own.
   */
  readonly fix: string | undefined;

  constructor(code: ErrorCode, message: string, options: ModelPullErrorOptions = {}) {
    super(
      options.fix ? `${message}; ${options.fix}` : message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.status = options.status;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.host = options.host;
    this.reason = message;
    this.fix = options.fix;
  }

  /**
   * The same error with another message (a prefix naming the blob or model), facts kept; the
   * message given replaces the reason, and the fix still follows it.
   */
  withMessage(message: string): ModelPullError {
    const { status, retryAfterSeconds, host, fix } = this;
    return new ModelPullError(this.code, message, { cause: this, status, retryAfterSeconds, host, fix });
  }
}

export interface ModelPullErrorOptions {
  readonly cause?: unknown;
  readonly status?: number;
  readonly retryAfterSeconds?: number;
  readonly host?: string;
  /** What the user can do about it (see ModelPullError.fix). */
  readonly fix?: string;
}

export function isModelPullError(error: unknown, code?: ErrorCode): error is ModelPullError {
  return error instanceof ModelPullError && (code === undefined || error.code === code);
}

/** Strips userinfo and the query (signed URLs carry their signature there) for messages. */
export function redactUrl(url: string | URL): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    const query = u.search ? '?…' : '';
    u.search = '';
    u.hash = '';
    return u.toString() + query;
  } catch {
    return '<invalid URL>';
  }
}

/**
 * A one-line description of any thrown value, for logs and CLI stderr. Messages quote servers
 * (error bodies, names), so control characters are shown, never sent (report/text.ts).
 */
export function describeError(error: unknown): string {
  if (error instanceof Error) return printable(error.message.replace(/\s*\n\s*/g, ' '));
  return printable(String(error));
}
