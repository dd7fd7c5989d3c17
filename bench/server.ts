// The benchmark's blob server. It runs in a process of its own (spawned by run.ts) so that
// serving bytes does not share the measured client's event loop.
//
// argv: <blob file> [--archive FILE --archive-rate R] [--oci FOLDER] [--hf RATE]. Prints
// {"port":N} once listening (with --hf also "hf":{"hub":URL,"cdn":URL}); exits when its stdin
// closes.
//
// GET /blob?rate=R&slow=TOKEN&slowRate=S
//   rate      cap in bytes/s for each TCP connection (a token bucket per socket, so keep-alive
//             requests on one socket share it); absent = uncapped
// GET /archive  the same, for a cache entry's archive (the restore case)
// POST /twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL
//             the Actions cache service's lookup: any key is found, its signed URL is /archive
//             capped at --archive-rate per connection (what @actions/cache and our restore ask)
//   slow      the first request of this TOKEN whose Range starts after byte 0 crawls at
//             slowRate (default 1 MiB/s) for as long as the client keeps reading it: one
//             "stuck" connection, the tail that a fixed split waits for
//   slowScope `socket`: every later request on that request's TCP connection crawls too (a bad
//             path rather than one bad response); default `request`
// GET /resolve/blob?…  the Hub's resolve/: a 302 to /blob with the same query (the CDN)
// GET /stats  {"hub":N,"cdn":M,"api":K}: resolve/ and /blob requests since the last /stats (with
//             --hf, the Hugging Face hub's resolve/ and CDN requests are added, its API calls
//             are `api`)
// /v2/…       with --oci: an OCI registry holding one artifact whose large layer redirects to
//             /blob (the oci case, see registry-server.ts)
// --hf RATE   the files case: the test suite's fake Hugging Face Hub (revision and tree API,
//             resolve/ answering 302 to its CDN for LFS files, ETag = git sha1 for small ones) on
//             a port of its own, serving hf-repos.ts's two repos cut from the blob; its CDN (a
//             third port) sends every connection at most RATE bytes/s
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type LocalHub, startHub } from '../__tests__/helpers/hub.js';
import {
  commitOf,
  contentOf,
  MANY_FILES_REPO,
  manyFilesLayout,
  ONE_FILE_REPO,
  oneFileLayout,
} from './hf-repos.js';
import { loadRegistry, serveRegistry } from './registry-server.js';
import { bucketFor, CAPPED_CHUNK, send, TokenBucket } from './throttle.js';

const MiB = 1024 * 1024;

/** Requests per role since the last GET /stats. */
const counts = { hub: 0, cdn: 0 };
const slowTaken = new Set<string>();
const slowSockets = new WeakMap<Socket, TokenBucket>();

function parseRange(header: string | undefined, size: number): { start: number; end: number } | null {
  const m = header ? /^bytes=(\d+)-(\d*)$/.exec(header) : null;
  if (!m) return null;
  const start = Number(m[1]);
  const end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
  return start <= end ? { start, end } : { start: -1, end: -1 };
}

async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://bench');
  if (req.method === 'POST' && url.pathname.endsWith('/GetCacheEntryDownloadURL')) return lookup(req, res);
  if (registry && url.pathname.startsWith('/v2/')) return serveRegistry(registry, req, res, url.pathname);
  if (url.pathname === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(takeCounts()));
    return;
  }
  if (url.pathname === '/resolve/blob') {
    counts.hub++;
    return void res.writeHead(302, { location: `/blob${url.search}`, 'content-length': 0 }).end();
  }
  if (url.pathname === '/blob') counts.cdn++;
  const data = url.pathname === '/blob' ? blob : url.pathname === '/archive' ? archive : undefined;
  if (!data) return void res.writeHead(404).end();
  const range = parseRange(req.headers.range, data.length);
  if (range && range.start < 0) {
    return void res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
  }
  const start = range?.start ?? 0;
  const end = (range?.end ?? data.length - 1) + 1;
  const headers: Record<string, string | number> = {
    'accept-ranges': 'bytes',
    'content-type': 'application/octet-stream',
    'content-length': end - start,
  };
  if (range) headers['content-range'] = `bytes ${start}-${end - 1}/${data.length}`;
  res.writeHead(range ? 206 : 200, headers);
  if (req.method === 'HEAD') return void res.end();

  const buckets: TokenBucket[] = [];
  const rate = Number(url.searchParams.get('rate') ?? 0);
  if (rate > 0) buckets.push(bucketFor(req.socket, rate));
  const slow = url.searchParams.get('slow');
  const crawling = slowSockets.get(req.socket);
  if (crawling) {
    buckets.push(crawling);
  } else if (slow && start > 0 && !slowTaken.has(slow)) {
    slowTaken.add(slow);
    const bucket = new TokenBucket(Number(url.searchParams.get('slowRate') ?? MiB), CAPPED_CHUNK);
    if (url.searchParams.get('slowScope') === 'socket') slowSockets.set(req.socket, bucket);
    buckets.push(bucket);
  }
  const began = performance.now();
  await send(res, data, start, end, buckets);
  if (trace) {
    const ms = (performance.now() - began).toFixed(0);
    const port = req.socket.remotePort;
    process.stderr.write(
      `${(began - t0).toFixed(0)} +${ms} ms :${port} ${req.headers.range ?? 'all'}${res.destroyed ? ' (closed early)' : ''}\n`,
    );
  }
}

