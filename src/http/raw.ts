import type { IncomingHttpHeaders } from 'node:http';
import { connect, isIP, type OnReadOpts, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { ModelPullError, redactUrl } from '../errors.js';
import { DRAIN_LIMIT } from './body.js';
import { hostOf, stalledError } from './errors.js';
import {
  ChunkedDecoder,
  FIELD_VALUE,
  headEnd,
  MAX_HEAD_BYTES,
  parseHead,
  type ResponseHead,
  TOKEN,
} from './raw-head.js';

/**
 * The transport's one body buffer, shared by all its connections: every read of a body lands
 * here, and its bytes are written and hashed inside the read callback, before the next read (of
 * any connection: reads run one at a time on this thread) reuses it. Measured on the 1 GiB
 * loopback (issue 17): reading into one reused 1 MiB block cost 1.22-1.28x curl's CPU, 64 KiB
 * ~1.6x, node:http (a fresh buffer per read, and its parser's copy of every body chunk)
 * 1.7-2.0x. One block per connection (16 MiB with 16 connections) took the capped case's peak
 * RSS from 70 to 83-86 MiB in the bench.
 *
 * A head is read into its connection's own small buffer (HEAD_BUFFER_BYTES) instead: the body
 * bytes that come in the head's read must wait there, the socket paused, until the engine has
 * looked at the head and starts reading (a promise later). Copying them out of a shared block
 * cost more than it saved: up to 1 MiB of fresh memory per request (capped case: 86-106 MiB peak
 * RSS, and slower).
 */
export const READ_BUFFER_BYTES = 1024 * 1024;

/** Each connection's buffer for the read that brings a head (and the body's first bytes). */
const HEAD_BUFFER_BYTES = 16 * 1024;

/**
 * Takes the bytes of a body as they arrive. `view` is a view of the connection's read buffer,
 * valid only during the call: write it, hash it, count it, keep no reference. Returning false
 * stops the body there (the connection is closed: it still has bytes in flight).
 */
export interface BodySink {
  data(view: Buffer): boolean;
  /** The body ended at its declared length (no error), or failed. Called once. */
  end(error?: Error): void;
}

/** The answer of a request through the raw reader. */
export interface RawAnswer {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: RawBody;
}

/**
 * Why a request went no further on the raw reader: its answer is not one it reads (a
 * Transfer-Encoding, an interim 1xx). The request was sent once; the caller sends it again
 * through node:http, which reads every answer.
 */
export class ForeignAnswer extends Error {}

/**
 * The TLS alert a server sends when it speaks none of the protocols we offered (an h2-only
 * server refusing http/1.1): node:https offers none, so the request goes there, as today.
 */
const NO_APPLICATION_PROTOCOL = 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL';

/** What node:http's answer reports when the connection ends before the body's last byte. */
function cutShort(): Error {
  return Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
}

/** What node:http reports when the connection ends before the answer's head. */
function hangUp(): Error {
  return Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
}

/**
 * An HTTP/1.1 reader of our own for the bulk of the bytes: ranged GETs of blob bodies over plain
 * http or https that go to a file. Body reads land in one reused buffer (net.Socket's `onread`, see
 * READ_BUFFER_BYTES), and their bytes are handed to a synchronous sink (written at their
 * position and hashed) inside the read callback, then the buffer is read into again: curl's
 * model, with no allocation or copy per read. Everything else stays on node:http (native.ts).
 *
 * Rules, because the answer is untrusted:
 * - The head is bounded (MAX_HEAD_BYTES) and parsed strictly (raw-head.ts); a malformed one is a
 *   network error, retried like a reset. A chunked body is read (as a stream: servers answer
 *   errors and redirects so); another Transfer-Encoding, or an interim 1xx answer, is not read
 *   here at all: `send` throws ForeignAnswer and the client sends the request again on node:http.
 * - The body is its Content-Length (one value, or equal copies; never beside a
 *   Transfer-Encoding), never a byte more; with neither it runs to the connection's close and
 *   the connection is not reused. A body that ends
 *   short fails like node:http's ('aborted', ECONNRESET), which the engine retries and resumes.
 * - Bytes after the declared body (in the same read, or while the connection is idle) mean the
 *   connection is out of step: it is closed, never reused.
 * - No credentials ride on this path: client.ts sends a request here only when it carries none
 *   and no proxy is set, so nothing here decides where a secret may go.
 * - Connections per origin are bounded like node:http's agent (`connections`, requests beyond
 *   wait for one), idle ones kept (last in, first out) and closed by `close`.
 * - Stall: the head must come within the stall timeout of the request (a server trickling its
 *   head never goes idle); then no byte for the stall timeout while a reader waits is ERR_STALLED.
 *   The caller's abort signal ends the request and its body with the signal's reason.
 * - https: each connection is a TLS socket (node:tls, which takes `onread` too: each decrypted
 *   record lands in the same buffer) with certificate verification on, the client's CAs (`ca`,
 *   exactly what node:https's agent gets), SNI for a host name (never an IP literal) and ALPN
 *   offering http/1.1 only. The request is written once the handshake is done and the server
 *   chose http/1.1 or nothing; a server that chose anything else, or refused http/1.1 with a
 *   TLS alert, gets ForeignAnswer (node:https, which offers no ALPN, sends it again). TLS
 *   errors are the socket's own, as node:https reports them, so client.ts maps them alike.
 * - Connections are kept per origin, scheme included: an http and an https origin on one
 *   host:port never share one.
 */
export class RawTransport {
  private readonly origins = new Map<string, Origin>();
  private closed = false;
  private buffer: Buffer | undefined;
  /** Hands every read the shared buffer (net.Socket asks again after each read). */
  private readonly readBuffer = (): Buffer => {
    this.buffer ??= Buffer.allocUnsafe(this.options.bufferBytes ?? READ_BUFFER_BYTES);
    return this.buffer;
  };

  constructor(
    private readonly options: {
      readonly connections: number;
      readonly stallTimeoutMs: number;
      readonly bufferBytes?: number;
      /** The CAs to trust over TLS, as node:https's agent gets them (undefined: Node's default). */
      readonly ca?: readonly string[];
    },
  ) {}

  /**
   * Sends one GET (`headers` as given, plus Host and keep-alive) and resolves with the answer's
   * head once it is in; its body is read through `answer.body`. Rejects with the socket's error,
   * ERR_STALLED, a malformed head's network error, the signal's reason, or ForeignAnswer.
   */
  async send(
    target: URL,
    headers: Readonly<Record<string, string>>,
    signal?: AbortSignal,
  ): Promise<RawAnswer> {
    if (this.closed) throw new Error('the raw transport is closed');
    const origin = this.origin(target);
    const request = requestBytes(target, headers);
    // A kept connection the server closed meanwhile fails before any byte of the answer: the
    // request goes once more on a new connection (node:http's agent would have dropped it too).
    for (let attempt = 0; ; attempt++) {
      const connection = await origin.acquire(signal);
      try {
        return await connection.exchange(request, target.toString(), signal);
      } catch (error) {
        const reset = !(error instanceof ModelPullError) && !(error instanceof ForeignAnswer);
        if (attempt === 0 && reset && connection.reused && connection.silent && !signal?.aborted) continue;
        throw error;
      }
    }
  }

  private origin(target: URL): Origin {
    const secure = target.protocol === 'https:';
    const port = Number(target.port || (secure ? 443 : 80));
    const key = `${target.protocol}//${target.hostname}:${port}`;
    let origin = this.origins.get(key);
    if (!origin) {
      const ca = this.options.ca;
      origin = new Origin(target.hostname.replace(/^\[|\]$/g, ''), port, {
        connections: this.options.connections,
        stallTimeoutMs: this.options.stallTimeoutMs,
        readBuffer: this.readBuffer,
        tls: secure ? { ...(ca ? { ca: [...ca] } : {}) } : undefined,
      });
      this.origins.set(key, origin);
    }
    return origin;
  }

  /** Closes every connection, idle or busy (a body still being read fails). */
  close(): void {
    this.closed = true;
    for (const origin of this.origins.values()) origin.close();
    this.origins.clear();
  }
}

interface OriginOptions {
  readonly connections: number;
  readonly stallTimeoutMs: number;
  readonly readBuffer: () => Buffer;
  /** Connect over TLS, trusting `ca` when given (else Node's default CAs). */
  readonly tls: { readonly ca?: string[] } | undefined;
}

/** One origin's connections: at most `connections` at once, idle ones kept for the next request. */
class Origin {
  private readonly idle: Connection[] = [];
  private readonly busy = new Set<Connection>();
  private readonly waiting: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly options: OriginOptions,
  ) {}

  async acquire(signal: AbortSignal | undefined): Promise<Connection> {
    while (this.busy.size >= this.options.connections) {
      if (signal?.aborted) throw signal.reason;
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          const at = this.waiting.indexOf(wake);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(signal!.reason);
        };
        this.waiting.push(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    if (this.closed) throw new Error('the raw transport is closed');
    const kept = this.idle.pop();
    const connection =
      kept ?? new Connection(this.host, this.port, this.options, (c, keep) => this.release(c, keep));
    this.busy.add(connection);
    return connection;
  }

  /** A connection is done with its request: kept for the next one, or gone. */
  private release(connection: Connection, keep: boolean): void {
    if (!this.busy.delete(connection)) {
      // An idle connection that closed (or sent bytes nobody asked for).
      const at = this.idle.indexOf(connection);
      if (at >= 0) this.idle.splice(at, 1);
      return;
    }
    if (keep && !this.closed && this.idle.length < this.options.connections) this.idle.push(connection);
    else connection.destroy();
    this.waiting.shift()?.();
  }

  close(): void {
    this.closed = true;
    for (const connection of [...this.idle, ...this.busy]) connection.destroy();
    this.idle.length = 0;
    for (const wake of this.waiting.splice(0)) wake();
  }
}

/** Where a connection is in its request: which reader its bytes go to. */
type Phase = 'idle' | 'head' | 'body' | 'done';

/** One TCP (or TLS) connection and its head buffer, carrying one request at a time. */
class Connection {
  private readonly socket: Socket;
  /** A TLS connection's request waits here until the handshake is done and ALPN allows it. */
  private unsent: string | undefined;
  private secured: boolean;
  private phase: Phase = 'idle';
  /** Served a request before this one. */
  reused = false;
  /** No byte of the current answer has arrived. */
  silent = true;
  private headBytes: Buffer[] = [];
  private headLength = 0;
  private url = '';
  private head: ResponseHead | undefined;
  /** Body bytes still to come (Infinity: until the connection closes, or its chunks end). */
  private remaining = 0;
  /** Reads a chunked body. */
  private chunks: ChunkedDecoder | undefined;
  /** Body bytes no reader has taken yet: in the head's buffer, or a copy (the socket is paused). */
  private pending: Buffer | undefined;
  /** Paused until a reader takes the body (bytes may wait in `pending`). */
  private held = false;
  private readonly headBuffer = Buffer.allocUnsafe(HEAD_BUFFER_BYTES);
  private body: RawBody | undefined;
  private answered: ((answer: RawAnswer) => void) | undefined;
  private refused: ((error: unknown) => void) | undefined;
  private headDeadline: NodeJS.Timeout | undefined;
  private signal: AbortSignal | undefined;
  private destroyed = false;

  constructor(
    host: string,
    port: number,
    private readonly options: OriginOptions,
    private readonly release: (connection: Connection, keep: boolean) => void,
  ) {
    // Asked again after each read, for the next: the head's own buffer until a head is in.
    const onread = {
      buffer: () => (this.phase === 'body' ? options.readBuffer() : this.headBuffer),
      callback: this.onRead,
    };
    this.secured = options.tls === undefined;
    if (options.tls) {
      // Node 24's tls.connect takes `onread` (net.Socket's); its types do not say so yet.
      const tlsOptions: ConnectionOptions & { onread: OnReadOpts } = {
        host,
        port,
        ...(isIP(host) === 0 ? { servername: host } : {}),
        ...options.tls,
        ALPNProtocols: ['http/1.1'],
        onread,
      };
      // node:tls only where it is needed (an http: pull never loads it).
      const socket = process.getBuiltinModule('node:tls').connect(tlsOptions);
      socket.setNoDelay(true);
      socket.once('secureConnect', () => this.onSecure(socket));
      this.socket = socket;
    } else {
      this.socket = connect({ host, port, noDelay: true, onread });
    }
    this.socket.on('error', (error) => {
      const code = (error as { code?: unknown }).code;
      this.fail(code === NO_APPLICATION_PROTOCOL ? new ForeignAnswer(error.message) : error);
    });
    this.socket.on('end', this.onEnd);
    this.socket.on('close', () => this.fail(hangUp()));
    this.socket.on('timeout', this.onIdle);
  }

  exchange(request: string, url: string, signal: AbortSignal | undefined): Promise<RawAnswer> {
    return new Promise<RawAnswer>((resolve, reject) => {
      this.url = url;
      this.answered = resolve;
      this.refused = reject;
      this.phase = 'head';
      this.silent = true;
      this.headBytes = [];
      this.headLength = 0;
      this.head = undefined;
      this.body = undefined;
      this.signal = signal;
      if (signal?.aborted) return this.fail(signal.reason);
      signal?.addEventListener('abort', this.onAbort, { once: true });
      this.headDeadline = setTimeout(() => this.fail(this.stalled()), this.options.stallTimeoutMs);
      this.socket.setTimeout(0);
      this.socket.ref();
      this.socket.resume();
      if (this.secured) this.socket.write(request, 'latin1');
      else this.unsent = request;
    });
  }

  /** The TLS handshake is done (certificate verified): HTTP/1.1 only, then the request goes. */
  private onSecure(socket: TLSSocket): void {
    const protocol = socket.alpnProtocol;
    if (protocol !== false && protocol !== 'http/1.1') {
      this.fail(new ForeignAnswer(`the server chose ${String(protocol)} over TLS`));
      return;
    }
    this.secured = true;
    const request = this.unsent;
    this.unsent = undefined;
    if (request !== undefined && !this.destroyed) this.socket.write(request, 'latin1');
  }

  private readonly onAbort = () => this.fail(this.signal?.reason);

  private stalled(): ModelPullError {
    return stalledError(this.url);
  }

  /** No byte for the stall timeout while the body is read; bytes a reader has not taken are its wait. */
  private readonly onIdle = () => {
    if (this.phase !== 'body' || this.held || (this.body?.readableLength ?? 0) > 0) {
      if (this.phase === 'body') this.socket.setTimeout(this.options.stallTimeoutMs);
      return;
    }
    this.fail(this.stalled());
  };

  /** Every socket read: `n` bytes at the start of the shared buffer, theirs until this returns. */
  private readonly onRead = (n: number, buffer: Buffer): boolean => {
    if (this.destroyed) return false;
    if (this.phase === 'head') {
      this.silent = false;
      return this.readHead(buffer.subarray(0, n));
    }
    if (this.phase === 'body') return this.readBody(buffer.subarray(0, n));
    // Bytes with no request waiting for them: the server is out of step with us.
    this.destroy();
    return false;
  };

  private readHead(bytes: Buffer): boolean {
    const before = this.headLength;
    const room = MAX_HEAD_BYTES - before;
    const seen = Buffer.concat([...this.headBytes, bytes.subarray(0, room)]);
    const end = headEnd(seen);
    if (end < 0) {
      if (seen.length >= MAX_HEAD_BYTES) {
        this.fail(this.malformed(`its head is larger than ${MAX_HEAD_BYTES / 1024} KiB`));
        return false;
      }
      this.headBytes = [seen];
      this.headLength = seen.length;
      return true;
    }
    const verdict = parseHead(seen.toString('latin1', 0, end));
    if (verdict.kind === 'malformed') {
      this.fail(this.malformed(verdict.why));
      return false;
    }
    if (verdict.kind === 'foreign') {
      this.fail(new ForeignAnswer(verdict.why));
      return false;
    }
    const head = verdict.head;
    clearTimeout(this.headDeadline);
    this.headBytes = [];
    this.head = head;
    this.phase = 'body';
    this.remaining = typeof head.bodyLength === 'number' ? head.bodyLength : Number.POSITIVE_INFINITY;
    this.chunks = head.bodyLength === 'chunked' ? new ChunkedDecoder() : undefined;
    this.socket.setTimeout(this.options.stallTimeoutMs);
    this.body = new RawBody(this, typeof head.bodyLength === 'number' ? head.bodyLength : undefined);
    const answered = this.answered!;
    this.answered = undefined;
    answered({ statusCode: head.statusCode, headers: head.headers, body: this.body });
    // The bytes after the head in this read (in the head's own buffer, which the next read
    // will not use) wait, the socket paused, until a reader comes.
    const rest = bytes.subarray(end - before);
    if (this.remaining === 0) {
      this.finish(rest.length === 0);
      return rest.length === 0;
    }
    this.pending = rest.length > 0 ? rest : undefined;
    this.held = true;
    return false;
  }

  private malformed(why: string): ModelPullError {
    return new ModelPullError(
      'ERR_NETWORK',
      `network error from ${redactUrl(this.url)}: malformed HTTP answer (${why})`,
      { host: hostOf(this.url) },
    );
  }

  /** Body bytes of one read: to the reader now, or held (socket paused) until it asks. */
  private readBody(bytes: Buffer): boolean {
    const body = this.body!;
    if (!body.flowing()) {
      // The socket is paused while nobody reads, but a TLS socket still hands over the rest of
      // the records it decrypted from its last TCP read: they queue behind the bytes held (in
      // order), and never as a view of the shared buffer.
      this.pending = this.pending ? Buffer.concat([this.pending, bytes]) : Buffer.from(bytes);
      this.held = true;
      return false;
    }
    return this.deliver(bytes);
  }

  /** Hands body bytes to the reader, never past the declared end; false pauses the socket. */
  private deliver(bytes: Buffer): boolean {
    if (this.chunks) return this.deliverChunks(bytes);
    const take = bytes.length > this.remaining ? bytes.subarray(0, this.remaining) : bytes;
    const extra = take.length < bytes.length;
    this.remaining -= take.length;
    const more = take.length > 0 ? this.body!.feed(take) : true;
    if (this.phase !== 'body') return false; // the reader stopped, or failed
    if (this.remaining === 0) {
      this.finish(!extra);
      return !extra;
    }
    if (!more) return false;
    return true;
  }

  /** A chunked body's bytes: its data to the reader, never a byte past its last chunk. */
  private deliverChunks(bytes: Buffer): boolean {
    const body = this.body!;
    let more = true;
    let end: number;
    try {
      end = this.chunks!.feed(bytes, (data) => {
        // Data of one read after the reader stopped is dropped with the connection.
        if (this.phase === 'body' && data.length > 0) more = body.feed(data) && more;
      });
    } catch (error) {
      this.fail(this.malformed((error as Error).message));
      return false;
    }
    if (this.phase !== 'body') return false;
    if (end >= 0) {
      this.remaining = 0;
      this.finish(end === bytes.length);
      return end === bytes.length;
    }
    return more;
  }

  /** Called by the body when its reader wants bytes again. */
  resume(): void {
    if (this.phase !== 'body') return;
    this.held = false;
    const pending = this.pending;
    if (pending) {
      this.pending = undefined;
      // The reader may stop, or the body end, within these bytes (a kept connection reads on).
      if (!this.deliver(pending)) return;
    }
    this.socket.resume();
  }

  /** The body is read to its declared end: the connection is kept when nothing else came. */
  private finish(inStep: boolean): void {
    this.phase = 'done';
    this.pending = undefined;
    this.socket.setTimeout(0);
    this.signal?.removeEventListener('abort', this.onAbort);
    const body = this.body!;
    const keep = inStep && this.head!.reusable && !this.destroyed;
    this.phase = keep ? 'idle' : 'done';
    this.reused = true;
    // A kept connection never holds the process open (as node:http's agent does with its own).
    if (keep) this.socket.unref();
    this.release(this, keep);
    body.ended();
  }

  private readonly onEnd = () => {
    // The end is read only while the socket reads, so no body bytes are held back here.
    if (this.phase === 'body' && this.remaining === Number.POSITIVE_INFINITY && !this.chunks) {
      // A body without a length ends with its connection.
      this.remaining = 0;
      this.finish(false);
      return;
    }
    this.fail(this.phase === 'body' ? cutShort() : hangUp());
  };

  /** The request or its body fails with `error`; the connection is closed. */
  fail(error: unknown): void {
    clearTimeout(this.headDeadline);
    this.signal?.removeEventListener('abort', this.onAbort);
    const phase = this.phase;
    this.phase = 'done';
    this.pending = undefined;
    this.destroy();
    if (phase === 'head') {
      const refused = this.refused;
      this.answered = undefined;
      this.refused = undefined;
      refused?.(error);
    } else if (phase === 'body') {
      this.body?.failed(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** The reader stopped early: the rest of the body is in flight, so the connection goes. */
  abandon(): void {
    if (this.phase === 'body') {
      this.phase = 'done';
      this.pending = undefined;
      this.signal?.removeEventListener('abort', this.onAbort);
      clearTimeout(this.headDeadline);
    }
    this.destroy();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.socket.destroy();
    this.release(this, false);
  }
}

/**
 * An answer's body. The engine reads a bulk body through `pump` (each read's bytes, in place,
 * to a synchronous sink); anything else reads it as a stream (each chunk a copy), as it would
 * read node:http's: error snippets, the redirect's page, a body to discard.
 */
export class RawBody extends Readable {
  private sink: BodySink | undefined;
  private wanted = false;
  /** How the body ended before a sink came (undefined: not yet; null: at its length). */
  private outcome: Error | null | undefined;
  private told = false;

  constructor(
    private readonly connection: Connection,
    /** The declared length (undefined: the body runs to the connection's close). */
    readonly length: number | undefined,
  ) {
    super();
  }

  /** Reads the body into `sink` from now on (and never as a stream). */
  pump(sink: BodySink): void {
    if (this.sink) throw new Error('a body is read once');
    this.sink = sink;
    if (this.outcome !== undefined) this.tell(this.outcome ?? undefined);
    else this.connection.resume();
  }

  /**
   * undici's `dump`: the body is not wanted. A short one (a redirect's page) is read to its end
   * so its connection carries the next request; a longer one, or one of unknown length, is cut.
   */
  dump(): Promise<void> {
    if (this.destroyed || this.readableEnded) return Promise.resolve();
    if (this.sink || this.length === undefined || this.length > DRAIN_LIMIT) {
      this.destroy();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.on('error', () => resolve());
      this.once('close', () => resolve());
      this.resume();
    });
  }

  /** Whether a reader is taking bytes now. */
  flowing(): boolean {
    return this.sink !== undefined || this.wanted;
  }

  /** Bytes from the connection; false to pause it. */
  feed(view: Buffer): boolean {
    if (this.sink) {
      if (this.sink.data(view)) return true;
      this.tell();
      this.connection.abandon();
      return false;
    }
    this.wanted = this.push(Buffer.from(view));
    return this.wanted;
  }

  ended(): void {
    if (this.sink) {
      this.tell();
      return;
    }
    this.outcome ??= null;
    this.push(null);
  }

  failed(error: Error): void {
    if (this.sink) {
      this.tell(error);
      return;
    }
    this.outcome ??= error;
    this.destroy(error);
  }

  private tell(error?: Error): void {
    if (this.told) return;
    this.told = true;
    this.sink!.end(error);
  }

  override _read(): void {
    this.wanted = true;
    this.connection.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.outcome === undefined && !this.told) {
      this.outcome = error ?? new Error('the response body was destroyed');
      this.connection.abandon();
      if (this.sink) this.tell(this.outcome);
    }
    callback(error);
  }
}

/** The request's bytes: a GET with the caller's headers, Host, and keep-alive (HTTP/1.1's default). */
function requestBytes(target: URL, headers: Readonly<Record<string, string>>): string {
  let text = `GET ${target.pathname}${target.search} HTTP/1.1\r\nhost: ${target.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) text += `${name}: ${value}\r\n`;
  return `${text}connection: keep-alive\r\n\r\n`;
}

/**
 * Whether a request may go through the raw reader: header names that are tokens and values of
 * latin1 text without control characters (client.ts refused line breaks already), and no header
 * that carries a secret.
 */
export function rawEligible(target: URL, headers: Readonly<Record<string, string>>): boolean {
  if (target.protocol !== 'http:' && target.protocol !== 'https:') return false;
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name)) return false;
    if (
      /^(authorization|proxy-authorization|cookie|host|connection|transfer-encoding|content-length)$/i.test(
        name,
      )
    )
      return false;
    if (!FIELD_VALUE.test(value)) return false;
  }
  return true;
}
