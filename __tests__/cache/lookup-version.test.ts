import { HttpClient } from '../../src/http/client.js';
import { DEFAULT_RETRY_POLICY } from '../../src/http/retry.js';
import { type CacheService, startCacheService } from '../helpers/cache-service.js';
import { tempDir } from '../helpers/http.js';

/**
 * The lookup goes out under zstd's version while `zstd --version` is still being asked (the
 * probe is a process spawned once per run). On a machine without zstd, @actions/cache filed the
 * entry under gzip's version: that is the one found, never the zstd-versioned one. Each test
 * file has its own module registry, so the probe's cached answer is this file's own.
 */
const SERVICE = '/twirp/github.actions.results.api.v1.CacheService/';
const paths = ['/models/blobs/sha256-aa'];

let service: CacheService;
let http: HttpClient;
let savedPath: string | undefined;
let empty: { path: string; remove(): Promise<void> };
beforeAll(async () => {
  service = await startCacheService();
  http = new HttpClient({ connections: 4, insecure: false, stallTimeoutMs: 5000, userAgent: 'test' });
  empty = await tempDir();
  savedPath = process.env.PATH;
});
afterAll(async () => {
  process.env.PATH = savedPath;
  await http.close();
  await service.close();
  await empty.remove();
});

/** Files an entry under `version` with the service's own Twirp calls. */
async function file(key: string, version: string, bytes: string): Promise<void> {
  const twirp = async (method: string, body: object) => {
    const res = await fetch(`${service.url}${SERVICE}${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${service.token}` },
      body: JSON.stringify(body),
    });
    return (await res.json()) as { signed_upload_url?: string };
  };
  const created = await twirp('CreateCacheEntry', { key, version });
  const put = await fetch(String(created.signed_upload_url), {
    method: 'PUT',
    headers: { 'x-ms-blob-type': 'BlockBlob' },
    body: bytes,
  });
  expect(put.status).toBe(201);
  await twirp('FinalizeCacheEntryUpload', { key, version, size_bytes: String(bytes.length) });
}

test('without zstd, the entry filed under gzip’s version is found, not the zstd one', async () => {
  const { cacheVersion, savedPathList } = await import('../../src/cache/service.js');
  const { findEntry } = await import('../../src/cache/restore.js');
  const zstd = cacheVersion(savedPathList(paths), 'zstd-without-long');
  const gzip = cacheVersion(savedPathList(paths), 'gzip');
  await file('model', zstd, 'zstd entry');
  await file('model', gzip, 'gzip entry');
  service.calls.length = 0;
  // No zstd on PATH when the probe runs (its answer is kept for the rest of this file).
  process.env.PATH = empty.path;
  const found = await findEntry(
    { key: 'model', paths },
    {
      http,
      retry: DEFAULT_RETRY_POLICY,
      connections: 4,
      service: { protocol: 'v2', url: `${service.url}/`, token: service.token, readable: true, mode: '' },
    },
  );
  process.env.PATH = savedPath;
  expect(found?.key).toBe('model');
  const archive = await fetch(found!.url);
  expect(await archive.text()).toBe('gzip entry');
  // The last lookup named gzip's version; any other was the zstd guess, dropped.
  const lookups = service.calls.filter((c) => c.call === 'GetCacheEntryDownloadURL');
  expect(lookups.at(-1)?.body?.['version']).toBe(gzip);
  expect(lookups.slice(0, -1).every((c) => c.body?.['version'] === zstd)).toBe(true);
});
