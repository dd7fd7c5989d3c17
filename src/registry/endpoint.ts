import { isModelPullError } from '../errors.js';
import { isLoopbackHost } from '../http/client.js';
import { withRetries } from '../http/retry.js';
import type { RegistryCall } from './client.js';

/**
 * Where a registry's API lives, from the name users write (docs/registries.md, "Names and
 * addresses"): most registries serve it at their own host; Docker Hub's name `docker.io` is
 * served at `registry-1.docker.io`, with its token realm on `auth.docker.io`.
 */
const WELL_KNOWN: Readonly<Record<string, { readonly api: string; readonly realmHosts: readonly string[] }>> =
  {
    'docker.io': { api: 'registry-1.docker.io', realmHosts: ['auth.docker.io'] },
  };

/** A registry as a reference names it: `host[:port]`, and a scheme only when one was written. */
export interface RegistryName {
  readonly host: string;
  readonly scheme?: 'http' | 'https';
}

/** The host (and port) the distribution API is served at. */
export function apiHostOf(host: string): string {
  return WELL_KNOWN[host]?.api ?? host;
}

/** Token realms on other hosts that a well-known registry uses (https only, like any listed host). */
export function knownRealmHosts(host: string): readonly string[] {
  return WELL_KNOWN[host]?.realmHosts ?? [];
}

/**
 * Socket codes that mean "nothing speaks TLS there": a plain-http server answering a ClientHello
 * (OpenSSL's `wrong version number`, `packet length too long`…) or hanging up on it. With a
 * refused connection (no listener on the https port) they are the only reasons to try http.
 * Certificate failures (ERR_TLS) are not: https was spoken, and a bad certificate is a reason to
 * stop (or to pass `ca-cert`), never to drop to plain http.
 */
const NO_TLS_CODES = /^(?:ERR_SSL_(?!.*CERT).*|EPROTO|ECONNRESET)$/;

/**
 * The origin (`scheme://host[:port]`) of a registry's API. A written scheme is obeyed. Without
 * one, Docker's rule for insecure registries: https first, and plain http only when https cannot
 * be spoken there; that fallback applies to loopback hosts and, with `insecure`, to every host.
 * Any other host is https, asked nothing here. The probe (`GET /v2/`, no credentials, no
 * redirect) is retried like any small request; only "no TLS there" leads to http.
 */
export async function registryOrigin(call: RegistryCall, name: RegistryName): Promise<string> {
  const host = apiHostOf(name.host);
  if (name.scheme) return new URL(`${name.scheme}://${host}/`).origin;
  const https = new URL(`https://${host}/`).origin;
  if (!call.http.options.insecure && !isLoopbackHost(new URL(https).hostname)) return https;
  const scheme = await withRetries(
    async () => {
      try {
        const answer = await call.http.request(`${https}/v2/`, {
          maxRedirects: 0,
          ...(call.signal ? { signal: call.signal } : {}),
        });
        await answer.body.dump().catch(() => undefined);
        return 'https';
      } catch (error) {
        // A refused certificate (ERR_TLS) is thrown as it is: https was spoken.
        if (speaksNoTls(error)) return 'http';
        throw error;
      }
    },
    call.retry,
    { clock: call.clock, subject: `registry ${name.host}`, ...(call.signal ? { signal: call.signal } : {}) },
  );
  call.log.debug(`registry ${name.host}: ${scheme}`);
  return scheme === 'https' ? https : new URL(`http://${host}/`).origin;
}

/** The codes along an error's cause chain. */
function codes(error: unknown): string[] {
  const out: string[] = [];
  for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') out.push(code);
  }
  return out;
}

function speaksNoTls(error: unknown): boolean {
  if (isModelPullError(error, 'ERR_CONNECTION_REFUSED')) return true;
  if (!isModelPullError(error, 'ERR_NETWORK')) return false;
  return codes(error).some((c) => NO_TLS_CODES.test(c));
}
