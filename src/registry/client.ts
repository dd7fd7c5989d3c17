import type { Clock } from '../clock.js';
import type { HttpClient } from '../http/client.js';
import type { RetryPolicy } from '../http/retry.js';
import type { Logger } from '../report/logger.js';
import type { RegistryMirror } from '../settings/mirrors.js';
import type { Settings } from '../settings/settings.js';
import type { AuthPolicy, BasicAuth } from './auth.js';
import { knownRealmHosts, type RegistryName, registryOrigin } from './endpoint.js';
import { RegistrySession, type RepositoryAction } from './session.js';

/** What each registry call needs from its caller (a source's context has all of it). */
export interface RegistryCall {
  readonly http: HttpClient;
  readonly retry: RetryPolicy;
  readonly log: Logger;
  readonly clock: Clock;
  readonly signal?: AbortSignal;
}

/** Who may receive credentials: the user's `registry-*` and `allowed-realm-hosts` settings. */
export interface RegistryOptions {
  /** Hosts a token realm may live on besides the registry itself (https only). */
  readonly allowedRealmHosts?: readonly string[];
  /**
   * For one registry (`host[:port]` as the lines write it): sent only to that registry's token
   * realm, or to the registry itself when it asks for Basic.
   */
  readonly basicAuth?: BasicAuth & { readonly host: string };
  /** `registry-mirror`: pulls for these hosts ask the mirror first (RegistryRoutes). */
  readonly mirrors?: readonly RegistryMirror[];
}

export function registryOptions(settings: Settings): RegistryOptions {
  return {
    allowedRealmHosts: settings.allowedRealmHosts,
    ...(settings.registryAuth ? { basicAuth: settings.registryAuth } : {}),
    mirrors: settings.registryMirrors,
  };
}

/** Where a session goes: the registry's origin, its host as the user wrote it, a repository. */
export interface RepositoryAddress {
  /** `scheme://host[:port]`. */
  readonly origin: string;
  /** `host[:port]` as written in the line: what `registry-host` is compared with. */
  readonly host: string;
  /** `namespace/name` (any depth the registry allows). */
  readonly repository: string;
}

/**
 * The OCI distribution client of a run: one session per repository and set of actions, so a
 * token is fetched once and shared by every blob of that repository. Basic credentials belong
 * to one registry: a session for any other host never sees them, even if that registry's
 * challenge names a realm on its own host.
 */
export class RegistryClient {
  private readonly sessions = new Map<string, RegistrySession>();
  /** Origins by registry name, settled once per run (a probe may be needed). */
  private readonly origins = new Map<string, Promise<string>>();
  private readonly policy: AuthPolicy;

  constructor(private readonly options: RegistryOptions = {}) {
    this.policy = { allowedRealmHosts: options.allowedRealmHosts ?? [] };
  }

  /**
   * The session of a repository named as users write it (`host[:port]`, a scheme only if one
   * was written): its origin is settled first (registryOrigin), once per registry and run.
   */
  async resolve(
    call: RegistryCall,
    name: RegistryName & { readonly repository: string },
    actions: readonly RepositoryAction[] = ['pull'],
  ): Promise<RegistrySession> {
    const key = `${name.scheme ?? ''}://${name.host}`;
    let origin = this.origins.get(key);
    if (!origin) {
      origin = registryOrigin(call, name);
      this.origins.set(key, origin);
      // A failed probe is not remembered: the next model of the run asks again.
      origin.catch(() => this.origins.delete(key));
    }
    return this.session({ origin: await origin, host: name.host, repository: name.repository }, actions);
  }

  session(
    address: RepositoryAddress,
    actions: readonly RepositoryAction[] = ['pull'],
    alsoPull: readonly string[] = [],
  ): RegistrySession {
    const registry = new URL(address.origin);
    const key = `${registry.origin}/${address.repository} ${actions.join(',')} ${alsoPull.join(',')}`;
    let session = this.sessions.get(key);
    if (!session) {
      const basicAuth = this.options.basicAuth;
      const own = basicAuth !== undefined && basicAuth.host === address.host;
      // A well-known registry's own realm (Docker Hub's auth.docker.io) needs no listing.
      const known = knownRealmHosts(address.host);
      const realms = known.length ? { allowedRealmHosts: [...this.policy.allowedRealmHosts, ...known] } : {};
      const policy = { ...this.policy, ...realms, ...(own ? { basicAuth } : {}) };
      session = new RegistrySession(registry, address.repository, policy, actions, alsoPull);
      this.sessions.set(key, session);
    }
    return session;
  }
}
