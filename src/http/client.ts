import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { type Readable, Transform } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Clock } from '../clock.js';
import { ModelPullError, redactUrl } from '../errors.js';
import { BODY_LIMITS, readJson, statusError } from './body.js';
import { hostOf, networkError } from './errors.js';
import { NativeTransport } from './native.js';
import { ForeignAnswer, RawTransport, rawEligible } from './raw.js';

export { discardBody, statusError } from './body.js';
export { networkError } from './errors.js';

/** How the client reaches the network; built by the settings module. */
export interface HttpOptions {
  /** TCP connections per origin (HTTP/1.1 only, so ranges are separate flows). */
  readonly connections: number;
  /** Allow plain http to hosts other than loopback. */
  readonly insecure: boolean;
  /** Extra PEM certificates to trust on top of the system set (and NODE_EXTRA_CA_CERTS). */
  readonly extraCa?: string;
  /** Proxy settings read from HTTPS_PROXY / HTTP_PROXY / NO_PROXY by the settings module. */
  readonly proxy?: { readonly httpProxy?: string; readonly httpsProxy?: string; readonly noProxy?: string };
  /** No headers or no body bytes for this long aborts the request as stalled. */
  readonly stallTimeoutMs: number;
  /**
   * Longest time for a whole request that is not a stream (metadata: manifests, listings,
   * tokens), from the first byte sent to the last byte of the body: a server trickling a JSON
   * answer a byte at a time never trips the stall timeout. Default: twice the stall timeout,
   * at least 60 s.
   */
  readonly requestDeadlineMs?: number;
  /**
   * Streams (model bytes) slower than `bytes` per `windowMs` count as stalled: a trickle keeps
   * the stall timeout from firing. Default: 32 KiB per stall timeout.
   */
  readonly minRate?: { readonly bytes: number; readonly windowMs: number };
  readonly userAgent: string;
}

/** Headers that belong to one origin (a token); never sent anywhere else, redirects included. */
export interface Credentials {
  readonly origin: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface RequestOptions {
  readonly method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /**
   * A small body (JSON, a manifest) or an upload stream (a registry blob). Only GET and HEAD
   * follow redirects: a body is sent once, to the URL it was meant for.
   */
  readonly body?: string | Uint8Array | Readable;
  /**
   * For an upload stream: how long the server may take to answer once the last byte is sent
   * (a registry checks the digest of the whole blob then); default the request deadline.
   */
  readonly answerTimeoutMs?: number;
  /** Sent on every hop (Accept, Range). Never put a secret here. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly credentials?: Credentials;
  readonly signal?: AbortSignal;
  /** 0 returns the redirect response itself. */
  readonly maxRedirects?: number;
  /**
   * The body is a stream of model bytes, read at its own pace (the engine guards its rate):
   * no whole-request deadline. Everything else must be complete within `requestDeadlineMs`.
   */
  readonly stream?: boolean;
  /**
   * With `stream`: the caller reads a 2xx body with a length through RawBody.pump when the
   * request can take the raw reader (raw.ts: http or https, a GET with no credentials, no proxy).
   */
  readonly direct?: boolean;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Read it through body.ts (readBody, readText, readJson: bounded), or dump() it. */
  readonly body: Readable & { dump(): Promise<void> };
  /** The URL that answered, after redirects. */
  readonly url: string;
  /** True when a redirect left the origin of the first URL. */
  readonly crossedOrigin: boolean;
}

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/**
 * A thin layer over the HTTP clients: URL policy, origin-bound credentials, manual redirects,
 * error codes. Without a proxy, every request whose body is absent or a buffer goes through
 * node:http (see native.ts); undici carries uploads (a stream body) and everything through a
 * proxy. undici is loaded on its first use: its Agent loads node:http2 and compiles a WebAssembly
 * parser (~25 MiB of RSS together), which a pull or a restore (its lookup is a small POST) never
 * needs.
 */
export class HttpClient {
  private dispatcher: Promise<Dispatcher> | undefined;
  /** Requests without a stream body when no proxy is set (see native.ts). */
  private readonly native: NativeTransport | undefined;
  /** Bulk bodies (http and https) with no credentials, when no proxy is set (see raw.ts). */
  private readonly raw: RawTransport | undefined;
  /** The system's CAs plus the extra one, when there is one. */
  private readonly ca: string[] | undefined;
  /** The proxy settings, when a proxy is set for http or https (then every request takes undici). */
  private readonly proxy: HttpOptions['proxy'];

  /**
   * `timers` runs the whole-request deadline and the upload watchdog (tests inject a clock they
   * step); by default the wall clock with unref'd timers, so an answer nobody reads to its end
   * never keeps the process alive.
   */
  constructor(
    readonly options: HttpOptions,
    private readonly timers: Clock = backgroundTimers,
  ) {
    // node:tls only where it is needed (an http: pull never loads it; see native.ts).
    const ca = options.extraCa
      ? [...process.getBuiltinModule('node:tls').getCACertificates('default'), options.extraCa]
      : undefined;
    this.ca = ca;
    const proxy = options.proxy;
    this.proxy = proxy && (proxy.httpProxy || proxy.httpsProxy) ? proxy : undefined;
    this.native = this.proxy
      ? undefined
      : new NativeTransport({
          connections: options.connections,
          ca,
          stallTimeoutMs: options.stallTimeoutMs,
        });
    this.raw = this.proxy
      ? undefined
      : new RawTransport({
          connections: options.connections,
          stallTimeoutMs: options.stallTimeoutMs,
          ...(ca ? { ca } : {}),
        });
  }

