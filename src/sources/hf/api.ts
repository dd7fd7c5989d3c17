import { type Digest, isSha1Hex, isSha256Hex } from '../../digest.js';
import { ModelPullError, redactUrl } from '../../errors.js';
import { BODY_LIMITS, readJson } from '../../http/body.js';
import type { Credentials } from '../../http/client.js';
import { withRetries } from '../../http/retry.js';
import { conflictError, pathConflict, repoPathProblem } from '../../layouts/hf.js';
import { isXetHash } from '../../layouts/hf-trees.js';
import type { SourceContext } from '../../plan.js';
import { type HubSubject, hubError } from './errors.js';
import type { HfRepoType } from './ref.js';

/** The Hub (or a mirror) and the credentials bound to its origin. */
export interface HubEndpoint {
  /** Base URL without a trailing `/` or userinfo; a mirror may live under a path. */
  readonly base: string;
  readonly credentials?: Credentials;
}

/** Basic credentials for a mirror (hf-endpoint written as `https://user:pass@host`). */
export interface BasicAuth {
  readonly username: string;
  readonly password: string;
}

/**
 * Credentials go to the endpoint's origin only (HttpClient drops them on any other host, the CDN
 * included). A mirror's own Basic credentials win over the Hub token: they name that server.
 */
export function hubEndpoint(endpoint: string, token?: string, basic?: BasicAuth): HubEndpoint {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new ModelPullError('ERR_BAD_INPUT', `hf-endpoint is not a valid URL: ${redactUrl(endpoint)}`);
  }
  if (url.username || url.password) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `hf-endpoint must carry no credentials here: ${redactUrl(endpoint)}`,
    );
  }
  const base = endpoint.replace(/\/+$/, '');
  const authorization = basic
    ? `Basic ${Buffer.from(`${basic.username}:${basic.password}`).toString('base64')}`
    : token
      ? `Bearer ${token}`
      : undefined;
  return authorization ? { base, credentials: { origin: url.origin, headers: { authorization } } } : { base };
}

/** `datasets/` and `spaces/` prefix web and resolve URLs; models have none. */
export function webPrefix(type: HfRepoType): string {
  return type === 'model' ? '' : `${type}s/`;
}

export function repoPageUrl(ep: HubEndpoint, type: HfRepoType, repo: string): string {
  return `${ep.base}/${webPrefix(type)}${repo}`;
}

function apiRepoUrl(ep: HubEndpoint, type: HfRepoType, repo: string): string {
  return `${ep.base}/api/${type}s/${repo}`;
}

/** Percent-encodes each segment like Python's `quote` (only letters, digits and `_.-~` stay). */
export function quotePath(path: string): string {
  return path
    .split('/')
    .map((s) =>
      encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
    )
    .join('/');
}

/** `{EP}/{""|datasets/|spaces/}{repo}/resolve/{commit}/{path}`: 200 for small files, 302 to a CDN for LFS. */
export function resolveUrl(
  ep: HubEndpoint,
  type: HfRepoType,
  repo: string,
  commit: string,
  path: string,
): string {
  return `${ep.base}/${webPrefix(type)}${repo}/resolve/${commit}/${quotePath(path)}`;
}

/** GET a Hub JSON document with retries (429 waits as told); returns the body and the next page. */
async function hubJson(
  url: string,
  ep: HubEndpoint,
  ctx: SourceContext,
  subject: HubSubject,
): Promise<{ json: unknown; next: string | undefined }> {
  return withRetries(
    async () => {
      const response = await ctx.http.request(url, {
        headers: { accept: 'application/json' },
        ...(ep.credentials ? { credentials: ep.credentials } : {}),
        ...(ctx.signal ? { signal: ctx.signal } : {}),
      });
      if (response.status < 200 || response.status >= 300) throw await hubError(response, subject);
      const json = await readJson(response, BODY_LIMITS.json, 'the Hub answer');
      const link = response.headers.link;
      return { json, next: nextLink(Array.isArray(link) ? link.join(',') : link, response.url) };
    },
    ctx.retry,
    { clock: ctx.clock, ...(ctx.signal ? { signal: ctx.signal } : {}) },
  );
}

/** The `rel="next"` target of a `Link` header (RFC 8288), resolved against the page that carried it. */
export function nextLink(header: string | undefined, pageUrl: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (!m) continue;
    const rels = m[2]!
      .split(';')
      .map((p) => /^\s*rel\s*=\s*"?([^"]*)"?\s*$/i.exec(p)?.[1])
      .find((r) => r !== undefined);
    if (rels?.toLowerCase().split(/\s+/).includes('next')) return new URL(m[1]!, pageUrl).toString();
  }
  return undefined;
}

