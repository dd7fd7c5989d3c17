import type { Clock } from '../../src/clock.js';

export interface SkippingClock extends Clock {
  /** Every wait asked for, in order (ms). */
  readonly sleeps: number[];
}

/**
 * Real time plus every wait skipped so far: retries and lease polls return at once (no test
 * waits for a backoff), while rates measured between chunks stay real.
 */
export function skippingClock(): SkippingClock {
  let skipped = 0;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => Date.now() + skipped,
    sleep: async (ms, signal) => {
      if (signal?.aborted) throw signal.reason;
      sleeps.push(ms);
      skipped += ms;
      // Let sockets and timers run between attempts, as a real wait would.
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}
