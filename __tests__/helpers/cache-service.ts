import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tamperArchive } from './cache-archive.js';
import { parseRange, startServer, type TestServer } from './http.js';

/**
 * A local GitHub Actions cache service, v2, as @actions/cache 6.3 speaks it:
 *
 * - Twirp JSON: `POST /twirp/github.actions.results.api.v1.CacheService/<Method>` with
 *   `Authorization: Bearer <ACTIONS_RUNTIME_TOKEN>` and snake_case bodies; errors are Twirp JSON
 *   (`{code, msg}`) with the HTTP status, which is what the client's retry loop reads.
 * - The archive goes to the signed upload URL through the Azure Blob SDK (`BlockBlobClient.uploadFile`):
 *   one `PUT` with `x-ms-blob-type: BlockBlob` up to 128 MiB (the library's `maxSingleShotSize`),
 *   above that `PUT ?comp=block&blockid=…` per 64 MiB block and `PUT ?comp=blocklist` with the XML
 *   list. Both answer 201.
 * - The archive comes back by a plain `GET` of the signed download URL (@actions/http-client; the
 *   Azure SDK's ranged download is used only for `*.blob.core.windows.net` hosts). GET and HEAD
 *   honour `Range` all the same.
 */
export type TwirpMethod = 'GetCacheEntryDownloadURL' | 'CreateCacheEntry' | 'FinalizeCacheEntryUpload';

export type CacheFault =
  /** Twirp calls (all, or the listed ones) answer this status with a Twirp error body. */
  | { kind: 'status'; status: number; retryAfterSeconds?: number; methods?: readonly TwirpMethod[] }
  /** CreateCacheEntry answers 409 `already_exists`, as when another job reserved the key. */
  | { kind: 'reserve-conflict' }
  /** CreateCacheEntry answers 200 `{ok: false, message}`. */
  | { kind: 'reserve-not-ok'; message?: string }
  /** Archive PUT and/or GET answer this status (Azure XML error body for PUTs). */
  | { kind: 'blob-status'; status: number; methods?: readonly ('PUT' | 'GET')[] }
  /** Archive GETs send their body at this many bytes per second each (64 KiB at a time). */
  | { kind: 'blob-rate'; bytesPerSecond: number };

export interface ServiceCall {
  /** A Twirp method, or `PUT blob`, `PUT block`, `PUT blocklist`, `GET archive`, `HEAD archive`. */
  readonly call: string;
  readonly status: number;
  /** Parsed Twirp request body. */
  readonly body?: Readonly<Record<string, unknown>>;
  readonly range?: string;
}

export interface StoredEntry {
  readonly id: number;
  readonly key: string;
  readonly version: string;
  archive: Buffer | undefined;
  readonly blocks: Map<string, Buffer>;
  finalized: boolean;
}

export interface CacheService {
  readonly url: string;
  readonly token: string;
  /** What to give the client: ACTIONS_CACHE_SERVICE_V2, ACTIONS_RESULTS_URL (with trailing `/`), ACTIONS_RUNTIME_TOKEN. */
  readonly env: Readonly<Record<string, string>>;
  /** Every request as the service understood it, in arrival order. */
  readonly calls: ServiceCall[];
  readonly server: TestServer;
  entries(): StoredEntry[];
  entry(key: string): StoredEntry | undefined;
  count(call: string): number;
  setFault(fault: CacheFault | undefined): void;
  /** Flips the bytes of the matching files inside a finalized entry's archive; returns their names. */
  tamper(key: string, pick: (memberName: string) => boolean): string[];
  /**
   * Replaces a finalized entry's archive with other bytes: what a job with write access to the
   * scope can do by saving first under the same (public) key and version.
   */
  replaceArchive(key: string, archive: Buffer): void;
  close(): Promise<void>;
}

const TWIRP_PREFIX = '/twirp/github.actions.results.api.v1.CacheService/';
const BLOB_PREFIX = '/devstoreaccount1/cache/';

export async function startCacheService(): Promise<CacheService> {
  const state = new ServiceState(`test-runtime-token-${randomBytes(6).toString('hex')}`);
  const server = await startServer((req, res) => state.handle(req, res));
  state.base = server.url;
  return {
    url: server.url,
    token: state.token,
    env: {
      ACTIONS_CACHE_SERVICE_V2: 'true',
      ACTIONS_RESULTS_URL: `${server.url}/`,
      ACTIONS_RUNTIME_TOKEN: state.token,
    },
    calls: state.calls,
    server,
    entries: () => [...state.entries.values()],
    entry: (key) => [...state.entries.values()].find((e) => e.key === key && e.finalized),
    count: (call) => state.calls.filter((c) => c.call === call).length,
    setFault: (fault) => {
      state.fault = fault;
    },
    tamper: (key, pick) => {
      const entry = [...state.entries.values()].find((e) => e.key === key && e.finalized && e.archive);
      if (!entry?.archive) throw new Error(`no stored archive for ${key}`);
      const { archive, changed } = tamperArchive(entry.archive, pick);
      entry.archive = archive;
      return changed;
    },
    replaceArchive: (key, archive) => {
      const entry = [...state.entries.values()].find((e) => e.key === key && e.finalized && e.archive);
      if (!entry) throw new Error(`no stored archive for ${key}`);
      entry.archive = archive;
    },
    close: () => server.close(),
  };
}

