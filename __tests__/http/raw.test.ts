import { randomBytes } from 'node:crypto';
import { createSecureServer } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { isModelPullError } from '../../src/errors.js';
import { readBody } from '../../src/http/body.js';
import { HttpClient, networkError } from '../../src/http/client.js';
import { type BodySink, ForeignAnswer, type RawAnswer, RawBody, RawTransport } from '../../src/http/raw.js';
import { startServer, type TestServer, tempDir } from '../helpers/http.js';
import { type Scripted, scripted } from '../helpers/scripted-server.js';
import { selfSigned } from '../helpers/tls.js';

const BODY = randomBytes(200_000);

/** The 206 answer's head for `body`. */
const head206 = (length: number, extra = '') =>
  `HTTP/1.1 206 Partial Content\r\nContent-Length: ${length}\r\nContent-Range: bytes 0-${length - 1}/${length}\r\n${extra}\r\n`;

/** Reads a pumped body whole (copies, for the test), resolving with it or rejecting with its error. */
function pumpAll(body: RawBody, stopAt = Number.POSITIVE_INFINITY): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let total = 0;
    const sink: BodySink = {
      data(view) {
        const take = view.subarray(0, Math.max(0, stopAt - total));
        parts.push(Buffer.from(take));
        total += take.length;
        return total < stopAt;
      },
      end(error) {
        if (error) reject(error);
        else resolve(Buffer.concat(parts));
      },
    };
    body.pump(sink);
  });
}

