import { createServer as createHttpsServer, type Server } from 'node:https';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { isModelPullError } from '../../src/errors.js';
import { readJson, readText } from '../../src/http/body.js';
import { HttpClient } from '../../src/http/client.js';
import { DEFAULT_RETRY_POLICY, type RetryEvent, withRetries } from '../../src/http/retry.js';
import { type ManualClock, manualClock } from '../helpers/clock.js';
import { startServer, type TestServer, tempDir } from '../helpers/http.js';
import { selfSigned } from '../helpers/tls.js';

const base = { connections: 4, insecure: false, stallTimeoutMs: 5000, userAgent: 'test' };

describe('HttpClient', () => {
  let dir: { path: string; remove(): Promise<void> };
  let tls: { key: string; cert: string };
  let https: Server;
  let httpsPort: number;
  let proxy: TestServer;
  const tunnels: string[] = [];
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    dir = await tempDir();
    tls = selfSigned(dir.path);
    https = createHttpsServer(tls, (req, res) => {
      res.end(JSON.stringify({ path: req.url, authorization: req.headers.authorization ?? null }));
    });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    httpsPort = (https.address() as AddressInfo).port;
    // A forward proxy that only tunnels (CONNECT), recording where each tunnel went.
    proxy = await startServer((_req, res) => {
      res.writeHead(405).end();
    });
    proxy.server.on('connect', (req, client: Socket) => {
      tunnels.push(req.url ?? '');
      const [host, port] = (req.url ?? '').split(':');
      const upstream = connect(Number(port), host === 'localhost' ? '127.0.0.1' : host!, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.pipe(client).pipe(upstream);
      });
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => s.destroy());
      }
    });
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    https.closeAllConnections();
    await new Promise((resolve) => https.close(resolve));
    await proxy.close();
    await dir.remove();
  });

  it('refuses a server its CA does not know, and trusts it with ca-cert', async () => {
    const url = `https://127.0.0.1:${httpsPort}/x`;
    const strict = new HttpClient(base);
    await expect(strict.request(url)).rejects.toThrow(`network error from ${url}:`);
    await strict.close();
    const trusting = new HttpClient({ ...base, extraCa: tls.cert });
    const response = await trusting.request(url);
    expect(await readJson(response, 4096, 'answer')).toEqual({ path: '/x', authorization: null });
    await trusting.close();
  });

  it('fails at once on a certificate it cannot verify, pointing at ca-cert (issue 11)', async () => {
    const url = `https://127.0.0.1:${httpsPort}/x`;
    const strict = new HttpClient(base);
    const events: RetryEvent[] = [];
    try {
      const error = await withRetries(() => strict.request(url), {
        ...DEFAULT_RETRY_POLICY,
        onRetry: (e) => events.push(e),
      }).catch((e: unknown) => e);
      expect(isModelPullError(error, 'ERR_TLS')).toBe(true);
      expect((error as Error).message).toBe(
        `network error from ${url}: its certificate was refused (DEPTH_ZERO_SELF_SIGNED_CERT); if the server uses a private or self-signed CA, trust it with ca-cert (--ca-cert)`,
      );
      expect(events).toEqual([]);
    } finally {
      await strict.close();
    }
  });

  it('goes through HTTPS_PROXY unless NO_PROXY names the host', async () => {
    tunnels.length = 0;
    const client = new HttpClient({
      ...base,
      extraCa: tls.cert,
      proxy: { httpsProxy: proxy.url, noProxy: '127.0.0.1' },
    });
    try {
      const viaProxy = await client.request(`https://localhost:${httpsPort}/proxied`);
      expect(await readJson(viaProxy, 4096, 'answer')).toEqual({ path: '/proxied', authorization: null });
      expect(tunnels).toEqual([`localhost:${httpsPort}`]);
      const direct = await client.request(`https://127.0.0.1:${httpsPort}/direct`);
      expect(await readJson(direct, 4096, 'answer')).toEqual({ path: '/direct', authorization: null });
      expect(tunnels).toEqual([`localhost:${httpsPort}`]);
    } finally {
      await client.close();
    }
  });

  it('sends credentials only to their origin, also across redirects', async () => {
    const other = await startServer((req, res) => {
      res.end(
        JSON.stringify({
          authorization: req.headers.authorization ?? null,
          cookie: req.headers.cookie ?? null,
        }),
      );
    });
    const origin = await startServer((req, res) => {
      if (req.url === '/hop') return void res.writeHead(302, { location: '/same' }).end();
      if (req.url === '/same') return void res.writeHead(307, { location: `${other.url}/cdn` }).end();
      res.writeHead(404).end();
    });
    const client = new HttpClient(base);
    try {
      const response = await client.request(`${origin.url}/hop`, {
        credentials: {
          origin: origin.origin,
          headers: { authorization: 'Bearer s3cret', cookie: 'session=1' },
        },
      });
      expect(response.crossedOrigin).toBe(true);
      expect(response.url).toBe(`${other.url}/cdn`);
      expect(await readJson(response, 4096, 'answer')).toEqual({ authorization: null, cookie: null });
      // The same-origin hop kept them; the other origin never saw them.
      expect(origin.requests.map((r) => r.headers.authorization)).toEqual(['Bearer s3cret', 'Bearer s3cret']);
      expect(other.requests.map((r) => r.headers.authorization)).toEqual([undefined]);
    } finally {
      await client.close();
      await Promise.all([other.close(), origin.close()]);
    }
  });

  it.each([
    [
      'http://example.com/f',
      'refusing plain http to example.com (http://example.com/f); use https or set insecure',
    ],
    ['ftp://example.com/f', 'unsupported URL scheme ftp: in ftp://example.com/f'],
  ])('refuses %s', async (url, message) => {
    const client = new HttpClient(base);
    await expect(client.request(url)).rejects.toThrow(message);
    await client.close();
  });

  it('allows plain http to loopback names and with insecure', () => {
    const client = new HttpClient(base);
    for (const url of ['http://127.0.0.1:1/', 'http://localhost:1/', 'http://[::1]:1/']) {
      expect(client.checkUrl(url).toString()).toBe(url);
    }
    expect(new HttpClient({ ...base, insecure: true }).checkUrl('http://example.com/').host).toBe(
      'example.com',
    );
  });
});