class ServiceState {
  readonly token: string;
  readonly calls: ServiceCall[] = [];
  /** By `key \0 version`: the service keeps one entry per key and version. */
  readonly entries = new Map<string, StoredEntry>();
  /** Signature → entry id and what it allows; a wrong or missing `sig` gets 403 as from Azure. */
  readonly signatures = new Map<string, { id: number; access: 'read' | 'write' }>();
  fault: CacheFault | undefined;
  base = '';
  #nextId = 1;

  constructor(token: string) {
    this.token = token;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const body = await readBody(req);
    if (req.method === 'POST' && url.pathname.startsWith(TWIRP_PREFIX)) {
      this.twirp(url.pathname.slice(TWIRP_PREFIX.length), req, body, res);
    } else if (url.pathname.startsWith(BLOB_PREFIX)) {
      this.blob(url, req, body, res);
    } else {
      this.record({ call: `${req.method} ${url.pathname}`, status: 404 });
      res.writeHead(404).end();
    }
  }

  record(call: ServiceCall): void {
    this.calls.push(call);
  }

  twirp(method: string, req: IncomingMessage, raw: Buffer, res: ServerResponse) {
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(raw.toString('utf8') || '{}') as Record<string, unknown>;
    } catch {
      return this.twirpError(res, method, body, 400, 'malformed', 'request body is not JSON');
    }
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      return this.twirpError(res, method, body, 401, 'unauthenticated', 'invalid runtime token');
    }
    const fault = this.fault;
    if (fault?.kind === 'status' && (!fault.methods || fault.methods.includes(method as TwirpMethod))) {
      const code = fault.status === 429 ? 'resource_exhausted' : fault.status >= 500 ? 'internal' : 'unknown';
      const headers: Record<string, string> = {};
      if (fault.retryAfterSeconds) headers['retry-after'] = String(fault.retryAfterSeconds);
      return this.twirpError(res, method, body, fault.status, code, `injected ${fault.status}`, headers);
    }
    switch (method) {
      case 'GetCacheEntryDownloadURL':
        return this.json(res, method, body, this.lookup(body));
      case 'CreateCacheEntry':
        return this.create(res, body);
      case 'FinalizeCacheEntryUpload':
        return this.json(res, method, body, this.finalize(body));
      default:
        return this.twirpError(res, method, body, 404, 'bad_route', `no such method ${method}`);
    }
  }

  /** The primary key must match exactly; restore keys match exactly, then by prefix, newest first. */
  lookup(body: Record<string, unknown>): Record<string, unknown> {
    const version = String(body['version'] ?? '');
    const done = [...this.entries.values()].filter((e) => e.finalized && e.version === version).reverse();
    const restoreKeys = Array.isArray(body['restore_keys']) ? body['restore_keys'].map(String) : [];
    let hit = done.find((e) => e.key === body['key']);
    for (const prefix of restoreKeys) {
      hit ??= done.find((e) => e.key === prefix) ?? done.find((e) => e.key.startsWith(prefix));
    }
    if (!hit) return { ok: false };
    return { ok: true, signed_download_url: this.sign(hit.id, 'read'), matched_key: hit.key };
  }

  create(res: ServerResponse, body: Record<string, unknown>) {
    const method = 'CreateCacheEntry';
    const id = `${String(body['key'])}\0${String(body['version'])}`;
    if (this.fault?.kind === 'reserve-not-ok') {
      return this.json(res, method, body, {
        ok: false,
        message: this.fault.message ?? 'cache entry is locked',
      });
    }
    if (this.fault?.kind === 'reserve-conflict' || this.entries.has(id)) {
      const msg = 'cache entry with the same key, version, and scope already exists';
      return this.twirpError(res, method, body, 409, 'already_exists', msg);
    }
    const entry: StoredEntry = {
      id: this.#nextId++,
      key: String(body['key']),
      version: String(body['version']),
      archive: undefined,
      blocks: new Map(),
      finalized: false,
    };
    this.entries.set(id, entry);
    this.json(res, method, body, { ok: true, signed_upload_url: this.sign(entry.id, 'write') });
  }

  finalize(body: Record<string, unknown>): Record<string, unknown> {
    const entry = this.entries.get(`${String(body['key'])}\0${String(body['version'])}`);
    if (!entry || entry.finalized || !entry.archive) return { ok: false, message: 'no upload to finalize' };
    if (String(entry.archive.length) !== String(body['size_bytes'])) {
      return {
        ok: false,
        message: `size ${String(body['size_bytes'])} does not match ${entry.archive.length} uploaded`,
      };
    }
    entry.finalized = true;
    return { ok: true, entry_id: String(entry.id) };
  }

  blob(url: URL, req: IncomingMessage, body: Buffer, res: ServerResponse) {
    const comp = url.searchParams.get('comp');
    const call = req.method === 'PUT' ? `PUT ${comp ?? 'blob'}` : `${req.method} archive`;
    const range = req.headers.range;
    const fault = this.fault;
    const verb = req.method === 'PUT' ? 'PUT' : 'GET';
    if (fault?.kind === 'blob-status' && (!fault.methods || fault.methods.includes(verb))) {
      this.record({ call, status: fault.status, range });
      return azureError(res, fault.status, 'InjectedFault', `injected ${fault.status}`);
    }
    const grant = this.signatures.get(url.searchParams.get('sig') ?? '');
    const entry = [...this.entries.values()].find((e) => e.id === grant?.id);
    const wanted = req.method === 'PUT' ? 'write' : 'read';
    if (!grant || !entry || grant.access !== wanted || `${BLOB_PREFIX}${entry.id}` !== url.pathname) {
      this.record({ call, status: 403, range });
      return azureError(res, 403, 'AuthenticationFailed', 'Signature did not match');
    }
    if (req.method === 'PUT') return this.put(entry, url, comp, body, res, call);
    return this.get(entry, req, res, call);
  }

  put(entry: StoredEntry, url: URL, comp: string | null, body: Buffer, res: ServerResponse, call: string) {
    if (entry.finalized) {
      this.record({ call, status: 409 });
      return azureError(res, 409, 'BlobImmutable', 'entry already finalized');
    }
    if (comp === 'block') {
      entry.blocks.set(url.searchParams.get('blockid') ?? '', body);
    } else if (comp === 'blocklist') {
      const ids = [...body.toString('utf8').matchAll(/<(Latest|Uncommitted|Committed)>([^<]*)<\/\1>/g)].map(
        (m) => m[2],
      );
      const missing = ids.find((id) => !entry.blocks.has(id ?? ''));
      if (missing !== undefined) {
        this.record({ call, status: 400 });
        return azureError(res, 400, 'InvalidBlockList', `block ${missing} was not staged`);
      }
      entry.archive = Buffer.concat(ids.map((id) => entry.blocks.get(id ?? '') as Buffer));
      entry.blocks.clear();
    } else {
      entry.archive = body;
    }
    this.record({ call, status: 201 });
    res.writeHead(201, {
      etag: `"0x${entry.id}"`,
      'last-modified': new Date().toUTCString(),
      'x-ms-version': '2026-02-06',
    });
    res.end();
  }

  get(entry: StoredEntry, req: IncomingMessage, res: ServerResponse, call: string) {
    const data = entry.finalized ? entry.archive : undefined;
    if (!data) {
      this.record({ call, status: 404 });
      return azureError(res, 404, 'BlobNotFound', 'The specified blob does not exist.');
    }
    const header = req.headers.range;
    const range = parseRange(header, data.length);
    if (header && !range) {
      this.record({ call, status: 416, range: header });
      res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
      return;
    }
    const part = range ? data.subarray(range.start, range.end + 1) : data;
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
      'content-length': part.length,
      'accept-ranges': 'bytes',
    };
    if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${data.length}`;
    this.record({ call, status: range ? 206 : 200, range: header });
    res.writeHead(range ? 206 : 200, headers);
    const fault = this.fault;
    if (fault?.kind !== 'blob-rate' || req.method === 'HEAD') {
      res.end(req.method === 'HEAD' ? undefined : part);
      return;
    }
    const piece = 64 * 1024;
    const pause = (piece * 1000) / fault.bytesPerSecond;
    let at = 0;
    const next = () => {
      if (res.destroyed) return;
      if (at >= part.length) return void res.end();
      res.write(part.subarray(at, at + piece));
      at += piece;
      setTimeout(next, pause);
    };
    next();
  }

  sign(id: number, access: 'read' | 'write'): string {
    const sig = randomBytes(16).toString('base64url');
    this.signatures.set(sig, { id, access });
    const expiry = new Date(Date.now() + 3_600_000).toISOString();
    return `${this.base}${BLOB_PREFIX}${id}?sv=2025-01-05&sp=${access === 'read' ? 'r' : 'cw'}&se=${expiry}&sig=${sig}`;
  }

  json(
    res: ServerResponse,
    method: string,
    body: Record<string, unknown>,
    answer: Record<string, unknown>,
  ): void {
    this.record({ call: method, status: 200, body });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  }

  twirpError(
    res: ServerResponse,
    method: string,
    body: Record<string, unknown>,
    status: number,
    code: string,
    msg: string,
    headers: Record<string, string> = {},
  ): void {
    this.record({ call: method, status, body });
    res
      .writeHead(status, { 'content-type': 'application/json', ...headers })
      .end(JSON.stringify({ code, msg }));
  }
}

function azureError(res: ServerResponse, status: number, code: string, message: string): void {
  const xml = `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'x-ms-error-code': code }).end(xml);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
