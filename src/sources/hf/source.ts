import { join } from 'node:path';
import { formatDigest } from '../../digest.js';
import type { BlobLocation, BlobSpec } from '../../download/types.js';
import { describeError, ModelPullError } from '../../errors.js';
import { isUnreachable } from '../../http/retry.js';
import {
  blobPath,
  commitSnapshot,
  type HfRepoPaths,
  hfRepoPaths,
  type LinkOps,
  snapshotFilePath,
} from '../../layouts/hf.js';
import { readTrees, treesContent, treesPath } from '../../layouts/hf-trees.js';
import type { Identity, PlanEntry, Source, SourceContext } from '../../plan.js';
import {
  type BasicAuth,
  type HubEndpoint,
  type HubFile,
  hubEndpoint,
  listTree,
  repoPageUrl,
  resolveRevision,
  resolveUrl,
  type TreeEntry,
} from './api.js';
import type { HubSubject } from './errors.js';
import { fileFilter } from './glob.js';
import { type HfDetail, hfDetail, hfIdentity } from './identity.js';
import { treeCacheFiles, treeEntries, treeMismatch } from './listing.js';
import { HfOciMirror, type MirroredCommit } from './oci-mirror.js';
import { blobsPresent, type RecordKey, readRecord, readRef, recordContent, recordPath } from './record.js';
import { type HfRef, isCommitId } from './ref.js';

export interface HfSourceOptions {
  /** The Hugging Face cache root (hf-cache). */
  readonly cacheRoot: string;
  /** The Hub or a mirror (hf-endpoint). */
  readonly endpoint: string;
  /** Sent as `Authorization: Bearer` to the endpoint's origin only. */
  readonly token?: string;
  /** A mirror's Basic credentials (instead of the token), to the endpoint's origin only. */
  readonly endpointAuth?: BasicAuth;
  /** Filesystem seam for snapshot entries (tests take symlinks away). */
  readonly linkOps?: Partial<LinkOps>;
  /** `hf-oci-mirror`: commits pushed by `model-pull mirror`, read before the Hub. */
  readonly ociMirror?: HfOciMirror;
}

/** The `hf:` source: Hub revision → commit → filtered listing → blobs and the HF cache layout. */
export function createHfSource(options: HfSourceOptions): Source<HfRef> {
  const env: SourceEnv = {
    ...options,
    ep: hubEndpoint(options.endpoint, options.token, options.endpointAuth),
  };
  return {
    identify: (ref, ctx) => identify(env, ref, ctx),
    plan: async (ref, identity, ctx) => plan(env, ref, identity, ctx),
  };
}

interface SourceEnv extends HfSourceOptions {
  readonly ep: HubEndpoint;
}

function subjectOf(env: SourceEnv, ref: Pick<HfRef, 'type' | 'repo' | 'revision'>): HubSubject {
  return {
    label: `Hugging Face ${ref.type} ${ref.repo}`,
    pageUrl: repoPageUrl(env.ep, ref.type, ref.repo),
    revision: ref.revision,
    tokenGiven: env.token !== undefined && env.token !== '',
  };
}

async function identify(env: SourceEnv, ref: HfRef, ctx: SourceContext): Promise<Identity> {
  const paths = hfRepoPaths(env.cacheRoot, ref.type, ref.repo);
  if (isCommitId(ref.revision)) {
    // A commit's tree never changes: a complete earlier pull (with the commit's whole listing in
    // trees/) answers without a request.
    const local = await completeLocally(paths, ref, ref.revision);
    if (local?.tree) {
      ctx.log.debug(`${ref.line}: complete in the cache at ${ref.revision}, no request made`);
      return hfIdentity(ref, ref.revision, local.files, local.tree);
    }
    const mirrored = await fromOciMirror(env, ref, ref.revision, ctx);
    if (mirrored) return mirrored;
    const listed = await listFiles(env, ref, ref.revision, ctx);
    return hfIdentity(ref, ref.revision, listed.files, listed.tree);
  }
  let commit: string | undefined;
  try {
    commit = await resolveRevision(env.ep, ref.type, ref.repo, ref.revision, ctx, subjectOf(env, ref));
    // A branch costs the Hub one call; the listing and the files may come from the mirror.
    const mirrored = await fromOciMirror(env, ref, commit, ctx);
    if (mirrored) return mirrored;
    const listed = await listFiles(env, ref, commit, ctx);
    return hfIdentity(ref, commit, listed.files, listed.tree);
  } catch (error) {
    // Only when the Hub could not be reached (no such host, refused, network, 5xx, 429 past the
    // retry budget): a branch whose `refs/` entry names a complete local snapshot is used, with a
    // warning.
    if (!isUnreachable(error)) throw error;
    const fallback = commit ?? (await readRef(paths, ref.revision));
    const local = fallback === undefined ? undefined : await completeLocally(paths, ref, fallback);
    if (fallback === undefined || !local) throw error;
    ctx.log.warning(
      `${ref.line}: ${describeError(error)}; using ${ref.revision} = ${fallback} from the local cache, ` +
        'which may be behind the Hub',
    );
    return hfIdentity(ref, fallback, local.files, local.tree);
  }
}

