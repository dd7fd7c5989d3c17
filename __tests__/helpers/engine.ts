import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import type { BlobLocation, BlobSpec } from '../../src/download/types.js';
import { HttpClient, type HttpOptions } from '../../src/http/client.js';
import type { RetryPolicy } from '../../src/http/retry.js';

export const FAST_RETRY: RetryPolicy = { retries: 4, baseDelayMs: 5, maxDelayMs: 20, maxRetryAfterMs: 2000 };

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