describe('the raw reader (issue 17): untrusted answers read in place', () => {
  let server: Scripted | undefined;
  let transport: RawTransport;
  const options = { connections: 4, stallTimeoutMs: 5000 };
  beforeEach(() => {
    transport = new RawTransport(options);
  });
  afterEach(async () => {
    transport.close();
    await server?.close();
    server = undefined;
  });

  const get = (
    path = '/blob',
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ): Promise<RawAnswer> =>
    transport.send(new URL(`${server!.url}${path}`), { range: 'bytes=0-', ...headers }, signal);

  it('reads the answer whatever byte of its head the reads split at', async () => {
    const text = head206(BODY.length, 'X-Long: abcdefghijklmnopqrstuvwxyz\r\n');
    const whole = Buffer.concat([Buffer.from(text, 'latin1'), BODY.subarray(0, 1000)]);
    let split = 0;
    server = await scripted((_request, _n, socket) => {
      // The answer in two writes split at `split`, the second after the first was sent; then the rest.
      socket.write(whole.subarray(0, split), () =>
        setTimeout(() => {
          socket.write(whole.subarray(split));
          socket.write(BODY.subarray(1000));
        }, 1),
      );
    });
    for (split = 1; split < text.length + 2; split++) {
      const answer = await get();
      expect(answer.statusCode).toBe(206);
      expect(answer.headers['x-long']).toBe('abcdefghijklmnopqrstuvwxyz');
      expect((await pumpAll(answer.body)).equals(BODY)).toBe(true);
    }
    // Every answer was read to its end, so one connection carried them all.
    expect(server.connections()).toBe(1);
    expect(server.requests).toHaveLength(text.length + 1);
    expect(server.requests[0]).toBe(
      `GET /blob HTTP/1.1\r\nhost: ${new URL(server.url).host}\r\nrange: bytes=0-\r\nconnection: keep-alive`,
    );
  });

  it('carries N ranges over one kept connection, and closes it with the transport', async () => {
    server = await scripted((request, _n, socket) => {
      const from = Number(/range: bytes=(\d+)-/.exec(request)![1]);
      const part = BODY.subarray(from, from + 10_000);
      socket.write(
        `HTTP/1.1 206 Partial Content\r\nContent-Length: ${part.length}\r\nContent-Range: bytes ${from}-${from + part.length - 1}/${BODY.length}\r\n\r\n`,
      );
      socket.write(part);
    });
    const got: Buffer[] = [];
    for (let from = 0; from < 100_000; from += 10_000) {
      const answer = await transport.send(new URL(`${server.url}/blob`), {
        range: `bytes=${from}-${from + 9999}`,
      });
      got.push(await pumpAll(answer.body));
    }
    expect(Buffer.concat(got).equals(BODY.subarray(0, 100_000))).toBe(true);
    expect([server.requests.length, server.connections()]).toEqual([10, 1]);
    expect(server.open()).toBe(1);
    transport.close();
    // The server sees the kept connection end.
    await new Promise<void>((resolve) => {
      const wait = () => (server!.open() === 0 ? resolve() : setTimeout(wait, 5));
      wait();
    });
  });

  it('never reuses a connection that sent bytes past the body', async () => {
    server = await scripted((_request, _n, socket) => {
      socket.write(`${head206(1000)}`);
      socket.write(Buffer.concat([BODY.subarray(0, 1000), Buffer.from('HTTP/1.1 200 OK\r\n\r\nsmuggled')]));
    });
    for (let i = 0; i < 3; i++) {
      const answer = await get();
      expect((await pumpAll(answer.body)).equals(BODY.subarray(0, 1000))).toBe(true);
    }
    expect([server.requests.length, server.connections()]).toEqual([3, 3]);
  });

  it('fails a body that ends short like node:http (aborted, ECONNRESET), after the bytes that came', async () => {
    server = await scripted((_request, _n, socket) => {
      socket.write(head206(BODY.length));
      socket.end(BODY.subarray(0, 5000));
    });
    const answer = await get();
    const got: Buffer[] = [];
    const error = await new Promise<Error | undefined>((resolve) =>
      answer.body.pump({
        data: (view) => got.push(Buffer.from(view)) > 0,
        end: resolve,
      }),
    );
    expect([error?.message, (error as { code?: string }).code]).toEqual(['aborted', 'ECONNRESET']);
    expect(Buffer.concat(got).equals(BODY.subarray(0, 5000))).toBe(true);
  });

  it('refuses a head larger than 16 KiB, and conflicting lengths, with a clear network error', async () => {
    server = await scripted((request, _n, socket) => {
      if (request.startsWith('GET /big'))
        socket.write(`HTTP/1.1 200 OK\r\nX-Pad: ${'a'.repeat(17 * 1024)}\r\n\r\n`);
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!');
    });
    const big = await get('/big').catch((e: unknown) => e);
    expect(isModelPullError(big, 'ERR_NETWORK')).toBe(true);
    expect((big as Error).message).toBe(
      `network error from ${server.url}/big: malformed HTTP answer (its head is larger than 16 KiB)`,
    );
    const two = await get('/two').catch((e: unknown) => e);
    expect((two as Error).message).toBe(
      `network error from ${server.url}/two: malformed HTTP answer (conflicting content-length headers)`,
    );
  });

  it('stalls when the head, or the next body byte, does not come within the stall timeout', async () => {
    transport.close();
    transport = new RawTransport({ connections: 2, stallTimeoutMs: 200 });
    server = await scripted((request, _n, socket) => {
      if (request.startsWith('GET /silent')) return;
      socket.write(head206(BODY.length));
      socket.write(BODY.subarray(0, 100)); // then nothing
    });
    const silent = await get('/silent').catch((e: unknown) => e);
    expect(isModelPullError(silent, 'ERR_STALLED')).toBe(true);
    expect((silent as Error).message).toBe(`no data from ${server.url}/silent within the stall timeout`);
    const answer = await get('/stops');
    const error = await pumpAll(answer.body).catch((e: unknown) => e);
    expect((error as Error).message).toBe(`no data from ${server.url}/stops within the stall timeout`);
  });

  it('ends the request and its body with the abort signal’s reason', async () => {
    server = await scripted((request, _n, socket) => {
      if (request.startsWith('GET /silent')) return;
      socket.write(head206(BODY.length));
      socket.write(BODY.subarray(0, 100));
    });
    const before = new AbortController();
    const pending = get('/silent', {}, before.signal);
    before.abort(new Error('stop before the head'));
    await expect(pending).rejects.toThrow('stop before the head');
    const during = new AbortController();
    const answer = await get('/body', {}, during.signal);
    const reading = pumpAll(answer.body);
    during.abort(new Error('stop in the body'));
    await expect(reading).rejects.toThrow('stop in the body');
  });

  it('closes the connection when the reader stops early (a thief took the rest)', async () => {
    server = await scripted((_request, _n, socket) => {
      socket.write(head206(BODY.length));
      socket.write(BODY);
    });
    const answer = await get();
    expect((await pumpAll(answer.body, 1234)).equals(BODY.subarray(0, 1234))).toBe(true);
    await get().then((next) => pumpAll(next.body));
    expect([server.requests.length, server.connections()]).toEqual([2, 2]);
  });

  it('bounds the connections per origin: requests beyond wait for one', async () => {
    transport.close();
    transport = new RawTransport({ connections: 2, stallTimeoutMs: 5000 });
    const held: Socket[] = [];
    server = await scripted((_request, _n, socket) => {
      socket.write(head206(10));
      held.push(socket);
    });
    const answers = await Promise.all([get(), get()]);
    const third = get();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.requests).toHaveLength(2);
    for (const socket of held) socket.write(BODY.subarray(0, 10));
    await Promise.all(answers.map((a) => pumpAll(a.body)));
    const last = await third;
    held.at(-1)!.write(BODY.subarray(0, 10));
    expect((await pumpAll(last.body)).equals(BODY.subarray(0, 10))).toBe(true);
    expect([server.requests.length, server.connections()]).toEqual([3, 2]);
  });
});

