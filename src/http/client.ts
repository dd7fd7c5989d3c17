import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import type { Readable } from 'node:stream';
import { getCACertificates } from 'node:tls';
import { Agent, type Dispatcher, EnvHttpProxyAgent } from 'undici';
import { ModelPullError, redactUrl } from '../errors.js';
import { parseRetryAfter } from './retry.js';

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
  readonly userAgent: string;
}

/** Headers that belong to one origin (a token); never sent anywhere else, redirects included. */
export interface Credentials {
  readonly origin: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface RequestOptions {
  readonly method?: 'GET' | 'HEAD';
  /** Sent on every hop (Accept, Range). Never put a secret here. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly credentials?: Credentials;
  readonly signal?: AbortSignal;
  /** 0 returns the redirect response itself. */
  readonly maxRedirects?: number;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable & { dump(): Promise<void>; text(): Promise<string>; json(): Promise<unknown> };
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

/** A thin layer over undici: URL policy, origin-bound credentials, manual redirects, error codes. */
export class HttpClient {
  private readonly dispatcher: Dispatcher;

  constructor(readonly options: HttpOptions) {
    const ca = options.extraCa ? [...getCACertificates('default'), options.extraCa] : undefined;
    const common = {
      connections: options.connections,
      // One TCP flow per range is the point of parallel ranges; h2 would multiplex them all.
      allowH2: false,
      headersTimeout: options.stallTimeoutMs,
      bodyTimeout: options.stallTimeoutMs,
      connect: ca ? { ca } : {},
    };
    const proxy = options.proxy;
    this.dispatcher =
      proxy && (proxy.httpProxy || proxy.httpsProxy)
        ? new EnvHttpProxyAgent({
            ...common,
            httpProxy: proxy.httpProxy,
            httpsProxy: proxy.httpsProxy,
            noProxy: proxy.noProxy,
            ...(ca ? { requestTls: { ca } } : {}),
          })
        : new Agent(common);
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

  async request(url: string, options: RequestOptions = {}): Promise<HttpResponse> {
    const maxRedirects = options.maxRedirects ?? 5;
    const firstOrigin = new URL(url).origin;
    let current = url;
    for (let hop = 0; ; hop++) {
      const target = this.checkUrl(current);
      const headers: Record<string, string> = { 'user-agent': this.options.userAgent, ...options.headers };
      if (options.credentials && options.credentials.origin === target.origin) {
        Object.assign(headers, options.credentials.headers);
      }
      let res: Dispatcher.ResponseData;
      try {
        res = await this.dispatcher.request({
          origin: target.origin,
          path: target.pathname + target.search,
          method: options.method ?? 'GET',
          headers,
          signal: options.signal,
        });
      } catch (error) {
        throw networkError(error, current);
      }
      const location = res.headers.location;
      if (res.statusCode >= 300 && res.statusCode < 400 && location && maxRedirects > 0) {
        await res.body.dump().catch(() => undefined);
        if (hop >= maxRedirects) {
          throw new ModelPullError('ERR_REDIRECT', `too many redirects from ${redactUrl(url)}`);
        }
        current = new URL(String(location), current).toString();
        continue;
      }
      const body = res.body as unknown as HttpResponse['body'];
      // Errors while streaming the body get the same codes as errors before it.
      return {
        status: res.statusCode,
        headers: res.headers as IncomingHttpHeaders,
        body,
        url: current,
        crossedOrigin: new URL(current).origin !== firstOrigin,
      };
    }
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
    try {
      return { json: await response.body.json(), response };
    } catch (error) {
      throw networkError(error, url);
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

/** Maps a thrown undici/socket error to our codes: stalls and resets are retryable. */
export function networkError(error: unknown, url: string): ModelPullError {
  if (error instanceof ModelPullError) return error;
  const code = (error as { code?: string })?.code ?? '';
  const name = (error as { name?: string })?.name ?? '';
  if (name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') {
    return new ModelPullError('ERR_ABORTED', `request to ${redactUrl(url)} was aborted`, { cause: error });
  }
  if (code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') {
    return new ModelPullError('ERR_STALLED', `no data from ${redactUrl(url)} within the stall timeout`, {
      cause: error,
    });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new ModelPullError('ERR_NETWORK', `network error from ${redactUrl(url)}: ${detail}`, {
    cause: error,
  });
}

/** Drains the body and turns a non-2xx answer into an error; 429 carries the server's wait. */
export async function statusError(response: HttpResponse, what?: string): Promise<ModelPullError> {
  let detail = '';
  try {
    detail = (await response.body.text()).slice(0, 200).replace(/\s+/g, ' ').trim();
  } catch {
    // the status alone is the message
  }
  const retryAfterSeconds = parseRetryAfter(response.headers);
  const subject = what ?? redactUrl(response.url);
  const code = response.status === 429 ? 'ERR_RATE_LIMITED' : 'ERR_HTTP_STATUS';
  return new ModelPullError(
    code,
    `HTTP ${response.status} from ${subject}${detail ? `: ${detail}` : ''}`,
    retryAfterSeconds === undefined
      ? { status: response.status }
      : { status: response.status, retryAfterSeconds },
  );
}
