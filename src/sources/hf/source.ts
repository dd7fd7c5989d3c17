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
import type { Identity, PlanEntry, Source, SourceContext } from '../../plan.js';
import {
  type HubEndpoint,
  type HubFile,
  hubEndpoint,
  listTree,
  repoPageUrl,
  resolveRevision,
  resolveUrl,
} from './api.js';
import type { HubSubject } from './errors.js';
import { fileFilter } from './glob.js';
import { type HfDetail, hfDetail, hfIdentity } from './identity.js';
import { blobsPresent, type RecordKey, readRecord, readRef, recordContent, recordPath } from './record.js';
import { type HfRef, isCommitId } from './ref.js';

export interface HfSourceOptions {
  /** The Hugging Face cache root (hf-cache). */
  readonly cacheRoot: string;
  /** The Hub or a mirror (hf-endpoint). */
  readonly endpoint: string;
  /** Sent as `Authorization: Bearer` to the endpoint's origin only. */
  readonly token?: string;
  /** Filesystem seam for snapshot entries (tests take symlinks away). */
  readonly linkOps?: Partial<LinkOps>;
}

/** The `hf:` source: Hub revision → commit → filtered listing → blobs and the HF cache layout. */
export function createHfSource(options: HfSourceOptions): Source<HfRef> {
  const env: SourceEnv = { ...options, ep: hubEndpoint(options.endpoint, options.token) };
  return {
    identify: (ref, ctx) => identify(env, ref, ctx),
    plan: async (ref, identity, _ctx) => plan(env, ref, identity),
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
    // A commit's tree never changes: a complete earlier pull answers without a request.
    const local = await completeLocally(paths, ref, ref.revision);
    if (local) {
      ctx.log.debug(`${ref.line}: complete in the cache at ${ref.revision}, no request made`);
      return hfIdentity(ref, ref.revision, local);
    }
    return hfIdentity(ref, ref.revision, await selectedFiles(env, ref, ref.revision, ctx));
  }
  let commit: string | undefined;
  try {
    commit = await resolveRevision(env.ep, ref.type, ref.repo, ref.revision, ctx, subjectOf(env, ref));
    return hfIdentity(ref, commit, await selectedFiles(env, ref, commit, ctx));
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
    return hfIdentity(ref, fallback, local);
  }
}

function recordKey(ref: Pick<HfRef, 'type' | 'repo' | 'include' | 'exclude'>, commit: string): RecordKey {
  return { type: ref.type, repo: ref.repo, commit, include: ref.include, exclude: ref.exclude };
}

/**
 * The recorded listing when our record exists and every blob it names is on disk at its size.
 * Sizes are enough here: the engine hashes every blob before it is used (verify: full), so
 * hashing here too would read every file twice on each cache hit; a damaged blob is then
 * caught and fetched by the engine.
 */
async function completeLocally(
  paths: HfRepoPaths,
  ref: HfRef,
  commit: string,
): Promise<HubFile[] | undefined> {
  const key = recordKey(ref, commit);
  const files = await readRecord(recordPath(paths, key), key);
  if (!files || !(await blobsPresent(paths, files))) return undefined;
  return files;
}

async function selectedFiles(
  env: SourceEnv,
  ref: HfRef,
  commit: string,
  ctx: SourceContext,
): Promise<HubFile[]> {
  const subject = subjectOf(env, ref);
  const all = await listTree(env.ep, ref.type, ref.repo, commit, ctx, subject);
  const keep = fileFilter(ref.include, ref.exclude);
  const selected = all.filter((f) => keep(f.path));
  if (selected.length === 0) {
    const filters = [
      ref.include.length ? `include=${ref.include.join(',')}` : '',
      ref.exclude.length ? `exclude=${ref.exclude.join(',')}` : '',
    ].filter(Boolean);
    const why = all.length === 0 ? 'has no files' : `has no file matching ${filters.join(' ')}`;
    throw new ModelPullError('ERR_NOT_FOUND', `${subject.label} ${why} at commit ${commit}`);
  }
  return selected;
}

/** Blobs, files and the commit step for an identity; no request (the engine fetches, later). */
function plan(env: SourceEnv, ref: HfRef, identity: Identity): PlanEntry {
  const d = hfDetail(identity, ref);
  const paths = hfRepoPaths(env.cacheRoot, d.type, d.repo);
  const blobs = new Map<string, BlobSpec>();
  for (const file of d.files) {
    // Files with the same content share one blob, as in huggingface_hub's cache.
    if (!blobs.has(file.digest.hex)) blobs.set(file.digest.hex, blobSpec(env, d, paths, identity.name, file));
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
    cachePaths: [...[...blobs.values()].map((b) => b.target), record],
    commit: () =>
      commitSnapshot({
        paths,
        commit: d.commit,
        revision: d.revision,
        files: d.files.map((f) => ({ path: f.path, etag: f.digest.hex, size: f.size })),
        record: { path: record, content: recordContent(recordKey(d, d.commit), d.files) },
        ...(env.linkOps ? { ops: env.linkOps } : {}),
      }),
  };
}

function blobSpec(env: SourceEnv, d: HfDetail, paths: HfRepoPaths, name: string, file: HubFile): BlobSpec {
  const url = resolveUrl(env.ep, d.type, d.repo, d.commit, file.path);
  const location: BlobLocation = env.ep.credentials ? { url, credentials: env.ep.credentials } : { url };
  return {
    digest: file.digest,
    size: file.size,
    label: `hf:${name} ${file.path}`,
    target: blobPath(paths, file.digest.hex),
    ingestDir: paths.ingest,
    // The resolve URL answers 302 to a freshly signed CDN URL each time, so asking again after
    // an expiry is just asking the Hub again.
    locate: async () => location,
  };
}
