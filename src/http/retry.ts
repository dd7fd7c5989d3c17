import { type ErrorCode, isModelPullError } from '../errors.js';

/** How hard to try again; `sleep` and `random` are injected so tests run on fake time. */
export interface RetryPolicy {
  /** Attempts after the first one, per unit of work (a range without progress, a request). */
  readonly retries: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** Longest single wait we accept from Retry-After before giving up instead. */
  readonly maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  retries: 6,
  baseDelayMs: 1000,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 120_000,
};

const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_NETWORK',
  'ERR_STALLED',
  'ERR_TRUNCATED',
  'ERR_RATE_LIMITED',
]);

/** The code, never the message, decides: network faults, stalls, 429 and 5xx are worth another try. */
export function isRetryable(error: unknown): boolean {
  if (!isModelPullError(error)) return false;
  if (RETRYABLE.has(error.code)) return true;
  return error.code === 'ERR_HTTP_STATUS' && error.status !== undefined && error.status >= 500;
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

export const realSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/**
 * Runs `attempt` until it succeeds, fails with a non-retryable error, or the policy is spent.
 * For small requests (manifests, listings); the engine keeps its own per-range loop.
 */
export async function withRetries<T>(
  attempt: () => Promise<T>,
  policy: RetryPolicy,
  options: { sleep?: typeof realSleep; signal?: AbortSignal; random?: () => number } = {},
): Promise<T> {
  const sleep = options.sleep ?? realSleep;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (!isRetryable(error) || n > policy.retries) throw error;
      const after = isModelPullError(error) ? error.retryAfterSeconds : undefined;
      const delay = retryDelayMs(n, policy, after, options.random);
      if (delay === undefined) throw error;
      await sleep(delay, options.signal);
    }
  }
}
