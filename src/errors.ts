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
  | 'ERR_HTTP_STATUS'
  | 'ERR_NETWORK'
  | 'ERR_STALLED'
  | 'ERR_TRUNCATED'
  | 'ERR_URL_EXPIRED'
  | 'ERR_INSECURE_URL'
  | 'ERR_REDIRECT'
  | 'ERR_DISK_SPACE'
  | 'ERR_RETRIES_EXHAUSTED'
  | 'ERR_AUTH'
  | 'ERR_BAD_MANIFEST'
  | 'ERR_NOT_FOUND'
  | 'ERR_GATED_REPO'
  | 'ERR_REVISION_NOT_FOUND'
  | 'ERR_RATE_LIMITED'
  | 'ERR_LOCKFILE'
  | 'ERR_RUNTIME_INSTALL'
  | 'ERR_RUNTIME_SERVE'
  | 'ERR_UNSUPPORTED_PLATFORM'
  | 'ERR_ABORTED';

export class ModelPullError extends Error {
  override readonly name = 'ModelPullError';
  readonly code: ErrorCode;
  /** HTTP status when the error came from a response. */
  readonly status: number | undefined;
  /** Seconds the server asked us to wait (Retry-After / RateLimit t=). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; status?: number; retryAfterSeconds?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
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

/** A one-line description of any thrown value, for logs and CLI stderr. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message.replace(/\s*\n\s*/g, ' ');
  return String(error);
}
