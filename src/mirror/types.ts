import type { Identity } from '../plan.js';
import type { RepositoryPrefix } from '../registry/prefix.js';
import type { LocalArtifact } from '../registry/push.js';
import type { ModelOutput } from '../report/types.js';
import type { Settings } from '../settings/settings.js';

/** Where a line's model goes under a `mirror-to` prefix, known before anything is pulled. */
export interface MirrorTarget {
  /** The repository under the prefix's registry (the prefix's path included). */
  readonly repository: string;
  /**
   * What the model is, as the source names it (`registry.ollama.ai/library/llama3.2`): two lines
   * that map different origins to one repository would mix or overwrite each other's tags.
   */
  readonly origin: string;
}

/** A model as the pull left it: what it resolved to and where its verified files are. */
export interface PulledModel {
  readonly identity: Identity;
  readonly output: ModelOutput;
}

/**
 * How one source's models are pushed to an OCI registry (the `mirror` command, `mirror-to`):
 * each source folder says what its models look like as OCI artifacts (docs/scale-out.md).
 */
export interface SourceMirror<Ref> {
  /** Throws a `badLine` error (quoting the line) when this line cannot go under the prefix. */
  target(ref: Ref, line: string, prefix: RepositoryPrefix): MirrorTarget;
  /** The artifact to push: blobs from the verified files, the manifest, its tags. */
  artifact(ref: Ref, model: PulledModel, target: MirrorTarget, settings: Settings): Promise<LocalArtifact>;
}
