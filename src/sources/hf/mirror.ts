import { formatDigest, hashFile, sha256Hex } from '../../digest.js';
import { blobPath, hfRepoPaths } from '../../layouts/hf.js';
import { modelPackArtifact, type PackFile } from '../../mirror/modelpack.js';
import type { SourceMirror } from '../../mirror/types.js';
import {
  nameUnder,
  type RepositoryPrefix,
  repositoryPart,
  repositoryUnder,
  tagFrom,
} from '../../registry/prefix.js';
import { displayName, hfDetail } from './identity.js';
import { treeJson } from './listing.js';
import type { HfRef } from './ref.js';

/**
 * What a mirrored Hugging Face repo records (docs/scale-out.md, "What a mirror holds"): the
 * manifest names the repository, its commit and the revision the line named; each layer the
 * file's Hub oid (`sha256:` for LFS files, `git-sha1:` for the others), which is what
 * hf-oci-mirror verifies the bytes against, as a pull from the Hub does.
 */
export const HfAnnotations = {
  Repo: 'dev.model-pull.hf.repo',
  Commit: 'dev.model-pull.hf.commit',
  Revision: 'dev.model-pull.hf.revision',
  /** Set only on an artifact that holds part of the commit (include= / exclude=). */
  Filters: 'dev.model-pull.hf.filters',
  Oid: 'dev.model-pull.hf.oid',
} as const;

/** The config key beside ModelPack's own that carries the commit's listing (trees/<commit>.json). */
export const HF_CONFIG_KEY = 'huggingface';

/** `owner/repo` (`datasets/owner/repo`) under the prefix, lower case. */
export function hfRepository(prefix: RepositoryPrefix, ref: Pick<HfRef, 'type' | 'repo' | 'line'>): string {
  const [owner = '', name = ''] = ref.repo.split('/');
  const kind = ref.type === 'model' ? [] : [`${ref.type}s`];
  return repositoryUnder(
    prefix,
    ...kind,
    repositoryPart(owner, 'owner', ref.line),
    repositoryPart(name, 'repository name', ref.line),
  );
}

/**
 * The tag of a commit's artifact: the commit itself for the whole repo; with `include=` /
 * `exclude=`, the commit and a short hash of the filters, so a partial copy never takes the
 * tag that promises every file.
 */
export function hfTag(name: string, ref: Pick<HfRef, 'include' | 'exclude'>): string | undefined {
  const filtered = ref.include.length > 0 || ref.exclude.length > 0;
  const suffix = filtered ? `-${sha256Hex(JSON.stringify([ref.include, ref.exclude])).slice(0, 12)}` : '';
  return tagFrom(name, suffix);
}

/** HF repos as ModelPack artifacts, one raw layer per file at its repo path, tagged by commit. */
export const hfMirror: SourceMirror<HfRef> = {
  target(ref, line, prefix) {
    return {
      repository: hfRepository(prefix, { ...ref, line }),
      origin: `hf:${displayName(ref.type, ref.repo)}`,
    };
  },

  async artifact(ref, model, target, settings) {
    const d = hfDetail(model.identity, ref);
    const paths = hfRepoPaths(settings.hfCache, d.type, d.repo);
    const files: PackFile[] = [];
    // Layers in the order the Hub listed the files: hf-oci-mirror rebuilds the same identity.
    for (const f of d.files) {
      const source = blobPath(paths, f.digest.hex);
      // LFS files are named by their sha256 already; git files by a sha1 of their header and bytes.
      const hex = f.digest.algorithm === 'sha256' ? f.digest.hex : await hashFile(source, 'sha256');
      files.push({
        path: f.path,
        hex,
        size: f.size,
        source,
        annotations: { [HfAnnotations.Oid]: formatDigest(f.digest) },
      });
    }
    const tags = [hfTag(d.commit, d), d.revision === d.commit ? undefined : hfTag(d.revision, d)].filter(
      (t): t is string => t !== undefined,
    );
    const name = displayName(d.type, d.repo);
    const filters =
      d.include.length || d.exclude.length
        ? JSON.stringify({ include: d.include, exclude: d.exclude })
        : undefined;
    const source = `${settings.hfEndpoint}/${d.type === 'model' ? '' : `${d.type}s/`}${d.repo}`;
    return modelPackArtifact({
      files,
      descriptor: { name, revision: d.commit, sourceURL: source },
      extra: {
        [HF_CONFIG_KEY]: {
          type: d.type,
          repo: d.repo,
          commit: d.commit,
          ...(d.tree ? { tree: treeJson(d.tree) } : {}),
        },
      },
      annotations: {
        [HfAnnotations.Repo]: name,
        [HfAnnotations.Commit]: d.commit,
        [HfAnnotations.Revision]: d.revision,
        ...(filters ? { [HfAnnotations.Filters]: filters } : {}),
        'org.opencontainers.image.source': source,
        'org.opencontainers.image.revision': d.commit,
      },
      references: tags,
      name: nameUnder(settings.mirrorTo!, target.repository, tags[0]!),
      label: ref.line,
    });
  },
};
