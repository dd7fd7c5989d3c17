import { isModelPullError, ModelPullError } from '../errors.js';
import { BODY_LIMITS, readJson } from '../http/body.js';
import type { Credentials, HttpClient } from '../http/client.js';
import { statusError } from '../http/client.js';

/** One challenge of a `WWW-Authenticate` header: `Bearer realm="…",service="…",scope="…"`. */
export interface Challenge {
  /** Lower-cased: `bearer`, `basic`, … */
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

export interface BasicAuth {
  readonly username: string;
  readonly password: string;
}

export interface AuthPolicy {
  /** Hosts (or host:port) a token realm may live on besides the registry itself; https only. */
  readonly allowedRealmHosts: readonly string[];
  /** Sent to the token realm only (never to the registry, never along a redirect). */
  readonly basicAuth?: BasicAuth;
}

export interface Token {
  readonly value: string;
  /** Epoch ms after which the token is treated as expired. */
  readonly expiresAt: number;
}

/**
 * Parses every challenge of one or more `WWW-Authenticate` values (RFC 7235): a scheme, then
 * comma-separated `key=value` or `key="quoted, with \" escapes"` parameters. A bare word that
 * is followed by a space starts the next challenge.
 */
export function parseChallenges(header: string | readonly string[] | undefined): Challenge[] {
  const values = header === undefined ? [] : typeof header === 'string' ? [header] : header;
  const out: Challenge[] = [];
  for (const value of values) {
    const re = /\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*)))?\s*,?/gy;
    let current: { scheme: string; params: Record<string, string> } | undefined;
    for (let m = re.exec(value); m && m[0] !== ''; m = re.exec(value)) {
      const [, word, quoted, bare] = m;
      if (quoted === undefined && bare === undefined) {
        current = { scheme: word!.toLowerCase(), params: {} };
        out.push(current);
      } else if (current) {
        current.params[word!.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : bare!;
      }
    }
  }
  return out;
}

/**
 * The realm is where credentials go, so it is checked before any request: on the registry's own
 * host it is trusted as the registry is; on another host only over https and only when the user
 * listed that host. Ollama refuses every foreign realm (its fix for CVE-2025-51471, where a
 * registry sent clients' credentials to an attacker's realm); GHCR-style registries keep the
 * realm on the same host, Docker Hub's lives on auth.docker.io, hence the opt-in list.
 */
export function checkRealm(realm: string | undefined, registry: URL, policy: AuthPolicy): URL {
  if (!realm) throw authError(registry, 'asked for a Bearer token but named no realm');
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw authError(registry, 'sent a token realm that is not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw authError(registry, `sent a token realm with the unsupported scheme ${url.protocol}`);
  }
  if (url.host === registry.host) return url;
  const listed = policy.allowedRealmHosts.some((h) => {
    const allowed = h.trim().toLowerCase();
    return allowed === url.host || allowed === url.hostname;
  });
  if (listed && url.protocol === 'https:') return url;
  const why = listed
    ? 'it is listed in allowed-realm-hosts but is not https'
    : 'add that host to allowed-realm-hosts if you trust it';
  throw authError(registry, `sent a token realm on another host (${url.host}); refused: ${why}`);
}

/**
 * Gets a token from the realm: `GET realm?service=…&scope=…`, anonymous or with the configured
 * basic credentials (bound to the realm's origin), answer `token` or `access_token`. The scopes
 * are the challenge's and ours, one `scope` parameter each (a push that mounts a blob from another
 * repository needs pull on that one too). The token spec says a missing `expires_in` means 60 seconds.
 */
export async function fetchToken(
  http: HttpClient,
  challenge: Challenge,
  registry: URL,
  scopes: readonly string[],
  policy: AuthPolicy,
  now: () => number,
  signal?: AbortSignal,
): Promise<Token> {
  const realm = checkRealm(challenge.params.realm, registry, policy);
  if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
  const asked = challenge.params.scope ? [challenge.params.scope] : [];
  for (const scope of new Set([...asked, ...scopes])) realm.searchParams.append('scope', scope);
  const credentials: Credentials | undefined = policy.basicAuth && {
    origin: realm.origin,
    headers: { authorization: basicHeader(policy.basicAuth) },
  };
  const started = now();
  const response = await http.request(realm.toString(), {
    headers: { accept: 'application/json' },
    ...(credentials ? { credentials } : {}),
    ...(signal ? { signal } : {}),
    // A token endpoint has no reason to redirect; refusing keeps credentials on its origin.
    maxRedirects: 0,
  });
  if (response.status === 401 || response.status === 403) {
    await response.body.dump().catch(() => undefined);
    const who = policy.basicAuth ? 'the configured credentials' : 'an anonymous request';
    throw authError(
      registry,
      `its token service at ${realm.host} refused ${who} (HTTP ${response.status})`,
      401,
    );
  }
  if (response.status !== 200) throw await statusError(response, `the token service at ${realm.host}`);
  let body: unknown;
  try {
    body = await readJson(response, BODY_LIMITS.token, 'the token answer');
  } catch (error) {
    // Junk is "no token" below; an answer past the limit is refused as such.
    if (isModelPullError(error, 'ERR_TOO_LARGE')) throw error;
    body = undefined;
  }
  const doc = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const value = typeof doc.token === 'string' && doc.token ? doc.token : doc.access_token;
  if (typeof value !== 'string' || value === '' || /[\r\n]/.test(value)) {
    throw authError(registry, `its token service at ${realm.host} answered without a token`);
  }
  const lifetime = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60;
  return { value, expiresAt: started + lifetime * 1000 };
}

export function basicHeader(auth: BasicAuth): string {
  return `Basic ${Buffer.from(`${auth.username}:${auth.password}`, 'utf8').toString('base64')}`;
}

export function authError(registry: URL, reason: string, status?: number): ModelPullError {
  return new ModelPullError(
    'ERR_AUTH',
    `registry ${registry.host} ${reason}`,
    status === undefined ? {} : { status },
  );
}
