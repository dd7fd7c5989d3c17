import { sha256Hex } from '../digest.js';
import { describeError, isModelPullError } from '../errors.js';
import { isUnreachable } from '../http/retry.js';
import type { RegistryMirror } from '../settings/mirrors.js';
import { type RegistryCall, RegistryClient, type RegistryOptions } from './client.js';
import type { RegistryName } from './endpoint.js';
import { MANIFEST_OR_INDEX_ACCEPT } from './manifest.js';
import { nameUnder, type RepositoryPrefix, repositoryUnder } from './prefix.js';
import type { BlobRoute, RegistrySession } from './session.js';

/** A repository as a line names it: its registry, and its path there. */
export type RepositoryName = RegistryName & { readonly repository: string };

/** What getManifest is told: the name for messages, the digest to expect, what to accept. */
export interface ManifestRequest {
  readonly name: string;
  readonly expectHex?: string;
  readonly accept?: string;
}

/**
 * The `registry-mirror` routes of one run (docs/scale-out.md, "Pulling through a mirror"): a
 * repository whose host has a mirror is asked there first. A mirror that cannot be reached is
 * left for the rest of the run after one warning; a mirror that lacks a model (or answers it
 * wrongly) sends that repository to its own registry, again with one warning. Content never
 * depends on the route: manifests by digest and every blob are verified against the digests
 * the line, the lock or the manifest names, whichever registry served them.
 */
export class RegistryRoutes {
  private readonly routes = new Map<string, RepositoryRoute>();
  /** Mirrors found unreachable in this run (by their prefix text), with the warning told. */
  readonly down: Set<string>;

  constructor(
    readonly client: RegistryClient,
    private readonly mirrors: readonly RegistryMirror[] = [],
  ) {
    // Every source of a run gets the same list from its settings: the one warning and the
    // decision to leave an unreachable mirror are shared by ollama: and oci: lines alike.
    const down = downByRun.get(mirrors) ?? new Set<string>();
    downByRun.set(mirrors, down);
    this.down = down;
  }

  /** The route of one repository (shared by every line that names it, so it warns once). */
  route(name: RepositoryName): RepositoryRoute {
    const key = `${name.scheme ?? ''}://${name.host}/${name.repository}`;
    let route = this.routes.get(key);
    if (!route) {
      const mirror = this.mirrors.find((m) => m.host === name.host.toLowerCase())?.mirror;
      route = new RepositoryRoute(this, name, mirror);
      this.routes.set(key, route);
    }
    return route;
  }
}

/**
 * How a registry source (ollama:, oci:) reaches the repository a line names: through the
 * user's `registry-mirror` for the line's host when there is one, else the registry itself.
 * `repositoryOf` says which repository a reference names.
 */
export function repositoryRoutes<Ref extends RegistryName>(
  options: RegistryOptions,
  repositoryOf: (ref: Ref) => string,
): (ref: Ref) => RepositoryRoute {
  const routes = new RegistryRoutes(new RegistryClient(options), options.mirrors);
  return (ref) =>
    routes.route({
      host: ref.host,
      ...(ref.scheme ? { scheme: ref.scheme } : {}),
      repository: repositoryOf(ref),
    });
}

/** The repository on a mirror: the mirror's path, then the origin's repository. */
function mirrorRepository(mirror: RepositoryPrefix, origin: RepositoryName): RepositoryName {
  return {
    host: mirror.host,
    ...(mirror.scheme ? { scheme: mirror.scheme } : {}),
    repository: repositoryUnder(mirror, ...origin.repository.split('/')),
  };
}

/** The mirrors found unreachable, per run (keyed by the run's list of mirrors). */
const downByRun = new WeakMap<readonly RegistryMirror[], Set<string>>();

/** One repository's way to its manifests and blobs: the mirror while it serves, else the origin. */
export class RepositoryRoute {
  /** Set once the mirror failed this repository: everything then goes to the origin. */
  private fellBack = false;
  /** Sessions handed out for blobs at the mirror, so a failure there is told from the origin's. */
  private readonly mirrorSessions = new WeakSet<RegistrySession>();
  /** Manifest digests the mirror was seen to hold (or not), so blobs know where to go. */
  private readonly held = new Map<string, Promise<boolean>>();

  constructor(
    private readonly routes: RegistryRoutes,
    readonly origin: RepositoryName,
    private readonly mirror: RepositoryPrefix | undefined,
  ) {}

  /**
   * Whether blobs may come from a mirror: then each is asked with one connection until the
   * mirror shows it serves ranges (a pull-through cache lacking a blob fetches all of it from
   * the origin for every range request; measured in docs/scale-out.md).
   */
  get mirrored(): boolean {
    return this.mirror !== undefined;
  }

