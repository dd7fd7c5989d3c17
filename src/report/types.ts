import type { ModelPullError } from '../errors.js';
import type { Identity, ModelFile, SourceKind } from '../plan.js';

/** Where a model's files came from, as the `models` output says (README.md, "Outputs"). */
export type CacheState = 'hit' | 'miss' | 'partial' | 'off';

/** One object of the `models` output: the field names are the action's public interface. */
export interface ModelOutput {
  /** The line as written (trimmed, comment removed). */
  readonly ref: string;
  readonly source: SourceKind;
  readonly name: string;
  /** What the line is pinned to: manifest digest, HF commit, file sha256 (`Identity.pin`). */
  readonly digest: string;
  readonly path: string;
  readonly size: number;
  readonly cache: CacheState;
  readonly files: readonly ModelFile[];
}

/** What happened to one line in a run. */
export interface ModelReport {
  readonly line: string;
  readonly source: SourceKind;
  /** Present when the model is in place and verified. */
  readonly output?: ModelOutput;
  /** With `output`: what the line resolved to (the `mirror` command pushes from it). */
  readonly identity?: Identity;
  readonly error?: ModelPullError | Error;
  /** The key of the model's Actions cache entry, when the cache was on and the key known. */
  readonly key?: string;
  readonly downloadedBytes: number;
  readonly cachedBytes: number;
  readonly durationMs: number;
  /** Bytes downloaded in this run by the host that served them (a mirror, the origin, its CDN). */
  readonly from?: Readonly<Record<string, number>>;
}

/** What happened in a run: one report per line, in line order, and the totals. */
export interface PullReport {
  readonly models: readonly ModelReport[];
  readonly downloadedBytes: number;
  readonly cachedBytes: number;
  /** True when every model came from the cache with no download. */
  readonly cacheHit: boolean;
  readonly ok: boolean;
}