describe('HttpClient: which requests take the raw reader (issue 17)', () => {
  let server: TestServer;
  let client: HttpClient;
  /** How each request reached the server: "raw" (its host header in lower case) or "node". */
  const how = () => server.requests.map((r) => (r.headers['x-seen-as'] as string) ?? '');
  beforeAll(async () => {
    server = await startServer((req, res) => {
      (req.headers as Record<string, string>)['x-seen-as'] = req.rawHeaders[0] === 'host' ? 'raw' : 'node';
      if (req.url === '/moved') {
        res.writeHead(302, { location: '/blob' });
        return void res.end();
      }
      // An interim answer first: one the raw reader leaves to node:http.
      if (req.url === '/hints') res.writeEarlyHints({ link: '</x>; rel=preload' });
      if (req.url === '/chunked') {
        res.writeHead(206, { 'content-range': `bytes 0-${BODY.length - 1}/${BODY.length}` });
        res.write(BODY.subarray(0, 70_000));
        return void res.end(BODY.subarray(70_000));
      }
      res.writeHead(206, {
        'content-length': BODY.length,
        'content-range': `bytes 0-${BODY.length - 1}/${BODY.length}`,
      });
      res.end(BODY);
    });
  });
  afterAll(() => server.close());
  beforeEach(() => {
    server.requests.length = 0;
    client = new HttpClient({ connections: 4, insecure: false, stallTimeoutMs: 5000, userAgent: 'test' });
  });
  afterEach(() => client.close());

  const direct = { stream: true, direct: true, headers: { range: 'bytes=0-' } } as const;

  it('follows a redirect on it, and reads a chunked body as a stream', async () => {
    const moved = await client.request(`${server.url}/moved`, direct);
    expect(moved.body).toBeInstanceOf(RawBody);
    expect([moved.status, moved.url]).toEqual([206, `${server.url}/blob`]);
    expect((await readBody(moved, 1e6, 'the blob')).equals(BODY)).toBe(true);
    const chunked = await client.request(`${server.url}/chunked`, direct);
    expect((chunked.body as RawBody).length).toBeUndefined();
    expect((await readBody(chunked, 1e6, 'the blob')).equals(BODY)).toBe(true);
    expect(how()).toEqual(['raw', 'raw', 'raw']);
  });

  it('sends again through node:http what it does not read', async () => {
    const answer = await client.request(`${server.url}/hints`, direct);
    expect(answer.body).not.toBeInstanceOf(RawBody);
    expect((await readBody(answer, 1e6, 'the blob')).equals(BODY)).toBe(true);
    expect(how()).toEqual(['raw', 'node']);
  });

  it('never carries credentials, nor a request that did not ask for it', async () => {
    const origin = new URL(server.url).origin;
    const credited = await client.request(`${server.url}/blob`, {
      ...direct,
      credentials: { origin, headers: { authorization: 'Bearer secret' } },
    });
    expect(credited.body).not.toBeInstanceOf(RawBody);
    await readBody(credited, 1e6, 'x');
    // Credentials for another origin are not sent here, so the raw reader may take it.
    const other = await client.request(`${server.url}/blob`, {
      ...direct,
      credentials: { origin: 'https://elsewhere.example', headers: { authorization: 'Bearer secret' } },
    });
    await readBody(other, 1e6, 'x');
    const plain = await client.request(`${server.url}/blob`, {
      stream: true,
      headers: { range: 'bytes=0-' },
    });
    await readBody(plain, 1e6, 'x');
    expect(how()).toEqual(['node', 'raw', 'node']);
    expect(server.requests[1]!.headers.authorization).toBeUndefined();
  });
});