describe('uploads', () => {
  /** 16 chunks of 64 KiB, each after `gap(i)` ms on `clock`, once whatever was due then has run. */
  async function* slowly(clock: ManualClock, gap: (i: number) => number) {
    for (let i = 0; i < 16; i++) {
      clock.advance(gap(i));
      await new Promise((r) => setImmediate(r));
      yield Buffer.alloc(64 * 1024, i);
    }
  }
  const chunks = (n: number, size: number) =>
    Readable.from(
      (function* () {
        for (let i = 0; i < n; i++) yield Buffer.alloc(size, i);
      })(),
    );

  test('an upload that takes longer than the stall timeout goes through while the server reads', async () => {
    // The watchdog runs on a clock the test steps: 200 ms pass before each 64 KiB chunk is
    // handed over, 3.2 s in all, more than the 250 ms stall timeout but never that long
    // without a chunk. The server also takes each chunk 60 ms apart in real time, so the upload
    // outlasts 250 ms of wall clock too, which undici's own headers timeout would have cut.
    const clock = manualClock();
    const body = Readable.from(slowly(clock, () => 200));
    const server = await startServer(async (req, res) => {
      let n = 0;
      for await (const c of req) {
        n += (c as Buffer).length;
        req.pause();
        await new Promise((r) => setTimeout(r, 60));
        req.resume();
      }
      res.writeHead(201).end(String(n));
    });
    const client = new HttpClient({ ...base, stallTimeoutMs: 250 }, clock);
    try {
      const answer = await client.request(`${server.url}/up`, {
        method: 'PUT',
        headers: { 'content-length': String(16 * 64 * 1024) },
        body,
      });
      expect([answer.status, await readText(answer, 4096, 'answer')]).toEqual([201, String(16 * 64 * 1024)]);
      expect(clock.now() - 1_000_000).toBe(16 * 200);
    } finally {
      await client.close();
      await server.close();
    }
  });

  test('a chunk that comes too late on that clock is a stall', async () => {
    // The same upload, but the eighth chunk comes 250 ms after the seventh: ERR_STALLED,
    // however fast or slow the machine is.
    const clock = manualClock();
    const body = Readable.from(slowly(clock, (i) => (i === 7 ? 250 : 200)));
    const server = await startServer(async (req, res) => {
      for await (const _ of req);
      res.writeHead(201).end();
    });
    const client = new HttpClient({ ...base, stallTimeoutMs: 250 }, clock);
    try {
      const stalled = client.request(`${server.url}/up`, {
        method: 'PUT',
        headers: { 'content-length': String(16 * 64 * 1024) },
        body,
      });
      await expect(stalled).rejects.toMatchObject({
        code: 'ERR_STALLED',
        message: `${server.url}/up took no upload bytes within the stall timeout`,
      });
    } finally {
      await client.close();
      await server.close();
    }
  });

  test('a server that stops taking bytes is a stall (ERR_STALLED), and a body is never redirected', async () => {
    const server = await startServer((req, res) => {
      if (req.url === '/moved') return void res.writeHead(307, { location: '/elsewhere' }).end();
      // Reads nothing, answers nothing.
      req.pause();
    });
    const client = new HttpClient({ ...base, stallTimeoutMs: 200 });
    try {
      const stalled = client.request(`${server.url}/up`, {
        method: 'PATCH',
        headers: { 'content-length': String(64 * 1024 * 1024) },
        body: chunks(64, 1024 * 1024),
      });
      await expect(stalled).rejects.toMatchObject({ code: 'ERR_STALLED' });
      const moved = await client.request(`${server.url}/moved`, { method: 'PUT', body: 'x' });
      expect([moved.status, moved.url]).toEqual([307, `${server.url}/moved`]);
      await moved.body.dump();
      expect(server.requests.map((r) => r.url)).toEqual(['/up', '/moved']);
    } finally {
      await client.close();
      await server.close();
    }
  });
});

