import type { Agent as HttpAgent, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import { freeWhole } from '../memory.js';
import { DRAIN_LIMIT } from './body.js';
import { stalledError } from './errors.js';

/** What a request through node:http answers: the parts of undici's answer the client reads. */
export interface NativeAnswer {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: IncomingMessage & { dump(): Promise<void> };
}

// node:http is taken through getBuiltinModule, not an ES import: the ES module of a built-in
// reads every export once, and node:http's WebSocket, CloseEvent and MessageEvent getters then
// load Node's own bundled copy of undici, which no request here uses (the engine's process: 45 MiB
// RSS after `import('node:http')` against 59 MiB; a CommonJS require, as in the ncc bundle, never
// read them). node:https (and TLS under it, ~5 MiB) loads with the first https: URL.
const http = process.getBuiltinModule('node:http');

/** A method node:http sends here: any the client sends, with at most a small body in memory. */
export type NativeMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * Requests through Node's built-in HTTP/1.1 client (node:http, its native llhttp parser): GET
 * and HEAD, model bytes and metadata alike, and requests whose body is a small buffer (JSON for a
 * token or the cache service's lookup), so a run that only reads and looks entries up never
 * loads undici (its import, node:http2 and its WebAssembly parser took 60-80 ms and ~25 MiB
 * before a restore's first archive byte). Measured against undici's Agent on a 1 GiB loopback
 * download (see the commit that added it): undici feeds every socket read through its
 * WebAssembly parser and several handler layers, and its Agent loads node:http2 even with
 * HTTP/2 off. The client's policy (URLs, credentials, redirects, error codes) stays in
 * client.ts; this only sends one request and hands back the answer.
 */
export class NativeTransport {
  private readonly http: HttpAgent;
  private https: HttpsAgent | undefined;

  constructor(
    private readonly options: {
      readonly connections: number;
      readonly ca?: readonly string[];
      /** No headers, or no body bytes while the body is read, for this long is a stall. */
      readonly stallTimeoutMs: number;
    },
  ) {
    this.http = new http.Agent(this.pool());
  }

  private pool() {
    return { keepAlive: true, maxSockets: this.options.connections, scheduling: 'lifo' as const };
  }

  private httpsAgent(): HttpsAgent {
    const ca = this.options.ca;
    this.https ??= new (process.getBuiltinModule('node:https').Agent)({
      ...this.pool(),
      ...(ca ? { ca: [...ca] } : {}),
    });
    return this.https;
  }

  /**
   * Sends one request, with `body` (sent whole, with its Content-Length) when given. Rejects
   * with the socket's error (client.ts maps it) or with ERR_STALLED when the headers do not come
   * within the stall timeout; the body then fails with ERR_STALLED when it brings no byte for
   * that long while it is being read.
   */
  send(
    target: URL,
    method: NativeMethod,
    headers: Readonly<Record<string, string>>,
    signal: AbortSignal | undefined,
    body?: string | Uint8Array,
  ): Promise<NativeAnswer> {
    const stall = this.options.stallTimeoutMs;
    const url = target.toString();
    const stalled = () => stalledError(url);
    return new Promise<NativeAnswer>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const https = target.protocol === 'https:';
      const agent = https ? this.httpsAgent() : this.http;
      const req = (https ? process.getBuiltinModule('node:https').request : http.request)({
        protocol: target.protocol,
        hostname: target.hostname.replace(/^\[|\]$/g, ''),
        port: target.port || undefined,
        path: target.pathname + target.search,
        method,
        headers:
          body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        agent,
      });
      let answer: IncomingMessage | undefined;
      // The caller's abort ends the request, and the body once it is out, with the caller's reason.
      const onAbort = () => {
        answer?.destroy(signal?.reason);
        req.destroy(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => signal?.removeEventListener('abort', onAbort));
      // The headers must come within the stall timeout of the request (connecting included): a
      // server trickling its header lines never goes idle.
      const deadline = setTimeout(() => req.destroy(stalled()), stall);
      req.once('error', (error) => {
        clearTimeout(deadline);
        reject(error);
      });
      // Idle time on the socket (Node refreshes this timer on every read, at no cost per chunk).
      // A body holding bytes its reader has not taken is not stalled: the reader is the one
      // waiting (a paused body stops the socket's reads once its buffer is full).
      const onIdle = (socket: Socket) => {
        if (answer?.complete) return;
        if (answer && answer.readableLength > 0) {
          socket.setTimeout(stall);
          return;
        }
        const error = stalled();
        answer?.destroy(error);
        req.destroy(error);
      };
      let watched: Socket | undefined;
      const onTimeout = () => watched && onIdle(watched);
      // Both listeners leave with the request, or at the body's end: before Node hands the socket
      // to the next request (which adds the parser's listener again, ticks later), so a read is
      // never freed before it is parsed.
      const unwatch = () => {
        watched?.off('data', freeWhole).off('timeout', onTimeout).setTimeout(0);
        watched = undefined;
      };
      req.once('socket', (socket: Socket) => {
        watched = socket;
        socket.setTimeout(stall);
        socket.on('timeout', onTimeout);
        // Each socket read is freed once Node's parser is done with it: the parser copies a
        // read's body bytes into the chunks it hands out and keeps nothing of the read itself.
        // Left to the collector, 64 KiB reads piled up to ~70 MiB between its passes (receiving
        // 1 GiB over 4 connections: 132-134 MiB peak RSS and 1.8-2.4 CPU-s, against 62 MiB and
        // 1.1 CPU-s with each read freed; undici 93 MiB and 1.5 CPU-s). The listener goes after
        // Node's own (added before this event), exactly once.
        socket.off('data', freeWhole);
        socket.on('data', freeWhole);
      });
      req.once('close', unwatch);
      req.once('response', (res: IncomingMessage) => {
        answer = res;
        res.once('end', unwatch);
        clearTimeout(deadline);
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: withHelpers(res) });
      });
      if (body === undefined) req.end();
      else req.end(body);
    });
  }

  close(): void {
    this.http.destroy();
    this.https?.destroy();
  }
}

/**
 * undici's `dump` on a node:http answer. Its unbounded `text`/`json` are left out on purpose:
 * bodies are read through body.ts's readBody/readText/readJson, which take a limit.
 */
function withHelpers(res: IncomingMessage): NativeAnswer['body'] {
  const body = res as NativeAnswer['body'];
  // A short body is read to its end so its connection is reused; a long one is cut.
  body.dump = () =>
    new Promise<void>((resolve) => {
      if (res.destroyed || res.readableEnded) return resolve();
      let seen = 0;
      res.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen > DRAIN_LIMIT) res.destroy();
      });
      res.once('end', () => resolve());
      res.once('close', () => resolve());
      res.on('error', () => resolve());
      res.resume();
    });
  return body;
}