  private undici(): Promise<Dispatcher> {
    this.dispatcher ??= import('./undici.js').then(({ Agent, EnvHttpProxyAgent }) => {
      const { options, ca, proxy } = this;
      const common = {
        connections: options.connections,
        // One TCP flow per range is the point of parallel ranges; h2 would multiplex them all.
        allowH2: false,
        headersTimeout: options.stallTimeoutMs,
        bodyTimeout: options.stallTimeoutMs,
        connect: ca ? { ca } : {},
      };
      return proxy
        ? new EnvHttpProxyAgent({
            ...common,
            httpProxy: proxy.httpProxy,
            httpsProxy: proxy.httpsProxy,
            noProxy: proxy.noProxy,
            ...(ca ? { requestTls: { ca } } : {}),
          })
        : new Agent(common);
    });
    return this.dispatcher;
  }

  /** Throws unless the URL is https, or http to loopback, or http with `insecure`. */
  checkUrl(url: string): URL {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ModelPullError('ERR_BAD_INPUT', `not a valid URL: ${redactUrl(url)}`);
    }
    if (parsed.protocol === 'https:') return parsed;
    if (parsed.protocol === 'http:') {
      if (this.options.insecure || isLoopbackHost(parsed.hostname)) return parsed;
      throw new ModelPullError(
        'ERR_INSECURE_URL',
        `refusing plain http to ${parsed.host} (${redactUrl(url)}); use https or set insecure`,
      );
    }
    throw new ModelPullError(
      'ERR_INSECURE_URL',
      `unsupported URL scheme ${parsed.protocol} in ${redactUrl(url)}`,
    );
  }

  /** The minimum rate of model-byte streams (see HttpOptions.minRate). */
  get minRate(): { readonly bytes: number; readonly windowMs: number } {
    return this.options.minRate ?? { bytes: 32 * 1024, windowMs: this.options.stallTimeoutMs };
  }

  async request(url: string, options: RequestOptions = {}): Promise<HttpResponse> {
    if (isStream(options.body)) return this.upload(url, options, options.body);
    const deadline = options.stream ? undefined : this.deadline(url, options.signal);
    try {
      const response = await this.follow(url, options, deadline?.signal ?? options.signal);
      deadline?.until(response.body);
      return response;
    } catch (error) {
      deadline?.cancel();
      throw error;
    }
  }

  /**
   * A request whose body is a stream of model bytes. undici's headers timeout runs from the
   * first byte sent, so it would cut any upload longer than the stall timeout; instead the
   * upload stalls when the server takes no byte for the stall timeout, and the answer must come
   * within `answerTimeoutMs` of the last byte.
   */
  private async upload(url: string, options: RequestOptions, body: Readable): Promise<HttpResponse> {
    const stall = this.options.stallTimeoutMs;
    const answerDefault = this.options.requestDeadlineMs ?? Math.max(60_000, 2 * stall);
    const host = hostOf(url);
    const where = redactUrl(url);
    const controller = new AbortController();
    // One watchdog on the client's clock (so tests can step it), not a timer per chunk: each
    // chunk only moves `since`; the watchdog sleeps until the current limit runs out.
    const stopped = new AbortController();
    let since = this.timers.now();
    let limit = { ms: stall, why: `${where} took no upload bytes within the stall timeout` };
    const arm = (ms: number, why: string) => {
      since = this.timers.now();
      limit = { ms, why };
    };
    void (async () => {
      for (;;) {
        const left = since + limit.ms - this.timers.now();
        if (left <= 0) return controller.abort(new ModelPullError('ERR_STALLED', limit.why, { host }));
        await this.timers.sleep(left, stopped.signal);
      }
    })().catch(() => undefined); // stopped: the answer came
    const watched = body.pipe(
      new Transform({
        transform(chunk, _encoding, done) {
          arm(stall, `${where} took no upload bytes within the stall timeout`);
          done(null, chunk);
        },
        flush(done) {
          // The last bytes may still sit in socket buffers: the answer gets the metadata deadline.
          arm(options.answerTimeoutMs ?? answerDefault, `no answer from ${where} after the upload`);
          done();
        },
      }),
    );
    body.once('error', (error) => watched.destroy(error));
    const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
    try {
      return await this.follow(url, { ...options, body: watched }, signal);
    } finally {
      stopped.abort();
      if (!body.destroyed) body.destroy();
    }
  }

