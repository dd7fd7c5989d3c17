import { type Clock, systemClock } from '../../../src/clock.js';
import { fetchBlobs } from '../../../src/download/engine.js';
import type { BlobResult } from '../../../src/download/types.js';
import { HttpClient } from '../../../src/http/client.js';
import type { RetryPolicy } from '../../../src/http/retry.js';
import type { LinkOps } from '../../../src/layouts/hf.js';
import type { Identity, PlanEntry, SourceContext } from '../../../src/plan.js';
import { splitLine } from '../../../src/refs/line.js';
import { MemoryLogger } from '../../../src/report/logger.js';
import { parseHfRef } from '../../../src/sources/hf/ref.js';
import { createHfSource } from '../../../src/sources/hf/source.js';

/** Tiny delays so retries cost milliseconds; a server-named wait is still honoured up to 5 s. */
export const FAST_RETRY: RetryPolicy = { retries: 3, baseDelayMs: 1, maxDelayMs: 5, maxRetryAfterMs: 5000 };

export function testHttp(): HttpClient {
  return new HttpClient({
    connections: 4,
    insecure: false,
    stallTimeoutMs: 5000,
    userAgent: 'model-pull-test',
  });
}

export interface PullOptions {
  readonly cacheRoot: string;
  readonly endpoint: string;
  readonly token?: string;
  readonly verify?: 'full' | 'size';
  readonly linkOps?: Partial<LinkOps>;
}

export interface Pulled {
  readonly identity: Identity;
  readonly entry: PlanEntry;
  readonly results: BlobResult[];
  readonly log: MemoryLogger;
}

export function context(
  http: HttpClient,
  log = new MemoryLogger(),
  clock: Clock = systemClock,
): SourceContext {
  return { http, retry: FAST_RETRY, log, clock };
}

export function hfRef(line: string) {
  return parseHfRef(splitLine(line));
}

export async function identifyLine(
  http: HttpClient,
  line: string,
  options: PullOptions,
  log = new MemoryLogger(),
  clock: Clock = systemClock,
) {
  const source = createHfSource(options);
  return source.identify(parseHfRef(splitLine(line)), context(http, log, clock));
}

/** The whole path a line takes: identify → plan → engine → commit. */
export async function pullLine(http: HttpClient, line: string, options: PullOptions): Promise<Pulled> {
  return pullIdentity(http, line, undefined, options);
}

/** The same with a recorded identity (as from a lock file) when one is given: no identify step. */
export async function pullIdentity(
  http: HttpClient,
  line: string,
  recorded: Identity | undefined,
  options: PullOptions,
): Promise<Pulled> {
  const log = new MemoryLogger();
  const source = createHfSource(options);
  const ctx = context(http, log);
  const ref = parseHfRef(splitLine(line));
  const identity = recorded ?? (await source.identify(ref, ctx));
  const entry = await source.plan(ref, identity, ctx);
  const results = await fetchBlobs(entry.blobs, {
    http,
    concurrency: 4,
    connections: 4,
    verify: options.verify ?? 'full',
    retry: FAST_RETRY,
    minSplit: 64 * 1024,
  });
  await entry.commit();
  return { identity, entry, results, log };
}
