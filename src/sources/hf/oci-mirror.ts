import { formatDigest, parseDigest, sha256Hex } from '../../digest.js';
import type { BlobLocation } from '../../download/types.js';
import { describeError, isModelPullError, ModelPullError } from '../../errors.js';
import { readBody } from '../../http/body.js';
import { withRetries } from '../../http/retry.js';
import type { SourceContext } from '../../plan.js';
import type { RegistryClient } from '../../registry/client.js';
import { type ImageManifest, MediaTypes, parseImageManifest } from '../../registry/manifest.js';
import { nameUnder, type RepositoryPrefix } from '../../registry/prefix.js';
import type { RegistrySession } from '../../registry/session.js';
import { FILEPATH_ANNOTATION, MODELPACK_CONFIG } from '../oci/formats.js';
import type { HubFile, TreeEntry } from './api.js';
import { fileFilter } from './glob.js';
import { displayName } from './identity.js';
import { checkedTree } from './listing.js';
import { HF_CONFIG_KEY, HfAnnotations, hfRepository, hfTag } from './mirror.js';
import type { HfRef } from './ref.js';

/** A commit's listing travels in the artifact's config: 100,000 files fit well within this. */
const MAX_CONFIG_BYTES = 64 * 1024 * 1024;

/** One file the artifact holds: its layer, and the Hub oid the layer says it has. */
interface Layer {
  readonly hex: string;
  readonly size: number;
  readonly oid: string;
}

/** A commit as the mirror holds it: the whole listing, and a layer for each file it carries. */
export interface MirroredCommit {
  readonly name: string;
  readonly tree: readonly TreeEntry[];
  readonly layers: ReadonlyMap<string, Layer>;
  readonly session: RegistrySession;
}

type Selection = Pick<HfRef, 'type' | 'repo' | 'include' | 'exclude' | 'line'>;

/**
 * `hf-oci-mirror` (docs/scale-out.md, "Hugging Face repos from a registry"): a commit that
 * `model-pull mirror` pushed is read from `<prefix>/<owner>/<repo>:<commit>` (or the tag of the
 * line's filters) instead of the Hub. The artifact is only used when it names this repository
 * and commit and carries every selected file with the oid the Hub listed (or the lock
 * recorded); the engine then checks every byte against those oids, as for a Hub download.
 * Anything else sends the line to the Hub, with one warning.
 */
export class HfOciMirror {
  private readonly commits = new Map<string, Promise<MirroredCommit | undefined>>();

  constructor(
    private readonly registry: RegistryClient,
    readonly prefix: RepositoryPrefix,
  ) {}

  /** The artifact of a commit for this line's repository and filters, if the mirror has it. */
  commit(ref: Selection, commit: string, ctx: SourceContext): Promise<MirroredCommit | undefined> {
    const key = `${ref.type}/${ref.repo}@${commit} ${JSON.stringify([ref.include, ref.exclude])}`;
    let found = this.commits.get(key);
    if (!found) {
      found = this.fetch(ref, commit, ctx).catch((error: unknown) => {
        if (isModelPullError(error, 'ERR_ABORTED') || ctx.signal?.aborted) throw error;
        ctx.log.warning(
          `${ref.line}: hf-oci-mirror ${this.prefix.text}: ${describeError(error)}; pulling from the Hub`,
        );
        return undefined;
      });
      this.commits.set(key, found);
    }
    return found;
  }

  /**
   * Selected files from the mirror's listing: what identify() would have listed at the Hub, in
   * the order the Hub listed them (the layers keep it), so the identity is the same either way.
   */
  static selected(mirrored: MirroredCommit, ref: Pick<HfRef, 'include' | 'exclude'>): TreeEntry[] {
    const keep = fileFilter(ref.include, ref.exclude);
    const byPath = new Map(mirrored.tree.map((e) => [e.path, e]));
    const carried = [...mirrored.layers.keys()].flatMap((p) => {
      const entry = byPath.get(p);
      return entry && keep(p) ? [entry] : [];
    });
    const others = mirrored.tree.filter((e) => keep(e.path) && !mirrored.layers.has(e.path));
    return [...carried, ...others];
  }

  /** Where the engine fetches a file from the mirror (credentials bound to the registry). */
  async location(
    mirrored: MirroredCommit,
    file: HubFile,
    ctx: SourceContext,
    previous: number | undefined,
  ): Promise<{ location: BlobLocation; generation: number }> {
    const layer = mirrored.layers.get(file.path);
    if (!layer) throw new Error(`${file.path} is not in ${mirrored.name}`);
    return mirrored.session.blobLocation(ctx, layer.hex, previous);
  }

