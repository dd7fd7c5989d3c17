import type { IncomingHttpHeaders } from 'node:http';

/**
 * The most a response head may take (status line and header lines with their CRLFs, and the
 * empty line): node:http's default bound. A server sending more is broken or hostile.
 */
export const MAX_HEAD_BYTES = 16 * 1024;

/** A response head, parsed and judged: what the raw reader (raw.ts) needs to read its body. */
export interface ResponseHead {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  /**
   * Body bytes that follow the head: a number for a Content-Length (0 for 204 and 304), or
   * 'chunked' for a chunked body, 'close' when the body runs until the server closes the
   * connection.
   */
  readonly bodyLength: number | 'chunked' | 'close';
  /** The connection may carry another request once this body is read to its declared end. */
  readonly reusable: boolean;
}

/**
 * How a head is judged: `head` is one the raw reader takes; `foreign` is well formed but not for
 * it (a Transfer-Encoding, an interim 1xx answer), so the request goes again through node:http;
 * `malformed` breaks the grammar (a network error, retried like a reset).
 */
export type HeadVerdict =
  | { readonly kind: 'head'; readonly head: ResponseHead }
  | { readonly kind: 'foreign'; readonly why: string }
  | { readonly kind: 'malformed'; readonly why: string };

/** The end of the head in `bytes` (the index after its empty line), or -1 while it is incomplete. */
export function headEnd(bytes: Buffer): number {
  const at = bytes.indexOf('\r\n\r\n', 0, 'latin1');
  return at < 0 ? -1 : at + 4;
}

/** RFC 9110's token (a header name) and the characters a field value may hold (no controls). */
const TOKEN_SOURCE = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const TEXT_SOURCE = '[\\t\\x20-\\x7e\\x80-\\xff]';
export const TOKEN = new RegExp(`^${TOKEN_SOURCE}$`);
export const FIELD_VALUE = new RegExp(`^${TEXT_SOURCE}*$`);

const STATUS_LINE = new RegExp(`^HTTP/1\\.([01]) ([1-9]\\d\\d)(?: ${TEXT_SOURCE}*)?$`);
const HEADER_LINE = new RegExp(`^(${TOKEN_SOURCE}):[\\t ]*(${TEXT_SOURCE}*?)[\\t ]*$`);
const DIGITS = /^\d{1,16}$/;

/**
 * Headers that say one thing: a second copy that differs makes the head malformed (two lengths
 * or two ranges would let a server pick which one we believe); equal copies count once.
 */
const SINGLE = new Set([
  'content-length',
  'content-range',
  'content-type',
  'content-encoding',
  'location',
  'retry-after',
  'etag',
  'last-modified',
]);

/**
 * Parses a complete response head (`text`: its bytes as latin1, the final empty line included)
 * by RFC 9112's grammar with no leniency: every line ends in CRLF (a bare CR or LF, a NUL or any
 * other control character outside HTAB is refused), no line folding, header names are tokens, and
 * the body length follows from the status and the headers alone. Header names come out in lower
 * case, repeated values joined with ", " (set-cookie kept as a list), as node:http gives them.
 */