  private async follow(url: string, options: RequestOptions, signal: AbortSignal | undefined) {
    const maxRedirects = options.maxRedirects ?? 5;
    const firstOrigin = new URL(url).origin;
    let current = url;
    for (let hop = 0; ; hop++) {
      const target = this.checkUrl(current);
      const headers: Record<string, string> = { 'user-agent': this.options.userAgent, ...options.headers };
      const credited = options.credentials !== undefined && options.credentials.origin === target.origin;
      if (credited) Object.assign(headers, options.credentials!.headers);
      checkHeaders(headers, current);
      let answer: Answer | undefined;
      const method = options.method ?? 'GET';
      try {
        // A secret never rides the raw reader: it only carries requests that have none.
        const direct =
          this.raw !== undefined &&
          options.stream === true &&
          options.direct === true &&
          method === 'GET' &&
          options.body === undefined &&
          !credited &&
          rawEligible(target, headers);
        if (direct) {
          try {
            answer = await this.raw!.send(target, headers, signal);
          } catch (error) {
            // Not an answer it reads (chunked, an interim 1xx): node:http sends it again.
            if (!(error instanceof ForeignAnswer)) throw error;
          }
        }
        answer ??=
          this.native && !isStream(options.body)
            ? await this.native.send(target, method, headers, signal, options.body)
            : await ((await this.undici()).request({
                origin: target.origin,
                path: target.pathname + target.search,
                method,
                headers,
                ...(options.body !== undefined ? { body: options.body } : {}),
                // An upload guards its own time (see upload()).
                ...(isStream(options.body) ? { headersTimeout: 0 } : {}),
                signal,
              }) as unknown as Answer);
      } catch (error) {
        throw networkError(signal?.aborted ? (signal.reason ?? error) : error, current);
      }
      const res = answer;
      const location = res.headers.location;
      const follows = maxRedirects > 0 && (method === 'GET' || method === 'HEAD');
      if (res.statusCode >= 300 && res.statusCode < 400 && location && follows) {
        await res.body.dump().catch(() => undefined);
        if (hop >= maxRedirects) {
          throw new ModelPullError('ERR_REDIRECT', `too many redirects from ${redactUrl(url)}`);
        }
        current = new URL(String(location), current).toString();
        continue;
      }
      const body = res.body;
      // Errors while streaming the body get the same codes as errors before it.
      return {
        status: res.statusCode,
        headers: res.headers,
        body,
        url: current,
        crossedOrigin: new URL(current).origin !== firstOrigin,
      };
    }
  }

  /**
   * A whole-request deadline: aborts the request (and its body, once returned) with
   * ERR_TOO_SLOW, which callers retry like a stall. Cleared when the body closes.
   */
  private deadline(url: string, outer: AbortSignal | undefined) {
    const ms = this.options.requestDeadlineMs ?? Math.max(60_000, 2 * this.options.stallTimeoutMs);
    const controller = new AbortController();
    const cancelled = new AbortController();
    this.timers.sleep(ms, cancelled.signal).then(
      () =>
        controller.abort(
          new ModelPullError(
            'ERR_TOO_SLOW',
            `no complete answer from ${redactUrl(url)} within ${ms / 1000} s`,
            { host: hostOf(url) },
          ),
        ),
      () => undefined, // cancelled: the answer was complete in time
    );
    const cancel = () => cancelled.abort();
    return {
      signal: outer ? AbortSignal.any([outer, controller.signal]) : controller.signal,
      cancel,
      until: (body: Readable) => {
        if (body.closed) cancel();
        else body.once('close', cancel);
      },
    };
  }

  /** GET a JSON document; non-2xx becomes a status error (see `statusError`). */
  async getJson(
    url: string,
    options: RequestOptions = {},
  ): Promise<{ json: unknown; response: HttpResponse }> {
    const response = await this.request(url, {
      ...options,
      headers: { accept: 'application/json', ...options.headers },
    });
    if (response.status < 200 || response.status >= 300) throw await statusError(response);
    return { json: await readJson(response, BODY_LIMITS.json, 'the answer'), response };
  }

  async close(): Promise<void> {
    this.native?.close();
    this.raw?.close();
    if (this.dispatcher) await (await this.dispatcher).close();
  }
}

const backgroundTimers: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer = setTimeout(resolve, ms);
      timer.unref();
      signal?.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          reject(signal.reason);
        },
        { once: true },
      );
    }),
};

/** What a transport answers: the parts of undici's answer the client reads. */
type Answer = { statusCode: number; headers: IncomingHttpHeaders; body: HttpResponse['body'] };

function isStream(body: RequestOptions['body']): body is Readable {
  return typeof body === 'object' && body !== null && typeof (body as Readable).pipe === 'function';
}

/**
 * Header values with control characters (a token pasted with its newline) are refused before
 * anything is sent: undici would throw on every attempt, and the error looked like a network
 * fault worth a minute of retries. The value itself is never quoted: it is usually a secret.
 */
function checkHeaders(headers: Readonly<Record<string, string>>, url: string): void {
  for (const [name, value] of Object.entries(headers)) {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: exactly what is refused
    if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) {
      throw new ModelPullError(
        'ERR_BAD_INPUT',
        `the ${name} header for ${redactUrl(url)} contains a line break or control character (a token copied with its newline?)`,
      );
    }
  }
}