describe('the raw reader over TLS (issue 17)', () => {
  let dir: { path: string; remove(): Promise<void> };
  let other: { path: string; remove(): Promise<void> };
  let cert: { key: string; cert: string };
  /** Trusted (through `ca`) but made out to another name than 127.0.0.1. */
  let misnamed: { key: string; cert: string };
  let server: Scripted | undefined;
  let transport: RawTransport;
  beforeAll(async () => {
    dir = await tempDir();
    other = await tempDir();
    cert = selfSigned(dir.path);
    misnamed = selfSigned(other.path, 'DNS:elsewhere.example');
  });
  afterAll(async () => {
    await dir.remove();
    await other.remove();
  });
  beforeEach(() => {
    transport = new RawTransport({ connections: 4, stallTimeoutMs: 5000, ca: [cert.cert, misnamed.cert] });
  });
  afterEach(async () => {
    transport.close();
    await server?.close();
    server = undefined;
  });

  /** Serves `bytes=from-to` of BODY. */
  const ranges = (request: string, _n: number, socket: Socket) => {
    const [, from, to] = /range: bytes=(\d+)-(\d+)/.exec(request)!.map(Number);
    const part = BODY.subarray(from, to! + 1);
    socket.write(
      `HTTP/1.1 206 Partial Content\r\nContent-Length: ${part.length}\r\nContent-Range: bytes ${from}-${to}/${BODY.length}\r\n\r\n`,
    );
    socket.write(part);
  };

  it('carries N ranges over one kept TLS connection, offering http/1.1, no SNI for an IP', async () => {
    server = await scripted(ranges, { tls: { ...cert, ALPNProtocols: ['http/1.1'] } });
    const got: Buffer[] = [];
    for (let from = 0; from < BODY.length; from += 50_000) {
      const answer = await transport.send(new URL(`${server.url}/blob`), {
        range: `bytes=${from}-${from + 49_999}`,
      });
      got.push(await pumpAll(answer.body));
    }
    expect(Buffer.concat(got).equals(BODY)).toBe(true);
    expect([server.requests.length, server.connections()]).toEqual([4, 1]);
    expect(server.sessions).toEqual([{ tls: true, alpn: 'http/1.1', servername: false }]);
    // The Host header is the URL's, as over plain http.
    expect(server.requests[0]!.split('\r\n')[1]).toBe(`host: ${new URL(server.url).host}`);
  });

  it('keeps, in order, the records decrypted while no reader takes the body', async () => {
    server = await scripted(
      (_request, _n, socket) => {
        socket.write(head206(BODY.length));
        socket.write(BODY);
      },
      { tls: cert },
    );
    for (let i = 0; i < 3; i++) {
      const answer = await transport.send(new URL(`${server.url}/blob`), { range: 'bytes=0-' });
      // A TLS socket hands over every record of its last TCP read, paused or not.
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect((await pumpAll(answer.body)).equals(BODY)).toBe(true);
    }
    expect([server.requests.length, server.connections()]).toEqual([3, 1]);
  });

  it('sends SNI for a host name, and reads a server that speaks no ALPN', async () => {
    server = await scripted(ranges, { tls: cert });
    const url = server.url.replace('127.0.0.1', 'localhost');
    const answer = await transport.send(new URL(`${url}/blob`), { range: 'bytes=0-999' });
    expect((await pumpAll(answer.body)).equals(BODY.subarray(0, 1000))).toBe(true);
    expect(server.sessions).toEqual([{ tls: true, alpn: false, servername: 'localhost' }]);
    expect(server.requests[0]!.split('\r\n')[1]).toBe(`host: ${new URL(url).host}`);
  });

  it('fails an untrusted or misnamed certificate with the text node:https gives, sending nothing', async () => {
    server = await scripted(ranges, { tls: cert });
    const url = `${server.url}/blob`;
    const mapped = async (send: Promise<unknown>) => {
      const error = await send.then(
        () => undefined,
        (e: unknown) => e,
      );
      return networkError(error, url).message;
    };
    const untrusted = `network error from ${url}: its certificate was refused (DEPTH_ZERO_SELF_SIGNED_CERT); if the server uses a private or self-signed CA, trust it with ca-cert (--ca-cert)`;
    const strict = new RawTransport({ connections: 4, stallTimeoutMs: 5000 });
    try {
      expect(await mapped(strict.send(new URL(url), { range: 'bytes=0-9' }))).toBe(untrusted);
    } finally {
      strict.close();
    }
    // The same through the client, on the raw path and on node:https.
    const client = new HttpClient({ connections: 4, insecure: false, stallTimeoutMs: 5000, userAgent: 't' });
    try {
      for (const direct of [true, false]) {
        const request = client.request(url, { stream: true, direct, headers: { range: 'bytes=0-9' } });
        const error = await request.catch((e: unknown) => e);
        expect(isModelPullError(error, 'ERR_TLS')).toBe(true);
        expect((error as Error).message).toBe(untrusted);
      }
    } finally {
      await client.close();
    }
    await server.close();
    server = await scripted(ranges, { tls: misnamed });
    const wrong = `${server.url}/blob`;
    const error = await transport.send(new URL(wrong), { range: 'bytes=0-9' }).catch((e: unknown) => e);
    expect(networkError(error, wrong).message).toBe(
      `network error from ${wrong}: its certificate was refused (ERR_TLS_CERT_ALTNAME_INVALID); if the server uses a private or self-signed CA, trust it with ca-cert (--ca-cert)`,
    );
    const trusting = new HttpClient({
      connections: 4,
      insecure: false,
      stallTimeoutMs: 5000,
      userAgent: 't',
      extraCa: misnamed.cert,
    });
    try {
      const viaNode = await trusting.request(wrong, { stream: true }).catch((e: unknown) => e);
      expect((viaNode as Error).message).toBe(networkError(error, wrong).message);
    } finally {
      await trusting.close();
    }
    expect(server.requests).toEqual([]);
  });

  it('never shares a connection between http and https on the same host and port', async () => {
    server = await scripted(ranges, { tls: cert, plainToo: true });
    const port = new URL(server.url).port;
    for (const scheme of ['http', 'https', 'http', 'https']) {
      const answer = await transport.send(new URL(`${scheme}://127.0.0.1:${port}/blob`), {
        range: 'bytes=0-999',
      });
      expect((await pumpAll(answer.body)).equals(BODY.subarray(0, 1000))).toBe(true);
    }
    expect([server.requests.length, server.connections()]).toEqual([4, 2]);
    expect(server.sessions.map((s) => s.tls)).toEqual([false, true]);
  });

  it('leaves an h2-only server to node:https, which answers as it does today', async () => {
    const h2 = createSecureServer(
      // It keeps an HTTP/1 connection for this long after its 403 (10 s by default).
      { ...cert, allowHTTP1: false, unknownProtocolTimeout: 100 },
      (_req, res) => res.end('h2'),
    );
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(h2.address() as AddressInfo).port}/blob`;
    const client = new HttpClient({
      connections: 4,
      insecure: false,
      stallTimeoutMs: 5000,
      userAgent: 't',
      extraCa: cert.cert,
    });
    try {
      const refused = await transport.send(new URL(url), { range: 'bytes=0-9' }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ForeignAnswer);
      const raw = await client.request(url, { stream: true, direct: true, headers: { range: 'bytes=0-9' } });
      const native = await client.request(url, { stream: true, headers: { range: 'bytes=0-9' } });
      expect(raw.body).not.toBeInstanceOf(RawBody);
      // node:http's answer from Node's h2-only server, both ways.
      expect([raw.status, native.status]).toEqual([403, 403]);
      await Promise.all([raw.body.dump(), native.body.dump()]);
    } finally {
      await client.close();
      await new Promise((resolve) => h2.close(resolve));
    }
  });

  it('reads from a server that offers h2 and http/1.1 over http/1.1', async () => {
    const both = createSecureServer({ ...cert, allowHTTP1: true }, (req, res) => {
      res.writeHead(206, { 'content-length': 1000, 'content-range': `bytes 0-999/${BODY.length}` });
      res.end(BODY.subarray(0, 1000));
      expect(req.httpVersion).toBe('1.1');
    });
    await new Promise<void>((resolve) => both.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://127.0.0.1:${(both.address() as AddressInfo).port}/blob`;
      const answer = await transport.send(new URL(url), { range: 'bytes=0-999' });
      expect((await pumpAll(answer.body)).equals(BODY.subarray(0, 1000))).toBe(true);
    } finally {
      transport.close();
      await new Promise((resolve) => both.close(resolve));
    }
  });

  it('stalls, and fails a short body like node:http, over TLS', async () => {
    transport.close();
    transport = new RawTransport({ connections: 2, stallTimeoutMs: 200, ca: [cert.cert] });
    server = await scripted(
      (request, _n, socket) => {
        if (request.startsWith('GET /silent')) return;
        socket.write(head206(BODY.length));
        if (request.startsWith('GET /short')) socket.end(BODY.subarray(0, 5000));
        else socket.write(BODY.subarray(0, 100)); // then nothing
      },
      { tls: cert },
    );
    const silent = await transport
      .send(new URL(`${server.url}/silent`), { range: 'bytes=0-' })
      .catch((e: unknown) => e);
    expect(isModelPullError(silent, 'ERR_STALLED')).toBe(true);
    expect((silent as Error).message).toBe(`no data from ${server.url}/silent within the stall timeout`);
    const stops = await transport.send(new URL(`${server.url}/stops`), { range: 'bytes=0-' });
    const stalled = await pumpAll(stops.body).catch((e: unknown) => e);
    expect((stalled as Error).message).toBe(`no data from ${server.url}/stops within the stall timeout`);
    const short = await transport.send(new URL(`${server.url}/short`), { range: 'bytes=0-' });
    const got: Buffer[] = [];
    const error = await new Promise<Error | undefined>((resolve) =>
      short.body.pump({ data: (view) => got.push(Buffer.from(view)) > 0, end: resolve }),
    );
    expect([error?.message, (error as { code?: string }).code]).toEqual(['aborted', 'ECONNRESET']);
    expect(Buffer.concat(got).equals(BODY.subarray(0, 5000))).toBe(true);
  });
});