export function parseHead(text: string): HeadVerdict {
  if (!text.endsWith('\r\n\r\n'))
    return { kind: 'malformed', why: 'the head does not end with an empty line' };
  const lines = text.slice(0, -4).split('\r\n');
  const status = STATUS_LINE.exec(lines[0]!);
  if (!status) return { kind: 'malformed', why: 'bad status line' };
  const minor = status[1];
  const statusCode = Number(status[2]);
  const headers: Record<string, string | string[]> = {};
  for (let i = 1; i < lines.length; i++) {
    const match = HEADER_LINE.exec(lines[i]!);
    if (!match) return { kind: 'malformed', why: 'bad header line' };
    const name = match[1]!.toLowerCase();
    const value = match[2]!;
    const seen = headers[name];
    if (seen === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(seen)) seen.push(value);
    else if (SINGLE.has(name)) {
      if (seen !== value) return { kind: 'malformed', why: `conflicting ${name} headers` };
    } else headers[name] = `${seen}, ${value}`;
  }
  if (statusCode < 200) return { kind: 'foreign', why: `interim answer ${statusCode}` };
  const connection = String(headers.connection ?? '').toLowerCase();
  const keepAlive = minor === '1' ? !/(^|[\s,])close($|[\s,])/.test(connection) : false;
  if (statusCode === 204 || statusCode === 304) {
    return { kind: 'head', head: { statusCode, headers, bodyLength: 0, reusable: keepAlive } };
  }
  const coding = headers['transfer-encoding'];
  if (coding !== undefined) {
    // A length beside a coding is how requests are smuggled: refused, not guessed at.
    if (headers['content-length'] !== undefined) {
      return { kind: 'malformed', why: 'both Transfer-Encoding and Content-Length' };
    }
    // Only plain chunked is read here; other codings (gzip, chunked) go to node:http.
    if (String(coding).toLowerCase() !== 'chunked' || minor !== '1') {
      return { kind: 'foreign', why: `Transfer-Encoding ${String(coding).slice(0, 40)}` };
    }
    return { kind: 'head', head: { statusCode, headers, bodyLength: 'chunked', reusable: keepAlive } };
  }
  const length = headers['content-length'];
  if (length === undefined) {
    return { kind: 'head', head: { statusCode, headers, bodyLength: 'close', reusable: false } };
  }
  if (typeof length !== 'string' || !DIGITS.test(length) || !Number.isSafeInteger(Number(length))) {
    return { kind: 'malformed', why: 'bad content-length' };
  }
  return { kind: 'head', head: { statusCode, headers, bodyLength: Number(length), reusable: keepAlive } };
}

/** The most a chunk-size line or the trailer section may take. */
const MAX_CHUNK_LINE = 1024;

const CHUNK_SIZE = /^([0-9a-fA-F]{1,12})[\t ]*(?:;[\t\x20-\x7e\x80-\xff]*)?$/;

/**
 * Reads a chunked body (RFC 9112 §7.1) as it arrives, as strictly as the head: every line ends
 * in CRLF, a chunk's data is followed by exactly CRLF, sizes are at most 12 hex digits, size
 * lines and the trailer section are bounded, and trailer fields are read and dropped. Servers
 * answer errors and redirects this way (node:http does for a status with no length), so those
 * answers are read here and not sent again.
 */
export class ChunkedDecoder {
  private state: 'size' | 'data' | 'data-end' | 'trailer' = 'size';
  private line = '';
  private left = 0;
  private trailer = 0;

  /**
   * Takes the next bytes of the body; its data goes to `out` as views of `bytes`. Returns the
   * index just after the body's last byte once it ends within `bytes`, -1 while it goes on.
   * Throws an Error naming what is malformed.
   */
  feed(bytes: Buffer, out: (data: Buffer) => void): number {
    let i = 0;
    while (i < bytes.length) {
      if (this.state === 'data') {
        const n = Math.min(this.left, bytes.length - i);
        out(bytes.subarray(i, i + n));
        i += n;
        this.left -= n;
        if (this.left === 0) this.state = 'data-end';
        continue;
      }
      const lf = bytes.indexOf(10, i);
      const stop = lf < 0 ? bytes.length : lf + 1;
      this.line += bytes.toString('latin1', i, stop);
      i = stop;
      const limit = this.state === 'trailer' ? MAX_HEAD_BYTES - this.trailer : MAX_CHUNK_LINE;
      if (this.line.length > limit) throw new Error('a chunk line or the trailer is too long');
      if (lf < 0) break;
      const line = this.line;
      this.line = '';
      if (!line.endsWith('\r\n')) throw new Error('a chunk line does not end with CRLF');
      const text = line.slice(0, -2);
      if (this.state === 'data-end') {
        if (text !== '') throw new Error('chunk data longer than its size');
        this.state = 'size';
      } else if (this.state === 'size') {
        const size = CHUNK_SIZE.exec(text);
        if (!size) throw new Error('bad chunk size');
        this.left = Number.parseInt(size[1]!, 16);
        this.state = this.left === 0 ? 'trailer' : 'data';
      } else {
        if (text === '') return i;
        if (!HEADER_LINE.test(text)) throw new Error('bad trailer line');
        this.trailer += line.length;
      }
    }
    return -1;
  }
}
