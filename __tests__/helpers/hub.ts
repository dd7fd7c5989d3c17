import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gitBlobSha1Hex, sha256Hex } from '../../src/digest.js';
import { parseRange, startServer, type TestServer } from './http.js';

/**
 * A local Hugging Face Hub speaking the endpoints and headers of docs/registries.md
 * ("Hugging Face Hub"): revision API, paginated recursive tree (Link rel="next"), resolve (200 + ETag for small
 * files, 302 to a CDN on another origin for LFS files), X-Error-Code errors, 429 bursts; and the
 * CDN, which records Authorization headers, serves ranges and can expire or corrupt.
 */

export interface HubFileSpec {
  readonly path: string;
  readonly content: Uint8Array;
  /** Stored in LFS: listed with lfs.oid (sha256), resolved through the CDN. */
  readonly lfs?: boolean;
  /** The content's sha256 when already known (the bench's 1 GiB blob), so it is not hashed again. */
  readonly sha256?: string;
}

export interface HubRepoSpec {
  readonly type?: 'model' | 'dataset' | 'space';
  /** owner/name */
  readonly id: string;
  /** Branch, tag or `refs/pr/N` → commit. */
  readonly refs: Readonly<Record<string, string>>;
  readonly commits: Readonly<Record<string, readonly HubFileSpec[]>>;
  /** Needs a token the repo accepts; anonymous gets 401, others 403, both X-Error-Code GatedRepo. */
  readonly gated?: boolean;
  /** Invisible (401/404 RepoNotFound) without an accepted token. */
  readonly private?: boolean;
  readonly acceptedTokens?: readonly string[];
  /** `user:password` pairs accepted as Basic auth (a mirror behind a login). */
  readonly acceptedBasic?: readonly string[];
}

export interface HubFaults {
  /** Each API request takes the next header set and answers 429 with it. */
  rateLimits: Record<string, string>[];
  /** The first signed URL handed out for each LFS blob answers 403 (expired). */
  expireFirstUrl: boolean;
  /** sha256 of LFS blobs whose CDN bytes get one byte flipped. */
  corrupt: Set<string>;
}

export interface LocalHub {
  readonly url: string;
  readonly cdnUrl: string;
  readonly hub: TestServer;
  readonly cdn: TestServer;
  readonly faults: HubFaults;
  /** Authorization headers the CDN received (must stay empty). */
  cdnAuthorizations(): string[];
  requestCount(): number;
  close(): Promise<void>;
}

export function randomCommit(): string {
  return randomBytes(20).toString('hex');
}

export function fileBytes(text: string | number): Uint8Array {
  if (typeof text === 'number') return new Uint8Array(randomBytes(text));
  return new TextEncoder().encode(text);
}

interface Indexed {
  readonly spec: HubFileSpec;
  /** The git object id the tree lists: of the content, or of the LFS pointer for LFS files. */
  readonly sha1: string;
  readonly sha256: string;
  readonly pointerSize?: number;
}

/** The git-lfs pointer file that git stores in place of an LFS file's content. */
export function lfsPointer(content: Uint8Array): Uint8Array {
  return fileBytes(
    `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256Hex(content)}\nsize ${content.length}\n`,
  );
}

function indexed(spec: HubFileSpec): Indexed {
  const sha256 = spec.sha256 ?? sha256Hex(spec.content);
  if (!spec.lfs) return { spec, sha1: gitBlobSha1Hex(spec.content), sha256 };
  const pointer = lfsPointer(spec.content);
  return { spec, sha1: gitBlobSha1Hex(pointer), sha256, pointerSize: pointer.length };
}

/**
 * Writes a response's body (headers already sent): all at once by default; the bench's hub
 * sends the CDN's bytes through a per-connection rate cap instead.
 */
export type BodyWriter = (
  req: IncomingMessage,
  res: ServerResponse,
  body: Uint8Array,
) => void | Promise<void>;

const writeAll: BodyWriter = (_req, res, body) => {
  res.end(body);
};