/** The counts since the last call, the fake Hub's included; resets them. */
function takeCounts(): { hub: number; cdn: number; api: number } {
  const taken = { ...counts, api: 0 };
  counts.hub = 0;
  counts.cdn = 0;
  if (hf) {
    const resolves = hf.hub.requests.filter((r) => r.url.includes('/resolve/')).length;
    taken.hub += resolves;
    taken.api += hf.hub.requests.length - resolves;
    taken.cdn += hf.cdn.requests.length;
    hf.hub.requests.length = 0;
    hf.cdn.requests.length = 0;
  }
  return taken;
}

/** The fake Hub with the files case's repos, its CDN capped at `rate` bytes/s per connection. */
async function startHf(rate: number): Promise<LocalHub> {
  const repos = [
    [MANY_FILES_REPO, manyFilesLayout(blob.length)],
    [ONE_FILE_REPO, oneFileLayout(blob.length)],
  ] as const;
  return startHub(
    repos.map(([id, files]) => ({
      id,
      refs: { main: commitOf(id) },
      commits: {
        [commitOf(id)]: files.map((f) => ({
          path: f.path,
          content: contentOf(f, blob),
          lfs: !('text' in f),
          // The whole blob's digest is in its sidecar (data.ts): no second hash of 1 GiB.
          ...(!('text' in f) && f.start === 0 && f.end === blob.length && blobHex ? { sha256: blobHex } : {}),
        })),
      },
    })),
    {
      // The real Hub lists 1,000 entries a page.
      pageSize: 1000,
      cdnWriter: (req, res, body) => send(res, body, 0, body.length, [bucketFor(req.socket, rate)]),
    },
  );
}

async function lookup(req: IncomingMessage, res: ServerResponse): Promise<void> {
  let body = '';
  for await (const chunk of req) body += String(chunk);
  const key = (JSON.parse(body || '{}') as { key?: string }).key ?? '';
  const port = (server.address() as AddressInfo).port;
  const rate = archiveRate > 0 ? `?rate=${archiveRate}` : '';
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      ok: true,
      signed_download_url: `http://127.0.0.1:${port}/archive${rate}`,
      matched_key: key,
    }),
  );
}

const blobPath = process.argv[2];
/** `--trace` logs every request (start, duration, client port, range) to stderr. */
const trace = process.argv.includes('--trace');
const option = (name: string) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
};
const archivePath = option('--archive');
const archiveRate = Number(option('--archive-rate') ?? 0);
const t0 = performance.now();
if (!blobPath) throw new Error('usage: server.ts <blob file> [--archive FILE --archive-rate R]');
const blob = await readFile(blobPath);
/** The blob's sha256 from the sidecar ensureBlob writes beside it, when there is one. */
const blobHex = (await readFile(`${blobPath}.sha256`, 'utf8').catch(() => '')).split(/\s/)[0] || undefined;
const archive = archivePath ? await readFile(archivePath) : undefined;
const ociFolder = option('--oci');
const registry = ociFolder ? await loadRegistry(ociFolder) : undefined;
const hfRate = option('--hf');
const hf = hfRate ? await startHf(Number(hfRate)) : undefined;
const server = createServer((req, res) => {
  serve(req, res).catch(() => res.destroy());
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const port = (server.address() as AddressInfo).port;
  process.stdout.write(
    `${JSON.stringify({ port, ...(hf ? { hf: { hub: hf.url, cdn: hf.cdnUrl } } : {}) })}\n`,
  );
});
// The harness holds our stdin; when it goes away (exit or crash), so do we.
const stop = () => {
  void hf?.close();
  server.close();
  server.closeAllConnections();
  process.stdin.destroy();
};
process.stdin.on('end', stop).on('close', stop).resume();
