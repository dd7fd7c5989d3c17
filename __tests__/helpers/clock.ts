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

/**
 * Time that moves only when something waits on it: `now()` starts at `start` and advances by
 * each sleep, never by the wall clock. Ages and deadlines measured on it do not depend on how
 * loaded the machine is.
 */
export function virtualClock(start = Date.now()): SkippingClock {
  let now = start;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    sleep: async (ms, signal) => {
      if (signal?.aborted) throw signal.reason;
      sleeps.push(ms);
      now += ms;
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

/**
 * Time that moves only when the test moves it: each sleep waits until `advance` passes its due
 * time (or its signal aborts). `waiting()` resolves once some sleep is pending, so a test can
 * step a deadline or a retry wait exactly when the code under test has started it.
 */
export interface ManualClock extends Clock {
  /** Moves time forward by `ms`, waking every sleep due by then. */
  advance(ms: number): void;
  /** Resolves when at least one sleep is pending. */
  waiting(): Promise<void>;
  /** The sleeps pending now, by duration asked for. */
  pending(): number[];
}

export function manualClock(start = 1_000_000): ManualClock {
  let now = start;
  const sleepers = new Set<{ due: number; ms: number; wake: () => void }>();
  let onSleep: (() => void) | undefined;
  return {
    now: () => now,
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        const sleeper = {
          due: now + ms,
          ms,
          wake: () => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          },
        };
        const onAbort = () => {
          sleepers.delete(sleeper);
          reject(signal?.reason);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        sleepers.add(sleeper);
        onSleep?.();
      }),
    advance(ms) {
      now += ms;
      for (const sleeper of [...sleepers]) {
        if (sleeper.due <= now) {
          sleepers.delete(sleeper);
          sleeper.wake();
        }
      }
    },
    waiting: () =>
      sleepers.size > 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            onSleep = () => {
              onSleep = undefined;
              resolve();
            };
          }),
    pending: () => [...sleepers].map((s) => s.ms),
  };
}
