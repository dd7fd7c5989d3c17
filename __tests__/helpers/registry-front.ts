import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseRange, startServer, type TestServer } from './http.js';
import { type GeneratedModel, MANIFEST_TYPE, randomHex, sha256 } from './registry.js';

export interface FrontOptions {
  readonly repo: string;
  readonly tag: string;
  readonly model: GeneratedModel;
  /** Served instead of the model's manifest (bad manifests); blobs still come from `model`. */
  readonly manifest?: Buffer;
  /** The realm put in the challenge; default `<front>/token` (same host). */
  readonly realm?: (front: string) => string;
  /** `expires_in` of issued tokens; omitted from the answer when undefined. */
  readonly expiresIn?: number;
  /** The first signed URL of every blob answers 403 once, as an expired presigned URL does. */
  readonly expireFirstUrl?: boolean;
  /** Answer the token request with `access_token` instead of `token`. */
  readonly accessTokenField?: boolean;
  /** Serve the manifest for any `sha256:` reference (a registry lying about a digest). */
  readonly anyDigest?: boolean;
  /** false: issue tokens the registry then refuses. */
  readonly acceptTokens?: boolean;
}

export interface Front {
  /** The registry front: challenge, token realm at /token, manifests, 307 for blobs. */
  readonly registry: TestServer;
  /** The "CDN" on another origin; its recorded requests show any Authorization it got. */
  readonly cdn: TestServer;
  /** Tokens issued, in order. */
  readonly tokens: string[];
  /** Revokes every token issued so far (the registry then answers 401 to them). */
  revokeTokens(): void;
  close(): Promise<void>;
}

/**
 * A registry that behaves like registry.ollama.ai: anonymous requests get
 * `401 WWW-Authenticate: Bearer realm,service,scope`; with a token, manifests are served and blob
 * GETs answer 307 to a presigned URL on another origin (Cloudflare R2 in real life).
 */
export async function startFront(options: FrontOptions): Promise<Front> {
  const blobs = new Map<string, Buffer>();
  for (const b of [options.model.config, ...options.model.layers]) blobs.set(sha256(b.bytes), b.bytes);
  const manifest = options.manifest ?? options.model.manifest;
  const tokens: string[] = [];
  const valid = new Set<string>();
  const signatures = new Map<string, number>();
  let issued = 0;

  const cdn = await startServer((req, res) =>
    serveCdn(req, res, blobs, signatures, options.expireFirstUrl ?? false),
  );
  const registry = await startServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://front');
    if (url.pathname === '/token') return issueToken(res, url, options, tokens, valid);
    const auth = req.headers.authorization ?? '';
    if (!valid.has(auth.replace(/^Bearer /, ''))) {
      const realm = options.realm ? options.realm(registry.url) : `${registry.url}/token`;
      res.writeHead(401, {
        'www-authenticate': `Bearer realm="${realm}",service="front",scope="repository:${options.repo}:pull"`,
        'content-type': 'application/json',
      });
      return void res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
    }
    const prefix = `/v2/${options.repo}/`;
    const byDigest = `${prefix}manifests/sha256:${options.anyDigest ? '' : sha256(manifest)}`;
    if (url.pathname === `${prefix}manifests/${options.tag}` || url.pathname.startsWith(byDigest)) {
      res.writeHead(200, { 'content-type': MANIFEST_TYPE, 'content-length': manifest.length });
      return void res.end(req.method === 'HEAD' ? undefined : manifest);
    }
    const blob = /^\/v2\/.+\/blobs\/sha256:([0-9a-f]{64})$/.exec(url.pathname);
    if (url.pathname.startsWith(prefix) && blob && blobs.has(blob[1]!)) {
      const sig = ++issued;
      if (req.method === 'GET' && !signatures.has(blob[1]!)) signatures.set(blob[1]!, sig);
      res.writeHead(307, { location: `${cdn.url}/r2/${blob[1]}?X-Amz-Signature=${sig}-${randomHex(4)}` });
      return void res.end();
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
  });
  return {
    registry,
    cdn,
    tokens,
    revokeTokens: () => valid.clear(),
    close: async () => {
      await registry.close();
      await cdn.close();
    },
  };
}

function issueToken(
  res: ServerResponse,
  url: URL,
  options: FrontOptions,
  tokens: string[],
  valid: Set<string>,
): void {
  if (
    url.searchParams.get('scope') !== `repository:${options.repo}:pull` ||
    url.searchParams.get('service') !== 'front'
  ) {
    res.writeHead(400);
    return void res.end('bad scope or service');
  }
  const token = `tok-${tokens.length + 1}-${randomHex(8)}`;
  tokens.push(token);
  if (options.acceptTokens !== false) valid.add(token);
  const body: Record<string, unknown> = options.accessTokenField ? { access_token: token } : { token };
  if (options.expiresIn !== undefined) body.expires_in = options.expiresIn;
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Presigned-URL CDN: byte ranges, and optionally 403 for the first signature of each blob. */
function serveCdn(
  req: IncomingMessage,
  res: ServerResponse,
  blobs: Map<string, Buffer>,
  signatures: Map<string, number>,
  expireFirst: boolean,
): void {
  const url = new URL(req.url ?? '/', 'http://cdn');
  const m = /^\/r2\/([0-9a-f]{64})$/.exec(url.pathname);
  const data = m ? blobs.get(m[1]!) : undefined;
  if (!m || !data) {
    res.writeHead(404);
    return void res.end();
  }
  const sig = Number((url.searchParams.get('X-Amz-Signature') ?? '').split('-')[0]);
  if (expireFirst && sig === signatures.get(m[1]!)) {
    res.writeHead(403, { 'content-type': 'application/xml' });
    return void res.end('<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
  }
  const range = parseRange(req.headers.range, data.length);
  if (range) {
    res.writeHead(206, {
      'content-range': `bytes ${range.start}-${range.end}/${data.length}`,
      'content-length': range.end - range.start + 1,
      'accept-ranges': 'bytes',
    });
    return void res.end(data.subarray(range.start, range.end + 1));
  }
  res.writeHead(200, { 'content-length': data.length, 'accept-ranges': 'bytes' });
  res.end(req.method === 'HEAD' ? undefined : data);
}