/** `GET /api/{type}s/{repo}/revision/{rev}` → the 40-hex commit the revision names now. */
export async function resolveRevision(
  ep: HubEndpoint,
  type: HfRepoType,
  repo: string,
  revision: string,
  ctx: SourceContext,
  subject: HubSubject,
): Promise<string> {
  const url = `${apiRepoUrl(ep, type, repo)}/revision/${encodeURIComponent(revision)}`;
  const { json } = await hubJson(url, ep, ctx, subject);
  const sha = (json as { sha?: unknown } | null)?.sha;
  if (typeof sha !== 'string' || !isSha1Hex(sha)) {
    throw new ModelPullError(
      'ERR_BAD_MANIFEST',
      `the Hub gave no valid commit for revision "${revision}" of ${subject.label}`,
    );
  }
  return sha;
}

/** One file of a repository at a commit, with the digest its bytes must have. */
export interface HubFile {
  readonly path: string;
  readonly digest: Digest;
  readonly size: number;
}

/** A file of the tree listing, with what huggingface_hub caches of it (`trees/<commit>.json`). */
export interface TreeEntry extends HubFile {
  /** The git object id (for an LFS file, the pointer's sha1; otherwise the digest itself). */
  readonly blobId: string;
  readonly xetHash?: string;
}

const MAX_PAGES = 100_000;

/** Every file at `commit`, following `Link: <…>; rel="next"` pages (1,000 entries each on the Hub). */
export async function listTree(
  ep: HubEndpoint,
  type: HfRepoType,
  repo: string,
  commit: string,
  ctx: SourceContext,
  subject: HubSubject,
): Promise<TreeEntry[]> {
  const files: TreeEntry[] = [];
  const seenPaths = new Set<string>();
  const seenPages = new Set<string>();
  let url: string | undefined = `${apiRepoUrl(ep, type, repo)}/tree/${commit}?recursive=true`;
  while (url !== undefined) {
    if (seenPages.has(url) || seenPages.size >= MAX_PAGES) {
      throw new ModelPullError(
        'ERR_BAD_MANIFEST',
        `the file listing of ${subject.label} does not end (page loop)`,
      );
    }
    seenPages.add(url);
    const page = await hubJson(url, ep, ctx, subject);
    if (!Array.isArray(page.json)) {
      throw new ModelPullError(
        'ERR_BAD_MANIFEST',
        `the file listing of ${subject.label} is not a JSON array`,
      );
    }
    for (const raw of page.json) {
      const file = treeFile(raw, subject.label);
      if (!file) continue;
      if (seenPaths.has(file.path)) {
        throw new ModelPullError(
          'ERR_BAD_MANIFEST',
          `the file listing of ${subject.label} names "${file.path}" twice`,
        );
      }
      seenPaths.add(file.path);
      files.push(file);
    }
    url = page.next;
  }
  const conflict = pathConflict(seenPaths);
  if (conflict) throw conflictError(conflict, `the file listing of ${subject.label}`);
  return files;
}

/**
 * A tree entry `{type, path, size, oid, lfs?:{oid, size}, xetHash?}` checked before any part of
 * it reaches a path or URL: LFS files are verified by sha256 (`lfs.oid`), others by git blob sha1
 * (`oid`). Folders and anything that is not a file (submodules) are skipped. A Xet hash that
 * huggingface_hub would not accept is dropped (it is only passed on in `trees/`).
 */
export function treeFile(raw: unknown, label: string): TreeEntry | undefined {
  const entry = raw as {
    type?: unknown;
    path?: unknown;
    size?: unknown;
    oid?: unknown;
    lfs?: unknown;
    xetHash?: unknown;
  } | null;
  if (entry === null || typeof entry !== 'object' || entry.type !== 'file') return undefined;
  const bad = (why: string) =>
    new ModelPullError('ERR_BAD_MANIFEST', `the file listing of ${label} has an invalid entry: ${why}`);
  const pathProblem = repoPathProblem(entry.path);
  if (pathProblem) throw bad(`${pathProblem} (${JSON.stringify(String(entry.path).slice(0, 100))})`);
  const path = entry.path as string;
  if (!isSize(entry.size)) throw bad(`"${path}" has no valid size`);
  if (typeof entry.oid !== 'string' || !isSha1Hex(entry.oid)) throw bad(`"${path}" has no valid git blob id`);
  const common = {
    path,
    size: entry.size,
    blobId: entry.oid,
    ...(isXetHash(entry.xetHash) ? { xetHash: entry.xetHash } : {}),
  };
  const lfs = entry.lfs as { oid?: unknown; size?: unknown } | undefined | null;
  if (lfs !== undefined && lfs !== null) {
    if (typeof lfs.oid !== 'string' || !isSha256Hex(lfs.oid)) throw bad(`"${path}" has no valid LFS sha256`);
    if (lfs.size !== undefined && lfs.size !== entry.size) throw bad(`"${path}" has two different sizes`);
    return { ...common, digest: { algorithm: 'sha256', hex: lfs.oid } };
  }
  return { ...common, digest: { algorithm: 'git-sha1', hex: entry.oid } };
}

function isSize(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
