import { type Clock, realSleep, systemClock } from '../clock.js';
import { type ErrorCode, isModelPullError, type ModelPullError } from '../errors.js';

export { realSleep };

/** How hard to try again, and who hears about each retry. */
export interface RetryPolicy {
  /** Attempts after the first one, per unit of work (a range without progress, a request). */
  readonly retries: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** Longest single wait we accept from Retry-After before giving up instead. */
  readonly maxRetryAfterMs: number;
  /**
   * Told about every retry before its wait, so a user sees why nothing moves (issue 11: "say why
   * it waits"). The entry points render it; the engine and the HTTP helpers only emit it.
   */
  readonly onRetry?: RetryListener;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  retries: 6,
  baseDelayMs: 1000,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 120_000,
};

/**
 * Retries after a refused connection. A server that is restarting listens again within a
 * second or two; a host with nothing listening never will, and a minute of 2^n waits only
 * hides that from the user.
 */
export const REFUSED_RETRIES = 2;

/** One retry about to happen: what failed, where, and how long we wait before trying again. */
export interface RetryEvent {
  /** `name[:port]` of the server that failed, when known. */
  readonly host: string | undefined;
  /** Short words for the failure: `connection refused`, `HTTP 503`, `no data`. */
  readonly cause: string;
  readonly code: ErrorCode;
  /** 1 for the first retry. */
  readonly attempt: number;
  /** Retries allowed for this cause. */
  readonly max: number;
  readonly delayMs: number;
  /** What was being fetched (a blob's label), when the retry is about one thing. */
  readonly subject?: string;
}

export type RetryListener = (event: RetryEvent) => void;

const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_NETWORK',
  'ERR_CONNECTION_REFUSED',
  'ERR_STALLED',
  'ERR_TOO_SLOW',
  'ERR_TRUNCATED',
  'ERR_BAD_RANGE',
  'ERR_RATE_LIMITED',
]);

/** The code, never the message, decides: network faults, stalls, 429 and 5xx are worth another try. */
export function isRetryable(error: unknown): error is ModelPullError {
  if (!isModelPullError(error)) return false;
  if (RETRYABLE.has(error.code)) return true;
  return error.code === 'ERR_HTTP_STATUS' && error.status !== undefined && error.status >= 500;
}

/** The server could not be reached at all (or not for long enough): a local copy may stand in. */
export function isUnreachable(error: unknown): boolean {
  return isRetryable(error) || isModelPullError(error, 'ERR_DNS');
}

/** Retries the policy allows for this error (fewer for a refused connection). */
export function retriesFor(error: ModelPullError, policy: RetryPolicy): number {
  return error.code === 'ERR_CONNECTION_REFUSED' ? Math.min(policy.retries, REFUSED_RETRIES) : policy.retries;
}

/**
 * Delay before attempt `attempt` (1 = first retry): exponential with full jitter, unless the
 * server named a wait, which is honoured (plus a little jitter so a fleet does not stampede).
 * Returns undefined when the server's wait is longer than the policy accepts.
 */
