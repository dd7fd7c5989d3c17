import { once } from 'node:events';
import { isModelPullError } from '../../src/errors.js';
import { BODY_LIMITS, readJson, readText, statusError } from '../../src/http/body.js';
import { HttpClient } from '../../src/http/client.js';
import { type RetryEvent, withRetries } from '../../src/http/retry.js';
import { manualClock } from '../helpers/clock.js';
import { FAST_RETRY } from '../helpers/engine.js';
import { startServer, type TestServer } from '../helpers/http.js';

const base = { connections: 4, insecure: false, stallTimeoutMs: 5000, userAgent: 'test' };
const MiB = 1024 * 1024;

/** Writes `chunk` as fast as the client reads, until `limit` bytes or the client goes. */
function endless(res: import('node:http').ServerResponse, chunk: Buffer, limit = 64 * MiB): void {
  let sent = 0;
  const pump = () => {
    while (!res.destroyed && sent < limit) {
      sent += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
}

describe('small answers are bounded in size and time (issue 10)', () => {
  let server: TestServer;
  let client: HttpClient;
  let handler: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void;
  beforeAll(async () => {
    server = await startServer((req, res) => handler(req, res));
  });
  afterAll(() => server.close());
  beforeEach(() => {
    server.requests.length = 0;
    client = new HttpClient(base);
  });
  afterEach(() => client.close());

  it('ends a JSON answer that trickles past the deadline, then retries it and gives up clearly', async () => {
    // The deadline and the retry waits run on a clock the test steps, each once the request (or
    // the wait) has begun: nothing depends on how fast this machine answers.
    const clock = manualClock();
    const slow = new HttpClient({ ...base, requestDeadlineMs: 300 }, clock);
    const trickling: (() => void)[] = [];
    const answered: Promise<void>[] = [];
    for (let i = 0; i < 3; i++) answered.push(new Promise<void>((resolve) => trickling.push(resolve)));
    let n = 0;
    handler = (_req, res) => {
      const began = trickling[n++];
      res.writeHead(200, { 'content-type': 'application/json' });
      // A byte every 20 ms never trips the stall timeout (5 s); the answer never ends.
      res.write(' ', () => began?.());
      const timer = setInterval(() => res.write(' '), 20);
      res.on('close', () => clearInterval(timer));
    };
    const events: RetryEvent[] = [];
    const url = `${server.url}/api/models/a/b/revision/main`;
    try {
      const outcome = withRetries(
        () => slow.getJson(url),
        { ...FAST_RETRY, retries: 2, onRetry: (e) => events.push(e) },
        { clock },
      ).catch((e: unknown) => e);
      for (let attempt = 0; attempt < 3; attempt++) {
        await answered[attempt];
        expect(clock.pending()).toEqual([300]); // only this request's deadline runs
        clock.advance(300);
        if (attempt < 2) {
          await clock.waiting(); // the retry wait
          clock.advance(FAST_RETRY.maxDelayMs);
        }
      }
      const error = await outcome;
      expect(isModelPullError(error, 'ERR_TOO_SLOW')).toBe(true);
      expect((error as Error).message).toBe(`no complete answer from ${url} within 0.3 s`);
      expect(server.requests).toHaveLength(3);
      expect(events.map((e) => [e.host, e.cause, e.attempt, e.max])).toEqual([
        [new URL(server.url).host, 'too slow', 1, 2],
        [new URL(server.url).host, 'too slow', 2, 2],
      ]);
      expect(clock.pending()).toEqual([]);
    } finally {
      await slow.close();
    }
  });

  it('a complete answer cancels its deadline', async () => {
    const clock = manualClock();
    const quick = new HttpClient({ ...base, requestDeadlineMs: 300 }, clock);
    handler = (_req, res) => res.end('{"ok":true}');
    try {
      const response = await quick.request(`${server.url}/api`);
      expect(clock.pending()).toEqual([300]);
      expect(await readJson(response, BODY_LIMITS.json, 'the answer')).toEqual({ ok: true });
      if (!response.body.closed) await once(response.body, 'close');
      expect(clock.pending()).toEqual([]);
    } finally {
      await quick.close();
    }
  });

  it('refuses a JSON answer larger than its limit, without reading it all', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      endless(res, Buffer.alloc(64 * 1024, 0x20));
    };
    const fast = new HttpClient(base);
    try {
      const error = await fast.getJson(`${server.url}/tree`).catch((e: unknown) => e);
      expect(isModelPullError(error, 'ERR_TOO_LARGE')).toBe(true);
      expect((error as Error).message).toBe(
        `the answer from ${server.url}/tree is larger than 16.0 MiB; refusing to read it`,
      );
    } finally {
      await fast.close();
    }
  });

  it.each([
    ['a declared length', true],
    ['no declared length', false],
  ])('refuses text past its limit with %s', async (_what, declare) => {
    handler = (_req, res) => {
      res.writeHead(200, declare ? { 'content-length': 2 * MiB } : {});
      endless(res, Buffer.alloc(64 * 1024, 0x61), 2 * MiB);
    };
    const response = await client.request(`${server.url}/sha256sum.txt`);
    const error = await readText(response, BODY_LIMITS.checksums, 'sha256sum.txt').catch((e: unknown) => e);
    expect((error as Error).message).toBe(
      `sha256sum.txt from ${server.url}/sha256sum.txt is larger than 1.0 MiB; refusing to read it`,
    );
  });

  it('quotes only the start of an endless error body', async () => {
    handler = (_req, res) => {
      res.writeHead(503);
      endless(res, Buffer.from('overloaded '.repeat(100)));
    };
    const response = await client.request(`${server.url}/blob`);
    const error = await statusError(response);
    expect(error.message).toBe(`HTTP 503 from ${server.url}/blob: ${'overloaded '.repeat(18)}ov`);
    expect(error.host).toBe(new URL(server.url).host);
  });

  it('treats junk where JSON should be as a retryable network error', async () => {
    handler = (_req, res) => res.end('<html>proxy error</html>');
    const response = await client.request(`${server.url}/api`);
    const error = await readJson(response, BODY_LIMITS.json, 'the revision').catch((e: unknown) => e);
    expect(isModelPullError(error, 'ERR_NETWORK')).toBe(true);
    expect((error as Error).message).toBe(`the revision from ${server.url}/api is not valid JSON`);
  });

  it('refuses a header value with a line break before any request, naming the header only', async () => {
    handler = (_req, res) => res.end('{}');
    const events: RetryEvent[] = [];
    const error = await withRetries(
      () =>
        client.getJson(`${server.url}/api`, {
          credentials: { origin: server.origin, headers: { authorization: 'Bearer hf_secret\n' } },
        }),
      { ...FAST_RETRY, onRetry: (e) => events.push(e) },
    ).catch((e: unknown) => e);
    expect(isModelPullError(error, 'ERR_BAD_INPUT')).toBe(true);
    expect((error as Error).message).toBe(
      `the authorization header for ${server.url}/api contains a line break or control character (a token copied with its newline?)`,
    );
    expect((error as Error).message).not.toContain('hf_secret');
    expect(server.requests).toHaveLength(0);
    expect(events).toEqual([]);
  });
});
