import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { startServer, type TestServer } from './http.js';
import { randomHex } from './registry.js';

/**
 * A registry behind Bearer tokens, as GHCR, Docker Hub or Harbor put one: every `/v2/` call
 * needs a token whose scopes cover it (`pull` to read, `push` to write, `pull` on the source
 * of a cross-repository mount), issued at `/token` to Basic credentials (push and pull) or
 * anonymously (pull, when allowed). Allowed calls pass to the real registry behind it with
 * their Host kept, so its upload Locations name the front.
 */
export interface TokenFront {
  readonly url: string;
  /** Every request the front got (token requests included), with its headers. */
  readonly server: TestServer;
  /** Scopes asked for at each token request, and whether it carried Basic credentials. */
  readonly tokenRequests: { readonly scopes: readonly string[]; readonly basic: boolean }[];
  close(): Promise<void>;
}

export interface TokenFrontOptions {
  readonly username: string;
  readonly password: string;
  /** Anonymous token requests get pull scopes (a public registry). */
  readonly anonymousPull?: boolean;
}

export async function startTokenFront(upstream: string, options: TokenFrontOptions): Promise<TokenFront> {
  const granted = new Map<string, Set<string>>();
  const tokenRequests: TokenFront['tokenRequests'][number][] = [];
  const basic = `Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}`;
  const server: TestServer = await startServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://front');
    if (url.pathname === '/token') {
      // One `scope` parameter each, or several in one separated by spaces (as a challenge names them).
      const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ').filter(Boolean));
      const auth = req.headers.authorization;
      tokenRequests.push({ scopes, basic: auth !== undefined });
      if (auth !== undefined && auth !== basic) return answer(res, 401, '{"details":"bad credentials"}');
      const allowed = new Set<string>();
      for (const scope of scopes) {
        const m = /^repository:(.+):([a-z,]+)$/.exec(scope);
        if (!m) continue;
        for (const action of m[2]!.split(',')) {
          if (auth === basic || (options.anonymousPull && action === 'pull'))
            allowed.add(`${m[1]}:${action}`);
        }
      }
      const token = `t-${randomHex(12)}`;
      granted.set(token, allowed);
      return answer(res, 200, JSON.stringify({ token, expires_in: 300 }));
    }
    const needed = neededScopes(req.method ?? 'GET', url);
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    const scopes = granted.get(token);
    if (!scopes || !needed.every((s) => scopes.has(s))) {
      const scope = needed.length ? `,scope="${needed.map((s) => `repository:${s}`).join(' ')}"` : '';
      res.writeHead(401, {
        'www-authenticate': `Bearer realm="${server.url}/token",service="front"${scope}`,
        'content-type': 'application/json',
      });
      return void res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
    }
    return pass(req, res, upstream);
  });
  return { url: server.url, server, tokenRequests, close: () => server.close() };
}

/** `name:pull` / `name:push` each call needs; a mount also reads its source. */
function neededScopes(method: string, url: URL): string[] {
  const m = /^\/v2\/(.+?)\/(manifests|blobs|tags)\//.exec(url.pathname);
  if (!m) return [];
  const write = method !== 'GET' && method !== 'HEAD';
  const needed = [`${m[1]}:${write ? 'push' : 'pull'}`];
  const from = url.searchParams.get('from');
  if (write && from) needed.push(`${from}:pull`);
  return needed;
}

function answer(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body);
}

function pass(req: IncomingMessage, res: ServerResponse, upstream: string): Promise<void> {
  return new Promise<void>((resolve) => {
    const { authorization: _, ...headers } = req.headers;
    const call = httpRequest(
      new URL(req.url ?? '/', upstream),
      { method: req.method, headers, agent: false },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on('end', resolve);
        answer.on('error', () => resolve());
      },
    );
    call.on('error', () => {
      res.destroy();
      resolve();
    });
    res.on('close', () => call.destroy());
    req.pipe(call);
  });
}