export function retryDelayMs(
  attempt: number,
  policy: RetryPolicy,
  retryAfterSeconds: number | undefined,
  random: () => number = Math.random,
): number | undefined {
  if (retryAfterSeconds !== undefined) {
    const wait = retryAfterSeconds * 1000;
    if (wait > policy.maxRetryAfterMs) return undefined;
    return wait + Math.floor(random() * Math.min(1000, policy.baseDelayMs));
  }
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * Whether (and after how long) to try again after the `failures`-th failure in a row: undefined
 * when the error is not worth a retry, its budget is spent, or the server asks for too long a wait.
 */
export function nextRetry(
  error: unknown,
  failures: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): { readonly delayMs: number; readonly max: number } | undefined {
  if (!isRetryable(error)) return undefined;
  const max = retriesFor(error, policy);
  if (failures > max) return undefined;
  const delayMs = retryDelayMs(failures, policy, error.retryAfterSeconds, random);
  return delayMs === undefined ? undefined : { delayMs, max };
}

/** Words for the failure, as a retry line shows them. */
export function retryCause(error: ModelPullError): string {
  switch (error.code) {
    case 'ERR_CONNECTION_REFUSED':
      return 'connection refused';
    case 'ERR_HTTP_STATUS':
      return `HTTP ${error.status}`;
    case 'ERR_RATE_LIMITED':
      return `rate-limited (HTTP ${error.status ?? 429})`;
    case 'ERR_STALLED':
      return 'no data';
    case 'ERR_TOO_SLOW':
      return 'too slow';
    case 'ERR_TRUNCATED':
      return 'connection closed early';
    case 'ERR_BAD_RANGE':
      return 'wrong byte range';
    default: {
      const code = (error.cause as { code?: unknown } | undefined)?.code;
      if (code === 'ECONNRESET') return 'connection reset';
      if (code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return 'connection timed out';
      if (code === 'EAI_AGAIN') return 'name lookup failed';
      if (code === 'UND_ERR_SOCKET' || code === 'EPIPE') return 'connection closed';
      return 'network error';
    }
  }
}

/** `registry.ollama.ai: connection refused, retry 2/6 in 4 s (model.gguf)`. */
export function describeRetry(event: RetryEvent): string {
  const wait =
    event.delayMs < 10_000 ? (event.delayMs / 1000).toFixed(1) : String(Math.round(event.delayMs / 1000));
  const where = event.host ? `${event.host}: ` : '';
  const what = event.subject ? ` (${event.subject})` : '';
  return `${where}${event.cause}, retry ${event.attempt}/${event.max} in ${wait} s${what}`;
}

/** Builds the event for a retry that `nextRetry` allowed. */
export function retryEvent(
  error: ModelPullError,
  attempt: number,
  plan: { readonly delayMs: number; readonly max: number },
  context: { readonly host?: string; readonly subject?: string } = {},
): RetryEvent {
  return {
    host: error.host ?? context.host,
    cause: retryCause(error),
    code: error.code,
    attempt,
    max: plan.max,
    delayMs: plan.delayMs,
    ...(context.subject !== undefined ? { subject: context.subject } : {}),
  };
}

/**
 * Seconds to wait from `Retry-After` (seconds or an HTTP date) or the IETF `RateLimit` header
 * the Hugging Face Hub sends (`"api";r=0;t=55`).
 */
export function parseRetryAfter(
  headers: Record<string, string | string[] | undefined>,
  now: number = Date.now(),
): number | undefined {
  const retryAfter = first(headers['retry-after']);
  if (retryAfter !== undefined) {
    if (/^\d+$/.test(retryAfter.trim())) return Number(retryAfter.trim());
    const at = Date.parse(retryAfter);
    if (!Number.isNaN(at)) return Math.max(0, Math.ceil((at - now) / 1000));
  }
  const rateLimit = first(headers['ratelimit']);
  const t = rateLimit ? /(?:^|;)\s*t=(\d+)/.exec(rateLimit) : null;
  if (t) return Number(t[1]);
  return undefined;
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Runs `attempt` until it succeeds, fails with an error not worth retrying, or the policy is
 * spent; every retry is announced to the policy's listener first. For small requests
 * (manifests, listings); the engine keeps its own per-range loop on the same rules.
 */
export async function withRetries<T>(
  attempt: () => Promise<T>,
  policy: RetryPolicy,
  options: {
    clock?: Pick<Clock, 'sleep'>;
    signal?: AbortSignal;
    random?: () => number;
    /** What the request is for, shown in retry lines. */
    subject?: string;
  } = {},
): Promise<T> {
  const clock = options.clock ?? systemClock;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      const plan = nextRetry(error, n, policy, options.random);
      if (!plan) throw error;
      policy.onRetry?.(retryEvent(error as ModelPullError, n, plan, { subject: options.subject }));
      await clock.sleep(plan.delayMs, options.signal);
    }
  }
}
