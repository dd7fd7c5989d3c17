// The benchmark's blob server. It runs in a process of its own (spawned by run.ts) so that
// serving bytes does not share the measured client's event loop.
//
// argv: <blob file> [--archive FILE --archive-rate R] [--oci FOLDER]. Prints {"port":N} once
// listening; exits when its stdin closes.
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
// GET /stats  {"hub":N,"cdn":M}: resolve/ and /blob requests since the last /stats
// /v2/…       with --oci: an OCI registry holding one artifact whose large layer redirects to
//             /blob (the oci case, see registry-server.ts)
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { loadRegistry, serveRegistry } from './registry-server.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CAPPED_CHUNK = 64 * KiB;
const UNCAPPED_CHUNK = 1 * MiB;

/** Tokens are bytes; refilled at `rate` per second up to `burst`, so a cap holds over ~16 ms. */
class TokenBucket {
  private tokens: number;
  private last = performance.now();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** Resolves once `n` bytes may be sent. */
  async take(n: number): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
      this.last = now;
      if (this.tokens >= n) {
        this.tokens -= n;
        return;
      }
      const waitMs = ((n - this.tokens) * 1000) / this.rate;
      await new Promise((resolve) => setTimeout(resolve, Math.max(1, Math.ceil(waitMs))));
    }
  }
}

/** Requests per role since the last GET /stats. */
const counts = { hub: 0, cdn: 0 };
const socketBuckets = new WeakMap<Socket, TokenBucket>();
const slowTaken = new Set<string>();
const slowSockets = new WeakMap<Socket, TokenBucket>();

function bucketFor(socket: Socket, rate: number): TokenBucket {
  let bucket = socketBuckets.get(socket);
  if (!bucket) {
    bucket = new TokenBucket(rate, Math.max(CAPPED_CHUNK, rate / 64));
    socketBuckets.set(socket, bucket);
  }
  return bucket;
}

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
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(counts));
    counts.hub = 0;
    counts.cdn = 0;
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

async function send(
  res: ServerResponse,
  data: Buffer,
  start: number,
  end: number,
  buckets: readonly TokenBucket[],
): Promise<void> {
  const chunk = buckets.length > 0 ? CAPPED_CHUNK : UNCAPPED_CHUNK;
  for (let offset = start; offset < end; ) {
    if (res.destroyed) return;
    const n = Math.min(chunk, end - offset);
    for (const bucket of buckets) await bucket.take(n);
    if (res.destroyed) return;
    const ok = res.write(data.subarray(offset, offset + n));
    offset += n;
    if (!ok) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
  }
  res.end();
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
const archive = archivePath ? await readFile(archivePath) : undefined;
const ociFolder = option('--oci');
const registry = ociFolder ? await loadRegistry(ociFolder) : undefined;
const server = createServer((req, res) => {
  serve(req, res).catch(() => res.destroy());
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
// The harness holds our stdin; when it goes away (exit or crash), so do we.
const stop = () => {
  server.close();
  server.closeAllConnections();
  process.stdin.destroy();
};
process.stdin.on('end', stop).on('close', stop).resume();