/** The identity of a commit from the hf-oci-mirror's listing, when the mirror has the commit. */
async function fromOciMirror(
  env: SourceEnv,
  ref: HfRef,
  commit: string,
  ctx: SourceContext,
): Promise<Identity | undefined> {
  const mirrored = env.ociMirror && (await env.ociMirror.commit(ref, commit, ctx));
  if (!mirrored) return undefined;
  const files = HfOciMirror.selected(mirrored, ref);
  return files.length ? hfIdentity(ref, commit, files, mirrored.tree) : undefined;
}

/** The hf-oci-mirror's copy of one model's commit, and the Hub for files it fails to serve. */
interface MirroredFiles {
  /** The copy, asked once and only when a file must be fetched; undefined: the Hub. */
  commit(): Promise<MirroredCommit | undefined>;
  /** A file failed at the mirror (gone, unreachable, other bytes): the Hub serves it (one warning per model). */
  leave(file: HubFile, error: unknown): void;
}

/**
 * The mirror's copy of the planned commit; undefined (the Hub) when it is absent or does not
 * hold these files with these oids.
 */
function mirroredFiles(
  env: SourceEnv,
  ref: HfRef,
  d: HfDetail,
  ctx: SourceContext,
): MirroredFiles | undefined {
  const mirror = env.ociMirror;
  if (!mirror) return undefined;
  let found: Promise<MirroredCommit | undefined> | undefined;
  let warned = false;
  return {
    commit() {
      found ??= mirror.commit({ ...d, line: ref.line }, d.commit, ctx).then((m) => {
        const lacks = m && HfOciMirror.lacks(m, d.files);
        if (!lacks) return m;
        ctx.log.warning(
          `${ref.line}: hf-oci-mirror ${m.name} does not fit the lock (${lacks}); pulling from the Hub`,
        );
        return undefined;
      });
      return found;
    },
    leave(file, error) {
      const why = `hf-oci-mirror ${mirror.prefix.text} failed on "${file.path}" (${describeError(error)})`;
      if (warned) return ctx.log.debug(`${ref.line}: ${why}; pulling it from the Hub`);
      warned = true;
      ctx.log.warning(`${ref.line}: ${why}; pulling the files it fails from the Hub`);
    },
  };
}

function recordKey(ref: Pick<HfRef, 'type' | 'repo' | 'include' | 'exclude'>, commit: string): RecordKey {
  return { type: ref.type, repo: ref.repo, commit, include: ref.include, exclude: ref.exclude };
}

/**
 * The recorded listing when our record exists and every blob it names is on disk at its size,
 * with the commit's whole listing when `trees/<commit>.json` fits it (ours or huggingface_hub's).
 * Sizes are enough here: the engine hashes every blob before it is used (verify: full), so
 * hashing here too would read every file twice on each cache hit; a damaged blob is then
 * caught and fetched by the engine.
 */
async function completeLocally(
  paths: HfRepoPaths,
  ref: HfRef,
  commit: string,
): Promise<{ files: HubFile[]; tree?: TreeEntry[] } | undefined> {
  const key = recordKey(ref, commit);
  const files = await readRecord(recordPath(paths, key), key);
  if (!files || !(await blobsPresent(paths, files))) return undefined;
  const tree = await localTree(paths, commit, files, ref);
  return tree ? { files, tree } : { files };
}

/** The listing in `trees/<commit>.json` when it is the whole tree these files were selected from. */
async function localTree(
  paths: HfRepoPaths,
  commit: string,
  files: readonly HubFile[],
  filters: Pick<HfRef, 'include' | 'exclude'>,
): Promise<TreeEntry[] | undefined> {
  const cached = await readTrees(paths, commit);
  const tree = cached && treeEntries(cached);
  return tree && !treeMismatch(tree, files, filters.include, filters.exclude) ? tree : undefined;
}

/** The commit's whole listing and the files the filters select from it (at least one). */
async function listFiles(
  env: SourceEnv,
  ref: HfRef,
  commit: string,
  ctx: SourceContext,
): Promise<{ files: TreeEntry[]; tree: TreeEntry[] }> {
  const subject = subjectOf(env, ref);
  const tree = await listTree(env.ep, ref.type, ref.repo, commit, ctx, subject);
  const keep = fileFilter(ref.include, ref.exclude);
  const files = tree.filter((f) => keep(f.path));
  if (files.length === 0) {
    const filters = [
      ref.include.length ? `include=${ref.include.join(',')}` : '',
      ref.exclude.length ? `exclude=${ref.exclude.join(',')}` : '',
    ].filter(Boolean);
    const why = tree.length === 0 ? 'has no files' : `has no file matching ${filters.join(' ')}`;
    throw new ModelPullError('ERR_NOT_FOUND', `${subject.label} ${why} at commit ${commit}`);
  }
  return { files, tree };
}