  /** Why the artifact cannot serve these files (a file missing or with another oid), if it cannot. */
  static lacks(mirrored: MirroredCommit, files: readonly HubFile[]): string | undefined {
    for (const f of files) {
      const layer = mirrored.layers.get(f.path);
      if (!layer) return `it does not hold "${f.path}"`;
      if (layer.oid !== formatDigest(f.digest) || layer.size !== f.size)
        return `it holds "${f.path}" with oid ${layer.oid}, not ${formatDigest(f.digest)}`;
    }
    return undefined;
  }

  private async fetch(
    ref: Selection,
    commit: string,
    ctx: SourceContext,
  ): Promise<MirroredCommit | undefined> {
    const repository = hfRepository(this.prefix, ref);
    const session = await this.registry.resolve(ctx, {
      host: this.prefix.host,
      ...(this.prefix.scheme ? { scheme: this.prefix.scheme } : {}),
      repository,
    });
    const filtered = ref.include.length > 0 || ref.exclude.length > 0;
    // The line's own copy first, then the whole commit, which serves any filters.
    const tags = [hfTag(commit, ref), ...(filtered ? [hfTag(commit, { include: [], exclude: [] })] : [])];
    for (const tag of tags) {
      if (tag === undefined) continue;
      const name = nameUnder(this.prefix, repository, tag);
      let bytes: Buffer;
      try {
        bytes = await session.getManifest(ctx, tag, { name, accept: MediaTypes.OciManifest });
      } catch (error) {
        if (isModelPullError(error, 'ERR_NOT_FOUND')) continue;
        throw error;
      }
      const mirrored = await this.read(ref, commit, name, parseImageManifest(bytes, name), session, ctx);
      const lacks = HfOciMirror.lacks(mirrored, HfOciMirror.selected(mirrored, ref));
      if (lacks) throw new ModelPullError('ERR_BAD_MANIFEST', `${name} cannot serve this line: ${lacks}`);
      ctx.log.info(`${ref.line}: commit ${commit} from ${name}`);
      return mirrored;
    }
    const where = nameUnder(this.prefix, repository, tags[0] ?? commit);
    throw new ModelPullError('ERR_NOT_FOUND', `${where} is not there`);
  }

  /** Checks what the artifact says it is, then reads its listing from the config. */
  private async read(
    ref: Selection,
    commit: string,
    name: string,
    manifest: ImageManifest,
    session: RegistrySession,
    ctx: SourceContext,
  ): Promise<MirroredCommit> {
    const bad = (why: string) => new ModelPullError('ERR_BAD_MANIFEST', `${name} ${why}`);
    const notes = manifest.annotations ?? {};
    const repo = displayName(ref.type, ref.repo);
    if (notes[HfAnnotations.Commit] !== commit) throw bad(`is not commit ${commit}`);
    if (notes[HfAnnotations.Repo]?.toLowerCase() !== repo.toLowerCase()) throw bad(`is not ${repo}`);
    if (manifest.config.mediaType !== MODELPACK_CONFIG) throw bad('is not a ModelPack artifact');
    const config = await withRetries(
      async () => {
        const answer = await session.request(ctx, `blobs/sha256:${manifest.config.hex}`);
        if (answer.status !== 200) {
          await answer.body.dump().catch(() => undefined);
          throw bad(`has no config blob (HTTP ${answer.status})`);
        }
        return readBody(answer, MAX_CONFIG_BYTES, `the config of ${name}`);
      },
      ctx.retry,
      { clock: ctx.clock, ...(ctx.signal ? { signal: ctx.signal } : {}) },
    );
    if (sha256Hex(config) !== manifest.config.hex) throw bad('has a config that does not match its digest');
    let tree: TreeEntry[];
    try {
      const hf = (JSON.parse(config.toString('utf8')) as Record<string, unknown>)[HF_CONFIG_KEY] as
        | { commit?: unknown; tree?: unknown }
        | undefined;
      if (hf?.commit !== commit) throw new Error(`it names another commit`);
      tree = checkedTree(hf.tree);
    } catch (error) {
      throw bad(`has no usable listing of the commit (${(error as Error).message})`);
    }
    const layers = new Map<string, Layer>();
    for (const layer of manifest.layers) {
      const path = layer.annotations?.[FILEPATH_ANNOTATION];
      const oid = layer.annotations?.[HfAnnotations.Oid];
      if (path === undefined || oid === undefined) continue;
      layers.set(path, {
        hex: layer.hex,
        size: layer.size,
        oid: formatDigest(parseDigest(oid, `oid of ${path}`)),
      });
    }
    return { name, tree, layers, session };
  }
}