  /** The repository on the mirror while it is used: the mirror's path, then the origin's repository. */
  private get mirrorName(): RepositoryName | undefined {
    const m = this.mirror;
    if (!m || this.fellBack || this.routes.down.has(m.text)) return undefined;
    return mirrorRepository(m, this.origin);
  }

  /** The origin's session (no mirror). */
  originSession(call: RegistryCall): Promise<RegistrySession> {
    return this.routes.client.resolve(call, this.origin);
  }

  /**
   * A manifest (or index) by tag or digest: from the mirror when it has it, else from the
   * origin. A digest mismatch from the mirror is a miss, never an answer.
   */
  async manifest(call: RegistryCall, reference: string, request: ManifestRequest): Promise<Buffer> {
    const mirror = this.mirrorName;
    if (mirror) {
      try {
        const session = await this.routes.client.resolve(call, mirror);
        const bytes = await session.getManifest(call, reference, request);
        this.held.set(sha256Hex(bytes), Promise.resolve(true));
        call.log.debug(`${request.name}: manifest ${reference} from the mirror ${this.mirror!.host}`);
        return bytes;
      } catch (error) {
        this.fallBack(call, error, mirror, reference);
      }
    }
    return (await this.originSession(call)).getManifest(call, reference, request);
  }

  /**
   * Where the blobs of the manifest `hex` are fetched: the mirror when it holds that manifest
   * (asked once, by digest, when the manifest came from elsewhere: a lock or the store), else
   * the origin. Called on the first blob that needs fetching, so a model on disk asks nothing.
   */
  private async blobSession(call: RegistryCall, hex: string, name: string): Promise<RegistrySession> {
    const mirror = this.mirrorName;
    if (!mirror) return this.originSession(call);
    let held = this.held.get(hex);
    if (!held) {
      held = (async () => {
        try {
          const session = await this.routes.client.resolve(call, mirror);
          await session.getManifest(call, `sha256:${hex}`, {
            name,
            expectHex: hex,
            accept: MANIFEST_OR_INDEX_ACCEPT,
          });
          return true;
        } catch (error) {
          this.fallBack(call, error, mirror, `sha256:${hex}`);
          return false;
        }
      })();
      this.held.set(hex, held);
    }
    const onMirror = await held;
    const still = this.mirrorName;
    if (!onMirror || !still) return this.originSession(call);
    const session = await this.routes.client.resolve(call, still);
    this.mirrorSessions.add(session);
    return session;
  }

  /** The blobs of the manifest `hex`: where each is fetched, and the origin after a failure there. */
  blobs(hex: string, name: string): BlobRoute {
    return {
      session: (call) => this.blobSession(call, hex, name),
      leave: (call, session, blob, error) => this.leaveAfterBlob(call, session, blob, error),
    };
  }

  /**
   * A blob failed at `session` (not there, unreachable, other bytes than its digest): when that
   * session was the mirror's, the repository leaves the mirror (one warning, as for a manifest)
   * and the blob is fetched again from the origin. A failure at the origin stays a failure.
   */
  private leaveAfterBlob(call: RegistryCall, session: RegistrySession, hex: string, error: unknown): boolean {
    if (!this.mirror || !this.mirrorSessions.has(session)) return false;
    if (call.signal?.aborted) return false;
    // A refused connection reaches here after its retries: the mirror is down, not the blob.
    const cause =
      isModelPullError(error, 'ERR_RETRIES_EXHAUSTED') && error.cause !== undefined ? error.cause : error;
    this.fallBack(call, cause, mirrorRepository(this.mirror, this.origin), `sha256:${hex}`, error);
    return true;
  }

  /**
   * Leaves the mirror for this repository (or, when unreachable, for the run) with one warning.
   * `told` is the error the warning quotes, when it is not `error` itself (a retry budget spent
   * on what `error` says).
   */
  private fallBack(
    call: RegistryCall,
    error: unknown,
    mirror: RepositoryName,
    reference: string,
    told: unknown = error,
  ): void {
    if (isModelPullError(error, 'ERR_ABORTED') || call.signal?.aborted) throw error;
    const prefix = this.mirror!;
    const where = nameUnder(prefix, mirror.repository, reference);
    const origin = this.origin.host;
    if (isUnreachable(error)) {
      if (this.routes.down.has(prefix.text)) return;
      this.routes.down.add(prefix.text);
      call.log.warning(
        `registry-mirror ${prefix.text} cannot be reached (${describeError(told)}); pulling from ${origin} instead for the rest of this run`,
      );
      return;
    }
    if (this.fellBack) return;
    this.fellBack = true;
    const why = isModelPullError(error, 'ERR_NOT_FOUND')
      ? 'is not on the mirror'
      : `failed: ${describeError(told)}`;
    call.log.warning(`registry-mirror: ${where} ${why}; pulling ${this.origin.repository} from ${origin}`);
  }
}