export async function startHub(
  repos: readonly HubRepoSpec[],
  options: { pageSize?: number; cdnWriter?: BodyWriter } = {},
): Promise<LocalHub> {
  const pageSize = options.pageSize ?? 2;
  const cdnWriter = options.cdnWriter ?? writeAll;
  const faults: HubFaults = { rateLimits: [], expireFirstUrl: false, corrupt: new Set() };
  const lfsBlobs = new Map<string, Uint8Array>();
  const signed = new Map<string, number>();
  const index = new Map<string, Map<string, Indexed>>();
  for (const repo of repos) {
    for (const [commit, files] of Object.entries(repo.commits)) {
      const byPath = new Map<string, Indexed>();
      for (const spec of files) {
        const entry = indexed(spec);
        byPath.set(spec.path, entry);
        if (spec.lfs) lfsBlobs.set(entry.sha256, spec.content);
      }
      index.set(`${repoKey(repo)}@${commit}`, byPath);
    }
  }

  const cdn = await startServer((req, res) => serveCdn(req, res, lfsBlobs, signed, faults, cdnWriter));
  const hub = await startServer((req, res) =>
    serveHub(req, res, { repos, index, faults, cdnUrl: cdn.url, signed, pageSize, hubUrl: hub.url }),
  );
  return {
    url: hub.url,
    cdnUrl: cdn.url,
    hub,
    cdn,
    faults,
    cdnAuthorizations: () => cdn.requests.map((r) => r.headers.authorization).filter((a): a is string => !!a),
    requestCount: () => hub.requests.length + cdn.requests.length,
    close: async () => {
      await Promise.all([hub.close(), cdn.close()]);
    },
  };
}

function repoKey(repo: HubRepoSpec): string {
  return `${repo.type ?? 'model'}s/${repo.id}`;
}

interface HubState {
  readonly repos: readonly HubRepoSpec[];
  readonly index: Map<string, Map<string, Indexed>>;
  readonly faults: HubFaults;
  readonly cdnUrl: string;
  readonly hubUrl: string;
  readonly signed: Map<string, number>;
  readonly pageSize: number;
}

function fail(res: ServerResponse, status: number, code: string | undefined, message: string): void {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-error-message': message };
  if (code) headers['x-error-code'] = code;
  res.writeHead(status, headers);
  res.end(JSON.stringify({ error: message }));
}

