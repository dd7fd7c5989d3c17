import type { Clock } from './clock.js';
import type { BlobSpec } from './download/types.js';
import { ModelPullError } from './errors.js';
import type { HttpClient } from './http/client.js';
import type { RetryPolicy } from './http/retry.js';
import type { Logger } from './report/logger.js';

/**
 * A source's name (`ollama`, `hf`, `url`, …): the `source` of its lock entries, cache keys and
 * `models` output objects. The list of sources is open (sources/index.ts), so this is a string.
 */
export type SourceKind = string;

/** One file a consumer sees, as reported in the `models` output. */
export interface ModelFile {
  /** Absolute path where the consumer finds it (Ollama blob, HF snapshot entry, plain file). */
  readonly path: string;
  /** `sha256:<hex>` or `git-sha1:<hex>`. */
  readonly digest: string;
  readonly size: number;
}

/**
 * What a line resolved to: enough to name the cache entry and to rebuild the plan without a
 * tag or branch lookup. This is what the lock file stores for a line (JSON-safe, stable).
 */
export interface Identity {
  readonly source: SourceKind;
  /** The line as the user wrote it (trimmed), the lock file's key. */
  readonly ref: string;
  /** Canonical name, e.g. registry.ollama.ai/library/llama3.2:1b, owner/repo, the URL. */
  readonly name: string;
  /**
   * What the line is pinned to, the immutable answer to its lookup: ollama: the manifest digest
   * (`sha256:<hex>`); hf: the 40-hex commit; url: the file's `sha256:<hex>`. Written as `digest`
   * in the lock file and the `models` output.
   */
  readonly pin: string;
  /** sha256 hex that identifies exactly the bytes of this model's cache entry. */
  readonly contentDigest: string;
  /** Source-specific facts (HF file list with oids and sizes, …), JSON-safe. */
  readonly detail?: Readonly<Record<string, unknown>>;
}

/** A resolved model: what to fetch, what the layout will hold, and how to commit it. */
export interface PlanEntry {
  readonly identity: Identity;
  /** ollama: weights blob; hf: snapshot folder; url: the file. */
  readonly path: string;
  /** Total bytes of the model's files. */
  readonly size: number;
  readonly files: readonly ModelFile[];
  /** Blobs for the engine; each target is checked (and reused) before any byte is fetched. */
  readonly blobs: readonly BlobSpec[];
  /** Exactly this model's files, the same list on cache restore and save. */
  readonly cachePaths: readonly string[];
  /**
   * Writes the consumer layout from verified blobs: links first, manifest / ref last. A source
   * whose files are known only once written (an archive layer's members) returns them here;
   * they replace `files` in the output.
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: most sources' commit() returns nothing
  commit(): Promise<void | { readonly files: readonly ModelFile[] }>;
}

/**
 * What every source gets to work with; no source reads settings, the environment or the wall
 * clock itself (waits between retries and token expiry go through `clock`).
 */
export interface SourceContext {
  readonly http: HttpClient;
  readonly retry: RetryPolicy;
  readonly log: Logger;
  readonly clock: Clock;
  readonly signal?: AbortSignal;
}

/**
 * A source turns a parsed reference into an identity (network allowed, but none when the
 * reference is pinned and the data is already complete on disk), then an identity into a plan.
 * The split lets a lock file supply identities without any lookup, and the pipeline name each
 * model's cache entry before anything is fetched.
 */
export interface Source<Ref> {
  identify(ref: Ref, ctx: SourceContext): Promise<Identity>;
  /**
   * `ref` is the line parsed again; `identity` came from identify() or from a lock file that
   * anyone may have edited, so the plan checks that it names what `ref` names (same model,
   * revision, filters, pin) and refuses it otherwise with `recordedIdentityError`.
   */
  plan(ref: Ref, identity: Identity, ctx: SourceContext): Promise<PlanEntry>;
}

/**
 * The one error for an identity that does not fit its line (edited or stale lock entry, an
 * entry copied under another line): ERR_LOCKFILE whichever source finds it.
 */
export function recordedIdentityError(identity: Pick<Identity, 'ref'>, why: string): ModelPullError {
  return new ModelPullError('ERR_LOCKFILE', `the recorded identity of "${identity.ref}" is invalid: ${why}`);
}

/**
 * Refuses a recorded identity that names another model than its line. An empty name is refused
 * too: model-pull always writes the name, so an entry without one was edited, and the bytes its
 * pin names are then not known to be the line's model.
 */
export function checkRecordedName(identity: Pick<Identity, 'ref' | 'name'>, name: string): void {
  if (identity.name === name) return;
  throw recordedIdentityError(
    identity,
    identity.name === '' ? `its name is empty, not ${name}` : `it names ${identity.name}, not ${name}`,
  );
}
