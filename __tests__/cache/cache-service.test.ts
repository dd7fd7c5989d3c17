import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockBlobClient } from '@azure/storage-blob';
import { type CacheService, startCacheService } from '../helpers/cache-service.js';
import { tempDir } from '../helpers/http.js';
import { sha256 } from './env.js';

/**
 * The parts of the local service that the real @actions/cache client does not reach with small
 * archives: staged-block uploads (it switches to them above 128 MiB), ranged reads, signatures.
 * Driven with the same Azure SDK call the library makes, with small thresholds.
 */
/** The fields of the three Twirp answers and of a Twirp error. */
interface Answer {
  ok?: boolean;
  signed_upload_url?: string;
  signed_download_url?: string;
  matched_key?: string;
  entry_id?: string;
  code?: string;
  msg?: string;
}

const SERVICE = '/twirp/github.actions.results.api.v1.CacheService/';

let service: CacheService;
beforeAll(async () => {
  service = await startCacheService();
});
afterAll(async () => {
  await service.close();
});
beforeEach(() => {
  service.setFault(undefined);
  service.calls.length = 0;
});

async function twirp(
  method: string,
  body: object,
  token = service.token,
): Promise<{ status: number; json: Answer }> {
  const res = await fetch(`${service.url}${SERVICE}${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Answer };
}

test('an archive uploaded in staged blocks is assembled in list order, then read back by range', async () => {
  const dir = await tempDir();
  try {
    const data = randomBytes(10_000);
    const file = join(dir.path, 'cache.tzst');
    await writeFile(file, data);
    const created = await twirp('CreateCacheEntry', { key: 'blocks', version: 'v' });
    expect(created.json.ok).toBe(true);
    const blob = new BlockBlobClient(String(created.json.signed_upload_url));
    await blob.uploadFile(file, { blockSize: 1024, maxSingleShotSize: 4096, concurrency: 4 });
    expect(service.count('PUT block')).toBe(10);
    expect(service.count('PUT blocklist')).toBe(1);
    expect(service.count('PUT blob')).toBe(0);

    const done = await twirp('FinalizeCacheEntryUpload', {
      key: 'blocks',
      version: 'v',
      size_bytes: '10000',
    });
    expect(done.json).toEqual({ ok: true, entry_id: expect.any(String) });
    expect(sha256(service.entry('blocks')!.archive!)).toBe(sha256(data));

    const found = await twirp('GetCacheEntryDownloadURL', { key: 'blocks', version: 'v' });
    expect(found.json).toMatchObject({ ok: true, matched_key: 'blocks' });
    const part = await fetch(String(found.json.signed_download_url), {
      headers: { range: 'bytes=1000-1999' },
    });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 1000-1999/10000');
    expect(sha256(Buffer.from(await part.arrayBuffer()))).toBe(sha256(data.subarray(1000, 2000)));
    const head = await fetch(String(found.json.signed_download_url), { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe('10000');
  } finally {
    await dir.remove();
  }
});

test('finalize checks the size, lookups check the version, signatures are checked', async () => {
  const created = await twirp('CreateCacheEntry', { key: 'sig', version: 'v1' });
  const put = await fetch(String(created.json.signed_upload_url), {
    method: 'PUT',
    headers: { 'x-ms-blob-type': 'BlockBlob' },
    body: 'abc',
  });
  expect(put.status).toBe(201);
  expect(
    (await twirp('FinalizeCacheEntryUpload', { key: 'sig', version: 'v1', size_bytes: '4' })).json.ok,
  ).toBe(false);
  expect(
    (await twirp('FinalizeCacheEntryUpload', { key: 'sig', version: 'v1', size_bytes: '3' })).json.ok,
  ).toBe(true);
  expect((await twirp('GetCacheEntryDownloadURL', { key: 'sig', version: 'v2' })).json).toEqual({
    ok: false,
  });
  const found = await twirp('GetCacheEntryDownloadURL', { key: 'sig', version: 'v1' });
  const url = new URL(String(found.json.signed_download_url));
  expect(await (await fetch(url)).text()).toBe('abc');
  url.searchParams.set('sig', 'forged');
  const forged = await fetch(url);
  expect(forged.status).toBe(403);
  expect(forged.headers.get('x-ms-error-code')).toBe('AuthenticationFailed');
  const wrongToken = await twirp('GetCacheEntryDownloadURL', { key: 'sig', version: 'v1' }, 'other');
  expect(wrongToken).toEqual({
    status: 401,
    json: { code: 'unauthenticated', msg: 'invalid runtime token' },
  });
});

test('restore keys match exactly first, then by prefix, newest first; the primary key only exactly', async () => {
  for (const key of ['app-1', 'app-2']) {
    const created = await twirp('CreateCacheEntry', { key, version: 'v' });
    await fetch(String(created.json.signed_upload_url), {
      method: 'PUT',
      headers: { 'x-ms-blob-type': 'BlockBlob' },
      body: key,
    });
    await twirp('FinalizeCacheEntryUpload', { key, version: 'v', size_bytes: String(key.length) });
  }
  const lookup = async (key: string, restore_keys?: string[]) =>
    (await twirp('GetCacheEntryDownloadURL', { key, version: 'v', restore_keys })).json.matched_key;
  expect(await lookup('app')).toBeUndefined();
  expect(await lookup('app', ['app-'])).toBe('app-2');
  expect(await lookup('app', ['app-1', 'app-'])).toBe('app-1');
});
