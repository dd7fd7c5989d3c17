import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import type { BlobLocation, BlobSpec } from '../../src/download/types.js';
import { HttpClient, type HttpOptions } from '../../src/http/client.js';
import type { RetryPolicy } from '../../src/http/retry.js';
import { type BlobServer, startBlobServer } from './blob-server.js';
import { skippingClock } from './clock.js';
import { tempDir } from './http.js';

export const FAST_RETRY: RetryPolicy = { retries: 4, baseDelayMs: 5, maxDelayMs: 20, maxRetryAfterMs: 2000 };

/**
 * Engine options for tests against one blob server: full verification, 64 KiB pieces (so a
 * small blob still splits), retry waits recorded rather than slept; `extra` overrides any.
 */
export function engineOptions(http: HttpClient, connections: number, extra: object = {}) {
  return {
    http,
    concurrency: 2,
    connections,
    verify: 'full' as const,
    retry: FAST_RETRY,
    clock: skippingClock(),
    minSplit: 64 * 1024,
    ...extra,
  };
}

export function testClient(overrides: Partial<HttpOptions> = {}): HttpClient {
  return new HttpClient({
    connections: 16,
    insecure: false,
    stallTimeoutMs: 5000,
    userAgent: 'model-pull-test',
    ...overrides,
  });
}

export function randomBlob(size: number): { data: Buffer; hex: string } {
  const data = randomBytes(size);
  return { data, hex: sha256Hex(data) };
}

export function blobSpec(
  dir: string,
  hex: string,
  size: number | undefined,
  locate: string | (() => Promise<BlobLocation>),
): BlobSpec {
  return {
    digest: { algorithm: 'sha256', hex },
    size,
    label: 'test blob',
    target: join(dir, 'store', `sha256-${hex}`),
    ingestDir: join(dir, 'ingest'),
    locate: typeof locate === 'string' ? async () => ({ url: locate }) : locate,
  };
}

export interface EngineFixture {
  server: BlobServer;
  dir: { path: string; remove(): Promise<void> };
  http: HttpClient;
}

/**
 * One blob server for the describe block, and per test a clean server (no fault, no recorded
 * requests), a temp folder and an HTTP client, all closed afterwards. Handed to `use` before each test.
 */
export function engineFixture(data: Buffer, use: (fixture: EngineFixture) => void): void {
  let server: BlobServer;
  let current: EngineFixture | undefined;
  beforeAll(async () => {
    server = await startBlobServer(data);
  });
  afterAll(() => server.close());
  beforeEach(async () => {
    server.setFault(undefined);
    server.requests.length = 0;
    current = { server, dir: await tempDir(), http: testClient() };
    use(current);
  });
  afterEach(async () => {
    await current?.http.close();
    await current?.dir.remove();
  });
}

/** Bytes a staging progress record says are on disk (what a rerun may skip). */
export async function recordedBytes(record: string): Promise<number> {
  const parsed = JSON.parse(await readFile(record, 'utf8')) as { segments: { start: number; pos: number }[] };
  return parsed.segments.reduce((sum, s) => sum + s.pos - s.start, 0);
}
