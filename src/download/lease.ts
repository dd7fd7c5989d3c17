import { randomUUID } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { constants, lstat, lutimes, open, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Clock } from '../clock.js';
import { ModelPullError } from '../errors.js';
import { isAlive } from '../process-liveness.js';
import { readSmall } from './safe-fs.js';

/**
 * One writer per staging entry, across processes that share a store (two CI jobs on one
 * runner, a cache folder mounted into several containers). The writer holds a lease file that
 * says who it is (pid, host, boot id, pid namespace) and refreshes its mtime as a heartbeat.
 * Another process waits while the lease is alive and takes it over when it is not:
 *
 * - on the same machine (same host, boot and pid namespace) a holder whose pid is gone is dead;
 * - anywhere, a lease whose heartbeat is older than `staleMs` is dead (a pid reused by an
 *   unrelated process, a holder in another container, a lease from a crashed machine).
 *
 * The wait is announced once and bounded by `maxWaitMs`.
 */
export interface LeaseTiming {
  readonly heartbeatMs: number;
  readonly staleMs: number;
  readonly pollMs: number;
  readonly maxWaitMs: number;
}

export const DEFAULT_LEASE_TIMING: LeaseTiming = {
  heartbeatMs: 5_000,
  staleMs: 30_000,
  pollMs: 500,
  maxWaitMs: 60 * 60_000,
};

/** Who holds a lease, as its file says (fields absent when the file is not ours to read). */
export interface LeaseHolder {
  readonly pid?: number;
  readonly host?: string;
}

export interface LeaseOptions {
  readonly clock: Clock;
  readonly signal?: AbortSignal;
  readonly timing?: Partial<LeaseTiming>;
  /** Told once, when another process holds the lease and we start to wait. */
  readonly onWait?: (holder: LeaseHolder) => void;
}

export interface Lease {
  /** True when another process held the entry at some point while we waited for it. */
  readonly waited: boolean;
  /** Whether the lease file is still ours (nobody judged us dead and took over). */
  held(): Promise<boolean>;
  release(): Promise<void>;
}

interface LeaseRecord {
  readonly pid: number;
  readonly host: string;
  readonly boot: string;
  readonly pidns: string;
  readonly token: string;
}

interface Seen {
  readonly text: string;
  readonly record: Partial<LeaseRecord> | undefined;
  readonly mtimeMs: number;
}

const MAX_LEASE_BYTES = 4096;

/** In-process turns: two blobs of one run with the same digest take turns before the file lease. */
const turns = new Map<string, Promise<void>>();

/** Waits for and takes the lease at `path` for `subject` (a blob's label, for messages). */
export async function acquireLease(path: string, subject: string, options: LeaseOptions): Promise<Lease> {
  const previous = turns.get(path);
  let endTurn!: () => void;
  const mine = new Promise<void>((resolve) => {
    endTurn = resolve;
  });
  const turn = (previous ?? Promise.resolve()).then(() => mine);
  turns.set(path, turn);
  const done = () => {
    endTurn();
    if (turns.get(path) === turn) turns.delete(path);
  };
  try {
    await previous;
    const lease = await takeFileLease(path, subject, options);
    return {
      waited: lease.waited,
      held: lease.held,
      release: async () => {
        try {
          await lease.release();
        } finally {
          done();
        }
      },
    };
  } catch (error) {
    done();
    throw error;
  }
}

async function takeFileLease(path: string, subject: string, options: LeaseOptions) {
  const timing = { ...DEFAULT_LEASE_TIMING, ...options.timing };
  const { clock, signal } = options;
  const me: LeaseRecord = { ...machine(), pid: process.pid, token: randomUUID() };
  const text = JSON.stringify(me);
  const started = clock.now();
  let waited = false;
  for (;;) {
    if (await createLease(path, text)) break;
    const seen = await inspect(path);
    if (!seen) continue; // released just now
    if (isStale(seen, clock.now(), timing.staleMs)) {
      await breakLease(path, seen, clock.now(), timing.staleMs);
      continue;
    }
    const holder = { pid: seen.record?.pid, host: seen.record?.host };
    if (!waited) options.onWait?.(holder);
    waited = true;
    if (clock.now() - started >= timing.maxWaitMs) {
      throw new ModelPullError(
        'ERR_STAGING_LOCK',
        `gave up after ${Math.round(timing.maxWaitMs / 1000)} s waiting for ${describeHolder(holder)} to finish ${subject}; if it is no longer running, delete ${path}`,
      );
    }
    await clock.sleep(timing.pollMs, signal);
  }
  const held = async () => (await inspect(path))?.text === text;
  let beating = true;
  const heartbeat = setInterval(() => {
    void held().then(async (ours) => {
      if (!ours || !beating) return;
      const now = new Date(clock.now());
      await lutimes(path, now, now).catch(() => undefined);
    });
  }, timing.heartbeatMs);
  heartbeat.unref();
  return {
    waited,
    held,
    release: async () => {
      beating = false;
      clearInterval(heartbeat);
      // A lease that another process took over (it judged us dead) is theirs to remove.
      if (await held()) await rm(path, { force: true });
    },
  };
}