/** Blobs, files and the commit step for an identity; no request (the engine fetches, later). */
function plan(env: SourceEnv, ref: HfRef, identity: Identity, ctx: SourceContext): PlanEntry {
  const d = hfDetail(identity, ref);
  const paths = hfRepoPaths(env.cacheRoot, d.type, d.repo);
  const blobs = new Map<string, BlobSpec>();
  const mirrored = mirroredFiles(env, ref, d, ctx);
  for (const file of d.files) {
    // Files with the same content share one blob, as in huggingface_hub's cache.
    if (!blobs.has(file.digest.hex))
      blobs.set(file.digest.hex, blobSpec(env, d, paths, identity.name, file, ctx, mirrored));
  }
  const record = recordPath(paths, recordKey(d, d.commit));
  return {
    identity,
    path: join(paths.snapshots, d.commit),
    size: d.files.reduce((sum, f) => sum + f.size, 0),
    files: d.files.map((f) => ({
      path: snapshotFilePath(paths, d.commit, f.path),
      digest: formatDigest(f.digest),
      size: f.size,
    })),
    blobs: [...blobs.values()],
    // trees/<commit>.json is not part of the entry: commit() writes it from the identity (the
    // Hub's listing or the lock), so a cache archive can never supply it.
    cachePaths: [...[...blobs.values()].map((b) => b.target), record],
    commit: async () => {
      const tree = d.tree ?? (await recoverTree(env, d, paths, ctx, ref.line));
      await commitSnapshot({
        paths,
        commit: d.commit,
        revision: d.revision,
        files: d.files.map((f) => ({ path: f.path, etag: f.digest.hex, size: f.size })),
        ...(tree
          ? { listing: { path: treesPath(paths, d.commit), content: treesContent(treeCacheFiles(tree)) } }
          : {}),
        record: { path: record, content: recordContent(recordKey(d, d.commit), d.files) },
        ...(env.linkOps ? { ops: env.linkOps } : {}),
      });
    },
  };
}

/**
 * An identity recorded by an older model-pull (lock file) has no listing: a fitting
 * `trees/<commit>.json` already on disk stays, else the Hub is asked once. Without either, the
 * snapshot is still written, with a warning that huggingface_hub cannot load it offline by commit.
 */
async function recoverTree(
  env: SourceEnv,
  d: HfDetail,
  paths: HfRepoPaths,
  ctx: SourceContext,
  line: string,
): Promise<TreeEntry[] | undefined> {
  if (await localTree(paths, d.commit, d.files, d)) return undefined;
  try {
    const tree = await listTree(env.ep, d.type, d.repo, d.commit, ctx, subjectOf(env, d));
    const mismatch = treeMismatch(tree, d.files, d.include, d.exclude);
    if (mismatch)
      throw new ModelPullError('ERR_BAD_MANIFEST', `the Hub's listing does not fit the lock: ${mismatch}`);
    ctx.log.info(
      `${line}: the recorded identity has no file listing (written by an older model-pull); listed commit ${d.commit} once. Refresh the lock file to skip this request`,
    );
    return tree;
  } catch (error) {
    ctx.log.warning(
      `${line}: trees/${d.commit}.json not written (${describeError(error)}): huggingface_hub will not load this snapshot offline by its commit. Refresh the lock file with this model-pull to record the listing`,
    );
    return undefined;
  }
}

function blobSpec(
  env: SourceEnv,
  d: HfDetail,
  paths: HfRepoPaths,
  name: string,
  file: HubFile,
  ctx: SourceContext,
  mirrored: MirroredFiles | undefined,
): BlobSpec {
  const url = resolveUrl(env.ep, d.type, d.repo, d.commit, file.path);
  const location: BlobLocation = env.ep.credentials ? { url, credentials: env.ep.credentials } : { url };
  /** The registry token generation this blob last saw (see registryBlob). */
  let seen: number | undefined;
  /** Whether the last locate() named the mirror, and whether the mirror failed this file. */
  let atMirror = false;
  let left = false;
  return {
    digest: file.digest,
    size: file.size,
    label: `hf:${name} ${file.path}`,
    target: blobPath(paths, file.digest.hex),
    ingestDir: paths.ingest,
    // The resolve URL answers 302 to a freshly signed CDN URL each time, so asking again after
    // an expiry is just asking the Hub again. From the mirror, the engine checks the bytes
    // against the same oid.
    async locate(signal) {
      atMirror = false;
      const commit = !left && mirrored && (await mirrored.commit());
      if (!commit || !env.ociMirror) return location;
      atMirror = true;
      const at = await env.ociMirror.location(commit, file, signal ? { ...ctx, signal } : ctx, seen);
      seen = at.generation;
      return at.location;
    },
    ...(mirrored
      ? {
          fallback(error: unknown) {
            if (!atMirror || ctx.signal?.aborted) return false;
            left = true;
            mirrored.leave(file, error);
            return true;
          },
        }
      : {}),
  };
}