function serveHub(req: IncomingMessage, res: ServerResponse, state: HubState): void {
  const url = new URL(req.url ?? '/', state.hubUrl);
  const api = /^\/api\/(models|datasets|spaces)\/([^/]+\/[^/]+)\/(revision|tree)\/(.+)$/.exec(url.pathname);
  if (api) {
    const limit = state.faults.rateLimits.shift();
    if (limit) {
      res.writeHead(429, limit);
      res.end('Too Many Requests');
      return;
    }
    const repo = findRepo(state, api[1]!, api[2]!);
    if (!access(req, res, repo)) return;
    const revision = decodeURIComponent(api[4]!);
    const commit = repo!.refs[revision] ?? (repo!.commits[revision] ? revision : undefined);
    if (!commit) {
      fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
      return;
    }
    if (api[3] === 'revision') {
      json(res, { id: repo!.id, sha: commit });
      return;
    }
    serveTree(res, url, state, repo!, commit);
    return;
  }
  const resolve = /^\/(?:(datasets|spaces)\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
  if (resolve) {
    serveResolve(req, res, state, resolve);
    return;
  }
  fail(res, 404, undefined, 'Not Found');
}

function findRepo(state: HubState, types: string, id: string): HubRepoSpec | undefined {
  return state.repos.find((r) => `${r.type ?? 'model'}s` === types && r.id === id);
}

/** 401 for anonymous requests to missing, private and gated repos alike; 403 GatedRepo with a token. */
function access(req: IncomingMessage, res: ServerResponse, repo: HubRepoSpec | undefined): boolean {
  const auth = req.headers.authorization;
  const token = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
  const basic = auth?.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString() : undefined;
  const accepted =
    (token !== undefined && (repo?.acceptedTokens ?? []).includes(token)) ||
    (basic !== undefined && (repo?.acceptedBasic ?? []).includes(basic));
  if (!repo || (repo.private && !accepted)) {
    fail(res, token ? 404 : 401, 'RepoNotFound', 'Repository not found');
    return false;
  }
  if (repo.gated && !accepted) {
    fail(res, token ? 403 : 401, 'GatedRepo', `Access to model ${repo.id} is restricted`);
    return false;
  }
  return true;
}

function json(res: ServerResponse, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function serveTree(res: ServerResponse, url: URL, state: HubState, repo: HubRepoSpec, commit: string): void {
  const files = [...state.index.get(`${repoKey(repo)}@${commit}`)!.values()];
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.spec.path.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  const entries: unknown[] = [
    ...[...dirs].map((path) => ({ type: 'directory', oid: '0'.repeat(40), size: 0, path })),
    ...files.map((f) => ({
      type: 'file',
      oid: f.sha1,
      size: f.spec.content.length,
      path: f.spec.path,
      ...(f.spec.lfs
        ? { lfs: { oid: f.sha256, size: f.spec.content.length, pointerSize: f.pointerSize } }
        : {}),
    })),
  ];
  const cursor = Number(url.searchParams.get('cursor') ?? '0');
  const page = entries.slice(cursor, cursor + state.pageSize);
  const headers: Record<string, string> = {};
  if (cursor + state.pageSize < entries.length) {
    const next = new URL(url);
    next.searchParams.set('cursor', String(cursor + state.pageSize));
    headers.link = `<${next.toString()}>; rel="next"`;
  }
  json(res, page, headers);
}

function serveResolve(req: IncomingMessage, res: ServerResponse, state: HubState, m: RegExpExecArray): void {
  const repo = findRepo(state, m[1] ?? 'models', m[2]!);
  if (!access(req, res, repo)) return;
  const revision = decodeURIComponent(m[3]!);
  const commit = repo!.refs[revision] ?? (repo!.commits[revision] ? revision : undefined);
  if (!commit) {
    fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
    return;
  }
  const path = m[4]!.split('/').map(decodeURIComponent).join('/');
  const file = state.index.get(`${repoKey(repo!)}@${commit}`)!.get(path);
  if (!file) {
    fail(res, 404, 'EntryNotFound', `${path} does not exist on "${revision}"`);
    return;
  }
  const size = file.spec.content.length;
  if (file.spec.lfs) {
    const n = (state.signed.get(file.sha256) ?? 0) + 1;
    state.signed.set(file.sha256, n);
    res.writeHead(302, {
      location: `${state.cdnUrl}/blobs/${file.sha256}?sig=${n}&Expires=3600`,
      'x-repo-commit': commit,
      'x-linked-etag': `"${file.sha256}"`,
      'x-linked-size': String(size),
      // As the Hub does: the git id (the pointer's) as ETag, the content's digest as X-Linked-Etag.
      etag: `"${file.sha1}"`,
      'content-length': '0',
    });
    res.end();
    return;
  }
  sendBytes(req, res, file.spec.content, { etag: `"${file.sha1}"`, 'x-repo-commit': commit });
}

function serveCdn(
  req: IncomingMessage,
  res: ServerResponse,
  blobs: Map<string, Uint8Array>,
  signed: Map<string, number>,
  faults: HubFaults,
  writer: BodyWriter,
): void | Promise<void> {
  const url = new URL(req.url ?? '/', 'http://cdn');
  const m = /^\/blobs\/([0-9a-f]{64})$/.exec(url.pathname);
  const content = m ? blobs.get(m[1]!) : undefined;
  if (!m || !content) {
    res.writeHead(404);
    res.end('NoSuchKey');
    return;
  }
  const sig = Number(url.searchParams.get('sig'));
  if (!sig || sig > (signed.get(m[1]!) ?? 0) || (faults.expireFirstUrl && sig === 1)) {
    res.writeHead(403, { 'content-type': 'application/xml' });
    res.end('<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
    return;
  }
  let bytes = content;
  if (faults.corrupt.has(m[1]!)) {
    bytes = Uint8Array.from(content);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
  }
  return sendBytes(req, res, bytes, { etag: `"${m[1]}"` }, writer);
}

/** 200 with the bytes, or 206 with Content-Range for a satisfiable `Range`, 416 otherwise. */
function sendBytes(
  req: IncomingMessage,
  res: ServerResponse,
  bytes: Uint8Array,
  headers: Record<string, string>,
  writer: BodyWriter = writeAll,
): void | Promise<void> {
  const common = { ...headers, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
  const rangeHeader = req.headers.range;
  if (rangeHeader) {
    const range = parseRange(rangeHeader, bytes.length);
    if (!range) {
      res.writeHead(416, { ...common, 'content-range': `bytes */${bytes.length}` });
      res.end();
      return;
    }
    res.writeHead(206, {
      ...common,
      'content-length': String(range.end - range.start + 1),
      'content-range': `bytes ${range.start}-${range.end}/${bytes.length}`,
    });
    if (req.method === 'HEAD') return void res.end();
    return writer(req, res, bytes.subarray(range.start, range.end + 1));
  }
  res.writeHead(200, { ...common, 'content-length': String(bytes.length) });
  if (req.method === 'HEAD') return void res.end();
  return writer(req, res, bytes);
}