/** "another model-pull (pid 4242 on runner-7)" */
export function describeHolder(holder: LeaseHolder): string {
  if (holder.pid === undefined) return 'another model-pull';
  return `another model-pull (pid ${holder.pid}${holder.host ? ` on ${holder.host}` : ''})`;
}

/** Creates the lease file exclusively with our record; false when it exists already. */
async function createLease(path: string, text: string): Promise<boolean> {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
  let file: Awaited<ReturnType<typeof open>>;
  try {
    file = await open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    await file.writeFile(text);
  } finally {
    await file.close();
  }
  return true;
}

/** The lease as it is now (undefined when absent); its record only when it has our shape. */
async function inspect(path: string): Promise<Seen | undefined> {
  const info = await lstat(path).catch(() => undefined);
  if (!info) return undefined;
  const bytes = info.isFile() ? await readSmall(path, MAX_LEASE_BYTES) : undefined;
  const text = bytes?.toString('utf8') ?? '';
  return { text, record: parseRecord(text), mtimeMs: info.mtimeMs };
}

function parseRecord(text: string): Partial<LeaseRecord> | undefined {
  // Earlier versions wrote the bare pid: a holder we can name but not place.
  if (/^\d+$/.test(text.trim())) return { pid: Number(text.trim()) };
  try {
    const value = JSON.parse(text) as { [key: string]: unknown } | null;
    if (typeof value !== 'object' || value === null || !Number.isSafeInteger(value.pid)) return undefined;
    const str = (k: string) => (typeof value[k] === 'string' ? (value[k] as string) : undefined);
    return {
      pid: value.pid as number,
      host: str('host'),
      boot: str('boot'),
      pidns: str('pidns'),
      token: str('token'),
    };
  } catch {
    return undefined;
  }
}

function isStale(seen: Seen, now: number, staleMs: number): boolean {
  const record = seen.record;
  if (record?.pid !== undefined && sameMachine(record)) {
    // Our own pid on a lease we do not hold (turns keep us from holding one twice): a leftover.
    if (record.pid === process.pid || !isAlive(record.pid)) return true;
  }
  return now - seen.mtimeMs > staleMs;
}

/**
 * Removes a dead lease, one breaker at a time: a second process that judged the same lease
 * dead must not remove the fresh lease the first one has just created in its place.
 */
async function breakLease(path: string, seen: Seen, now: number, staleMs: number): Promise<void> {
  const breaker = `${path}.break`;
  if (!(await createLease(breaker, String(process.pid)))) {
    const info = await lstat(breaker).catch(() => undefined);
    // A breaker that crashed mid-way is removed once it is as old as a dead lease.
    if (info && now - info.mtimeMs > staleMs) await rm(breaker, { force: true });
    return;
  }
  try {
    const again = await inspect(path);
    if (again && again.text === seen.text && again.mtimeMs === seen.mtimeMs) await rm(path, { force: true });
  } finally {
    await rm(breaker, { force: true });
  }
}

let machineInfo: Omit<LeaseRecord, 'pid' | 'token'> | undefined;

/** Host name, boot id and pid namespace: where a pid means the same process as ours. */
function machine(): Omit<LeaseRecord, 'pid' | 'token'> {
  machineInfo ??= {
    host: hostname(),
    boot: readOr(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()),
    pidns: readOr(() => readlinkSync('/proc/self/ns/pid')),
  };
  return machineInfo;
}

function sameMachine(record: Partial<LeaseRecord>): boolean {
  const here = machine();
  return record.host === here.host && record.boot === here.boot && record.pidns === here.pidns;
}

function readOr(read: () => string): string {
  try {
    return read();
  } catch {
    return '';
  }
}
