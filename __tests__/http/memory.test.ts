import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { startTs } from '../helpers/child.js';
import { startServer, type TestServer, tempDir } from '../helpers/http.js';

/**
 * Every answer read into memory is capped for its purpose (issue 10 item 5): a server that
 * streams without end (a Hub revision, a registry token realm, an error body, a release's
 * sha256sum.txt, the cache service) gets a clear error, and the process's peak memory stays
 * small. Each case runs the real caller in a child process and reads its peak RSS there.
 */
const MiB = 1024 * 1024;
/** Far beyond any limit: a reader without one would hold all of it in memory. */
const ENDLESS = 768 * MiB;
const CHILD = fileURLToPath(new URL('./fixtures/memory-child.ts', import.meta.url));

let server: TestServer;
let status = 200;
let sent = 0;
beforeAll(async () => {
  const chunk = Buffer.alloc(256 * 1024, 0x20);
  server = await startServer((_req, res: ServerResponse) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    const pump = () => {
      while (!res.destroyed && sent < ENDLESS) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
});
afterAll(() => server.close());

it.each([
  [
    'hub-json',
    200,
    'ERR_TOO_LARGE',
    (u: string) =>
      `the Hub answer from ${u}/api/models/o/r/revision/main is larger than 16.0 MiB; refusing to read it`,
  ],
  [
    'token-realm',
    200,
    'ERR_TOO_LARGE',
    (u: string) => `the token answer from ${u}/token?… is larger than 1.0 MiB; refusing to read it`,
  ],
  [
    'error-body',
    503,
    'ERR_RETRIES_EXHAUSTED',
    (u: string) => `blob: giving up after 1 failed attempts: HTTP 503 from ${u}/blob`,
  ],
  [
    'release-checksums',
    200,
    'ERR_TOO_LARGE',
    (u: string) =>
      `sha256sum.txt from ${u}/download/v0.14.2/sha256sum.txt is larger than 1.0 MiB; refusing to read it`,
  ],
  [
    'cache-lookup',
    200,
    'ERR_TOO_LARGE',
    (u: string) =>
      `the cache service's GetCacheEntryDownloadURL answer from ${u}/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL is larger than 64.0 KiB; refusing to read it`,
  ],
])(
  '%s: a body without end is refused and memory stays under 200 MiB',
  async (scenario, code, errorCode, message) => {
    status = code;
    sent = 0;
    const work = await tempDir();
    try {
      const child = await startTs(CHILD, [scenario, server.url], {
        env: { ...process.env, WORK_DIR: work.path },
        timeoutMs: 60_000,
      }).done;
      expect(child.code).toBe(0);
      const result = JSON.parse(child.stdout) as { code?: string; message: string; peakRssMiB: number };
      expect(result.code).toBe(errorCode);
      expect(result.message).toBe(message(server.url));
      expect(result.peakRssMiB).toBeLessThan(200);
      // It stopped reading long before the end (what the kernel's socket buffers took is all).
      expect(sent).toBeLessThan(128 * MiB);
    } finally {
      await work.remove();
    }
  },
);
