import { sha256Hex } from '../digest.js';
import type { BlobLocation, BlobSpec } from '../download/types.js';
import { ModelPullError } from '../errors.js';
import { readBody } from '../http/body.js';
import { type Credentials, type HttpResponse, type RequestOptions, statusError } from '../http/client.js';
import { withRetries } from '../http/retry.js';
import {
  type AuthPolicy,
  authError,
  basicHeader,
  type Challenge,
  fetchToken,
  parseChallenges,
} from './auth.js';
import type { RegistryCall } from './client.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from './manifest.js';

/** A call of a session: a request's options, with the body made anew for each attempt. */
export type SessionRequest = Pick<
  RequestOptions,
  'headers' | 'method' | 'maxRedirects' | 'answerTimeoutMs' | 'stream'
> & {
  readonly body?: () => NonNullable<RequestOptions['body']>;
};

/** What the session knows about how this repository wants to be asked. */
type AuthState =
  | { readonly kind: 'unknown' }
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'basic' }
  | {
      readonly kind: 'bearer';
      readonly challenge: Challenge;
      readonly token: string;
      readonly expiresAt: number;
    };

/** Refresh a token this long before the expiry the realm announced. */
const EXPIRY_MARGIN_MS = 10_000;

/** What a session may do in its repository; the token it asks for covers exactly these. */
export type RepositoryAction = 'pull' | 'push';

/**
 * One repository on one registry (`scheme://host`, `namespace/name`): the distribution API calls,
 * with anonymous-first auth (docs/registries.md, "Authentication"). Tokens live only here, in a
 * `Credentials` bound to the registry's origin, so the HTTP client never sends them to a CDN a
 * blob redirects to. Knows nothing of what the artifacts hold.
 */
export class RegistrySession {
  private auth: AuthState = { kind: 'unknown' };
  /** Bumped on every new token, so blobs re-located at once share one refresh. */
  private generation = 0;
  private pending: Promise<void> | undefined;
  private readonly scopes: readonly string[];

  /**
   * `actions` on this repository; `alsoPull`: other repositories of the same registry the token
   * must read too (the sources of cross-repository blob mounts).
   */
  constructor(
    readonly registry: URL,
    readonly repository: string,
    readonly policy: AuthPolicy,
    actions: readonly RepositoryAction[] = ['pull'],
    alsoPull: readonly string[] = [],
  ) {
    this.scopes = [
      `repository:${repository}:${actions.join(',')}`,
      ...alsoPull.map((r) => `repository:${r}:pull`),
    ];
  }

  /** `{origin}/v2/{repository}/{path}`: where every call of this repository goes. */
  url(path: string): string {
    return `${this.registry.origin}/v2/${this.repository}/${path}`;
  }

  /**
   * GET a manifest (or, with an `accept` that lists index types, an index) by tag or `sha256:`
   * digest, at most 4 MiB, with retries; when `expectHex` is given the bytes must hash to it.
   */
  async getManifest(
    call: RegistryCall,
    reference: string,
    options: {
      /** The artifact as users name it (`host/ns/model:tag`), for messages. */
      name: string;
      expectHex?: string;
      /** Media types to ask for; MANIFEST_ACCEPT (single images) by default. */
      accept?: string;
    },
  ): Promise<Buffer> {
    const { name } = options;
    const url = this.url(`manifests/${reference}`);
    const bytes = await withRetries(
      async () => {
        const response = await this.send(call, url, {
          headers: { accept: options.accept ?? MANIFEST_ACCEPT },
        });
        if (response.status === 404) {
          await response.body.dump().catch(() => undefined);
          throw new ModelPullError(
            'ERR_NOT_FOUND',
            `${name} was not found on ${this.registry.host} (HTTP 404)`,
            {
              status: 404,
            },
          );
        }
        if (response.status !== 200) throw await statusError(response, `${this.registry.host} for ${name}`);
        return readBody(response, MAX_MANIFEST_BYTES, `the manifest of ${name}`);
      },
      call.retry,
      {
        clock: call.clock,
        ...(call.signal ? { signal: call.signal } : {}),
      },
    );
    const hex = sha256Hex(bytes);
    if (options.expectHex !== undefined && hex !== options.expectHex) {
      throw new ModelPullError(
        'ERR_DIGEST_MISMATCH',
        `the manifest served for ${name} has digest sha256:${hex}, not the requested sha256:${options.expectHex}`,
      );
    }
    call.log.debug(`manifest of ${name}: sha256:${hex} (${bytes.length} bytes)`);
    return bytes;
  }

  /**
   * Where a blob is fetched: the registry URL with the current token (the client follows a
   * 307/302 to the CDN without it; a plain registry answers 200 itself). `previous` is the token
   * generation a blob saw when it last asked: asking again means its URL failed, so a token that
   * has not changed since is refreshed once for everyone.
   */
  async blobLocation(
    call: RegistryCall,
    hex: string,
    previous: number | undefined,
  ): Promise<{ location: BlobLocation; generation: number }> {
    const url = this.url(`blobs/sha256:${hex}`);
    if (this.auth.kind === 'unknown') await this.probe(call, url, hex);
    if (this.auth.kind === 'bearer' && previous === this.generation) {
      await this.refresh(call, this.auth.challenge);
    }
    const credentials = await this.credentials(call);
    return { location: { url, ...(credentials ? { credentials } : {}) }, generation: this.generation };
  }

