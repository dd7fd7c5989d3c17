import { realSleep } from './http/retry.js';

/**
 * Time as the pipeline and the sources see it, injected so tests run on fake time: nothing
 * outside the entry points and this default reads the wall clock or waits on a real timer.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Resolves after `ms`; rejects with the signal's reason if it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = { now: () => Date.now(), sleep: realSleep };
