import type { Readable } from 'node:stream';
import { ModelPullError, redactUrl } from '../errors.js';
import { formatBytes } from '../report/format.js';
import type { HttpResponse } from './client.js';
import { hostOf, networkError } from './errors.js';
import { parseRetryAfter } from './retry.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** The most of an unwanted body (a redirect's page) read to keep its connection; beyond, it is cut. */
export const DRAIN_LIMIT = 64 * KiB;

/**
 * The most we read into memory for each kind of answer. Model bytes never come through here
 * (the engine streams them to disk); everything that does is small by nature, and a server
 * that sends more is broken or hostile (an endless body once took a pull to 16 GB of memory).
 */
export const BODY_LIMITS = {
  /** API documents: Hub revision and tree pages (1,000 entries a page), Ollama's local API. */
  json: 16 * MiB,
  /** A registry token realm's answer (a JWT of a few KiB). */
  token: 1 * MiB,
  /** A release's sha256sum.txt (one line per asset). */
  checksums: 1 * MiB,
  /** What an error message quotes from an error body. */
  errorText: 4 * KiB,
} as const;

const noop = () => undefined;

/**
 * Lets go of a body we will not read, now: no unhandled 'error' event (undici reports the
 * destroy as an abort, and a body that already arrived whole has nobody left to hear it), no
 * socket held by a body that trickles.
 */
export function discardBody(body: Readable): void {
  body.on('error', noop);
  if (!body.destroyed) body.destroy();
}

/**
 * Reads a whole body into memory, refusing more than `limit` bytes with ERR_TOO_LARGE (the
 * Content-Length is checked first, then every chunk). `what` names the answer in the error.
 */
export async function readBody(response: HttpResponse, limit: number, what: string): Promise<Buffer> {
  const tooLarge = () => {
    discardBody(response.body);
    return new ModelPullError(
      'ERR_TOO_LARGE',
      `${what} from ${redactUrl(response.url)} is larger than ${formatBytes(limit)}; refusing to read it`,
      { host: hostOf(response.url) },
    );
  };
  // Leaving the loop early destroys the body; that must not become an unhandled 'error'.
  response.body.on('error', noop);
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body) {
      total += (chunk as Buffer).length;
      if (total > limit) throw tooLarge();
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    throw networkError(error, response.url);
  }
  return Buffer.concat(chunks);
}

export async function readText(response: HttpResponse, limit: number, what: string): Promise<string> {
  return (await readBody(response, limit, what)).toString('utf8');
}

/**
 * A JSON document of at most `limit` bytes. Text that does not parse is treated like a cut
 * connection (ERR_NETWORK, retried): proxies and overloaded servers answer 200 with junk.
 */
export async function readJson(response: HttpResponse, limit: number, what: string): Promise<unknown> {
  const text = await readText(response, limit, what);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ModelPullError('ERR_NETWORK', `${what} from ${redactUrl(response.url)} is not valid JSON`, {
      cause: error,
      host: hostOf(response.url),
    });
  }
}

/** Up to `max` bytes of a body as text, the rest discarded; never throws (for error messages). */
export async function readSnippet(
  response: HttpResponse,
  max: number = BODY_LIMITS.errorText,
): Promise<string> {
  response.body.on('error', noop);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body) {
      chunks.push(chunk as Buffer);
      total += (chunk as Buffer).length;
      if (total >= max) break;
    }
  } catch {
    // whatever arrived is the snippet
  }
  discardBody(response.body);
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}

/** Reads a little of a non-2xx answer and turns it into an error; 429 carries the server's wait. */
export async function statusError(response: HttpResponse, what?: string): Promise<ModelPullError> {
  const detail = (await readSnippet(response)).slice(0, 200).replace(/\s+/g, ' ').trim();
  const retryAfterSeconds = parseRetryAfter(response.headers);
  const subject = what ?? redactUrl(response.url);
  const code = response.status === 429 ? 'ERR_RATE_LIMITED' : 'ERR_HTTP_STATUS';
  return new ModelPullError(code, `HTTP ${response.status} from ${subject}${detail ? `: ${detail}` : ''}`, {
    status: response.status,
    retryAfterSeconds,
    host: hostOf(response.url),
  });
}