  /**
   * Any other call on this repository (`HEAD blobs/…`, an upload), with the session's
   * credentials: anonymous first, a 401 answered once. `path` is relative to the repository
   * (`blobs/uploads/`), or an absolute URL the registry gave (an upload's Location). The caller
   * reads or dumps the body.
   */
  request(call: RegistryCall, path: string, options: SessionRequest = {}): Promise<HttpResponse> {
    return this.send(call, /^https?:\/\//.test(path) ? path : this.url(path), options);
  }

  /** Learns the auth state with a HEAD that stops at the first answer (no CDN round trip). */
  private async probe(call: RegistryCall, url: string, hex: string): Promise<void> {
    const response = await this.send(call, url, { method: 'HEAD', maxRedirects: 0 });
    await response.body.dump().catch(() => undefined);
    if (response.status === 404) {
      throw new ModelPullError(
        'ERR_NOT_FOUND',
        `blob sha256:${hex} of ${this.repository} is missing on ${this.registry.host}`,
        {
          status: 404,
        },
      );
    }
  }

  /** A request with the current credentials; on 401, answer the challenge and retry once. */
  private async send(call: RegistryCall, url: string, options: SessionRequest): Promise<HttpResponse> {
    const { body, ...rest } = options;
    const attempt = async () => {
      const credentials = await this.credentials(call);
      return call.http.request(url, {
        ...rest,
        // A fresh body for each attempt: a stream sent before the 401 is spent.
        ...(body ? { body: body() } : {}),
        ...(credentials ? { credentials } : {}),
        ...(call.signal ? { signal: call.signal } : {}),
      });
    };
    let response = await attempt();
    if (response.status !== 401) {
      if (this.auth.kind === 'unknown') this.auth = { kind: 'anonymous' };
      return response;
    }
    const challenges = parseChallenges(response.headers['www-authenticate']);
    await response.body.dump().catch(() => undefined);
    await this.answer(call, challenges);
    response = await attempt();
    if (response.status === 401) {
      await response.body.dump().catch(() => undefined);
      throw authError(
        this.registry,
        `refused access to ${this.repository} after authenticating (HTTP 401)`,
        401,
      );
    }
    return response;
  }

  private async answer(call: RegistryCall, challenges: Challenge[]): Promise<void> {
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) return this.refresh(call, bearer);
    if (challenges.some((c) => c.scheme === 'basic') && this.policy.basicAuth) {
      // A Basic challenge names no separate realm: the registry itself is where the password goes.
      this.auth = { kind: 'basic' };
      return;
    }
    const offered = challenges.map((c) => c.scheme).join(', ') || 'no challenge';
    throw authError(
      this.registry,
      `requires authentication for ${this.repository} (offered: ${offered})`,
      401,
    );
  }

  /** One token request at a time; callers that arrive meanwhile share its result. */
  private refresh(call: RegistryCall, challenge: Challenge): Promise<void> {
    this.pending ??= (async () => {
      try {
        const token = await fetchToken(
          call.http,
          challenge,
          this.registry,
          this.scopes,
          this.policy,
          () => call.clock.now(),
          call.signal,
        );
        this.auth = { kind: 'bearer', challenge, token: token.value, expiresAt: token.expiresAt };
        this.generation++;
      } finally {
        this.pending = undefined;
      }
    })();
    return this.pending;
  }

  private async credentials(call: RegistryCall): Promise<Credentials | undefined> {
    if (this.pending) await this.pending;
    if (this.auth.kind === 'basic' && this.policy.basicAuth) {
      return { origin: this.registry.origin, headers: { authorization: basicHeader(this.policy.basicAuth) } };
    }
    if (this.auth.kind !== 'bearer') return undefined;
    if (call.clock.now() >= this.auth.expiresAt - EXPIRY_MARGIN_MS)
      await this.refresh(call, this.auth.challenge);
    if (this.auth.kind !== 'bearer') return undefined;
    return { origin: this.registry.origin, headers: { authorization: `Bearer ${this.auth.token}` } };
  }
}

/** Where a manifest's blobs are fetched (see RepositoryRoute.blobs). */
export interface BlobRoute {
  session(call: RegistryCall): Promise<RegistrySession>;
  /**
   * The blob `hex` failed at `session`: true when another session is to be asked now (the
   * origin, after a mirror), which session() then returns.
   */
  leave?(call: RegistryCall, session: RegistrySession, hex: string, error: unknown): boolean;
}

/**
 * The engine's view of one blob of a repository: fetched at the registry's blob URL with the
 * session's credentials (a redirect to a CDN goes there without them). A second locate() means
 * the URL stopped working (an expired CDN signature, a revoked token), so it passes the token
 * generation this blob last saw at that session, and a token that has not changed since is
 * renewed once for all. The session is settled on the first locate(), so a blob already in
 * place costs no request. A failure at a mirror's session sends the blob to the origin's
 * (BlobSpec.fallback).
 */
export function registryBlob(
  route: BlobRoute,
  call: RegistryCall,
  blob: { readonly hex: string; readonly size: number },
  place: Pick<BlobSpec, 'label' | 'target' | 'ingestDir' | 'probeRanges'>,
): BlobSpec {
  let asked: RegistrySession | undefined;
  let seen: { session: RegistrySession; generation: number } | undefined;
  const leave = route.leave;
  return {
    digest: { algorithm: 'sha256', hex: blob.hex },
    size: blob.size,
    ...place,
    async locate(signal) {
      const attempt = signal ? { ...call, signal } : call;
      asked = undefined;
      const session = await route.session(call);
      asked = session;
      const previous = seen?.session === session ? seen.generation : undefined;
      const { location, generation } = await session.blobLocation(attempt, blob.hex, previous);
      seen = { session, generation };
      return location;
    },
    ...(leave
      ? { fallback: (error: unknown) => asked !== undefined && leave(call, asked, blob.hex, error) }
      : {}),
  };
}