describe('streams of model bytes (node:http)', () => {
  const blob = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < blob.length; i++) blob[i] = (i * 7919) >>> 3;
  const rangeServer = () =>
    startServer((req, res) => {
      const [, from, to] = /bytes=(\d+)-(\d+)/.exec(String(req.headers.range)) ?? [];
      const start = Number(from);
      const end = Number(to) + 1;
      res.writeHead(206, {
        'content-length': String(end - start),
        'content-range': `bytes ${start}-${end - 1}/${blob.length}`,
      });
      res.end(blob.subarray(start, end));
    });
  const read = async (body: Readable) => {
    const chunks: Buffer[] = [];
    // Copied as they come: the client frees socket reads once parsed, never a chunk it handed out.
    for await (const chunk of body) chunks.push(Buffer.from(chunk as Buffer));
    return Buffer.concat(chunks);
  };

  it('delivers every byte over kept-alive connections, request after request', async () => {
    const server = await rangeServer();
    const sockets = new Set<unknown>();
    server.server.on('connection', (s) => sockets.add(s));
    const client = new HttpClient({ ...base, connections: 2 });
    try {
      const step = 300_001;
      const parts = await Promise.all(
        [0, 1].map(async (lane) => {
          const got: Buffer[] = [];
          for (let start = lane * step; start < blob.length; start += 2 * step) {
            const end = Math.min(blob.length, start + step);
            const answer = await client.request(`${server.url}/blob`, {
              headers: { range: `bytes=${start}-${end - 1}` },
              stream: true,
            });
            expect(answer.status).toBe(206);
            got.push(await read(answer.body));
          }
          return got;
        }),
      );
      const joined: Buffer[] = [];
      for (let i = 0; i < Math.max(parts[0]!.length, parts[1]!.length); i++) {
        if (parts[0]![i]) joined.push(parts[0]![i]!);
        if (parts[1]![i]) joined.push(parts[1]![i]!);
      }
      expect(Buffer.concat(joined).equals(blob)).toBe(true);
      expect(server.requests.length).toBe(Math.ceil(blob.length / step));
      expect(sockets.size).toBe(2);
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('is not stalled while its reader pauses it, and is when the server goes silent', async () => {
    const server = await startServer((req, res) => {
      res.writeHead(200, { 'content-length': String(blob.length) });
      if (req.url === '/silent') return void res.write(blob.subarray(0, 1000));
      res.end(blob);
    });
    const client = new HttpClient({ ...base, stallTimeoutMs: 200 });
    try {
      const answer = await client.request(`${server.url}/blob`, { stream: true });
      answer.body.pause();
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect((await read(answer.body)).equals(blob)).toBe(true);
      const silent = await client.request(`${server.url}/silent`, { stream: true });
      await expect(read(silent.body)).rejects.toMatchObject({
        code: 'ERR_STALLED',
        message: `no data from ${server.url}/silent within the stall timeout`,
      });
    } finally {
      await client.close();
      await server.close();
    }
  });
});

describe('requests with a small body (node:http)', () => {
  /** Echoes what it received; `/moved` redirects, `/silent` reads the body and never answers. */
  const echoServer = () =>
    startServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      if (req.url === '/moved') return void res.writeHead(307, { location: '/elsewhere' }).end();
      if (req.url === '/silent') return;
      res.end(
        JSON.stringify({
          method: req.method,
          body: Buffer.concat(chunks).toString(),
          length: req.headers['content-length'] ?? null,
          chunked: req.headers['transfer-encoding'] ?? null,
          authorization: req.headers.authorization ?? null,
        }),
      );
    });

  it('sends the body whole with its length, on the connection GETs use, credentials to their origin only', async () => {
    const server = await echoServer();
    const sockets = new Set<unknown>();
    server.server.on('connection', (s) => sockets.add(s));
    const client = new HttpClient(base);
    const credentials = { origin: server.origin, headers: { authorization: 'Bearer s3cret' } };
    try {
      const json = '{"key":"k","restore_keys":[],"version":"é"}';
      const posted = await client.request(`${server.url}/twirp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: json,
        credentials,
      });
      expect(await readJson(posted, 4096, 'answer')).toEqual({
        method: 'POST',
        body: json,
        length: String(Buffer.byteLength(json)),
        chunked: null,
        authorization: 'Bearer s3cret',
      });
      const got = await client.request(`${server.url}/get`);
      expect(await readJson(got, 4096, 'answer')).toMatchObject({ method: 'GET', body: '' });
      const put = await client.request(`${server.url}/put`, { method: 'PUT', body: Buffer.from([1, 2, 3]) });
      expect(await readJson(put, 4096, 'answer')).toMatchObject({ method: 'PUT', length: '3' });
      const other = await client.request(`${server.url}/post`, {
        method: 'POST',
        body: '{}',
        credentials: { ...credentials, origin: 'https://elsewhere.example' },
      });
      expect(await readJson(other, 4096, 'answer')).toMatchObject({ authorization: null });
      // One kept-alive connection carried all four: no second client (undici) was involved.
      expect(sockets.size).toBe(1);
      // A body is sent once, to the URL it was meant for: the redirect itself is the answer.
      const moved = await client.request(`${server.url}/moved`, { method: 'POST', body: '{}' });
      expect([moved.status, moved.url]).toEqual([307, `${server.url}/moved`]);
      await moved.body.dump();
      expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
        'POST /twirp',
        'GET /get',
        'PUT /put',
        'POST /post',
        'POST /moved',
      ]);
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('is stalled when the server takes the body and never answers', async () => {
    const server = await echoServer();
    const client = new HttpClient({ ...base, stallTimeoutMs: 200 });
    try {
      await expect(
        client.request(`${server.url}/silent`, { method: 'POST', body: '{}' }),
      ).rejects.toMatchObject({
        code: 'ERR_STALLED',
        message: `no data from ${server.url}/silent within the stall timeout`,
      });
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('ends an answer that trickles past the whole-request deadline (ERR_TOO_SLOW)', async () => {
    const clock = manualClock();
    let began: () => void = () => undefined;
    const answering = new Promise<void>((resolve) => {
      began = resolve;
    });
    const server = await startServer(async (req, res) => {
      for await (const _ of req);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(' ', () => began());
      const timer = setInterval(() => res.write(' '), 20);
      res.on('close', () => clearInterval(timer));
    });
    const client = new HttpClient({ ...base, requestDeadlineMs: 300 }, clock);
    try {
      const answer = await client.request(`${server.url}/twirp`, { method: 'POST', body: '{}' });
      await answering;
      expect(clock.pending()).toEqual([300]);
      clock.advance(300);
      const error = await readText(answer, 4096, 'answer').catch((e: unknown) => e);
      expect(isModelPullError(error, 'ERR_TOO_SLOW')).toBe(true);
      expect((error as Error).message).toBe(`no complete answer from ${server.url}/twirp within 0.3 s`);
    } finally {
      await client.close();
      await server.close();
    }
  });
});
