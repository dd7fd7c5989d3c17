import { formatDigest, sha256Hex } from '../../digest.js';
import { conflictError, pathConflict } from '../../layouts/hf.js';
import { type Identity, recordedIdentityError } from '../../plan.js';
import type { HubFile, TreeEntry } from './api.js';
import { checkedTree, treeJson, treeMismatch } from './listing.js';
import { checkedFile } from './record.js';
import { type HfRef, type HfRepoType, isCommitId, repoIdProblem, revisionProblem } from './ref.js';

/**
 * What an HF identity carries in `detail`: the line's repository, revision and filters (checked
 * against the line), and what the revision resolved to; enough to plan without any request.
 */
export interface HfDetail extends Omit<HfRef, 'line'> {
  readonly commit: string;
  readonly files: readonly HubFile[];
  /**
   * The commit's whole listing, for `trees/<commit>.json`; absent in identities recorded before
   * model-pull wrote that file (older lock files).
   */
  readonly tree?: readonly TreeEntry[];
}

/** `owner/repo` for models, `datasets/owner/repo` and `spaces/owner/repo` otherwise. */
export function displayName(type: HfRepoType, repo: string): string {
  return type === 'model' ? repo : `${type}s/${repo}`;
}

/**
 * The sha256 of a canonical JSON of the commit and the selected files sorted by path: two pulls
 * with the same bytes at the same paths share it, whatever the filters that chose them.
 */
export function contentDigestOf(commit: string, files: readonly HubFile[]): string {
  const rows = files
    .map((f) => [f.path, formatDigest(f.digest), f.size] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return sha256Hex(JSON.stringify(['hf', commit, rows]));
}

export function hfIdentity(
  ref: HfRef,
  commit: string,
  files: readonly HubFile[],
  tree?: readonly TreeEntry[],
): Identity {
  return {
    source: 'hf',
    ref: ref.line,
    name: displayName(ref.type, ref.repo),
    pin: commit,
    contentDigest: contentDigestOf(commit, files),
    detail: {
      type: ref.type,
      repo: ref.repo,
      revision: ref.revision,
      commit,
      include: [...ref.include],
      exclude: [...ref.exclude],
      files: files.map((f) => ({ path: f.path, digest: formatDigest(f.digest), size: f.size })),
      ...(tree ? { tree: treeJson(tree) } : {}),
    },
  };
}

/**
 * Reads `detail` back, checking everything that will reach a path or URL, and that it names what
 * the line names: an identity may come from a lock file that someone edited, or from the entry
 * of another line.
 */
export function hfDetail(identity: Identity, ref: HfRef): HfDetail {
  const bad = (why: string) => recordedIdentityError(identity, why);
  const d = (identity.detail ?? {}) as Record<string, unknown>;
  if (identity.source !== 'hf') throw bad(`source is ${identity.source}, not hf`);
  const type = d.type;
  if (type !== 'model' && type !== 'dataset' && type !== 'space')
    throw bad('type must be model, dataset or space');
  const repo = typeof d.repo === 'string' ? d.repo : '';
  const repoProblem = repoIdProblem(repo);
  if (repoProblem) throw bad(repoProblem);
  const revision = typeof d.revision === 'string' ? d.revision : '';
  const revProblem = revisionProblem(revision);
  if (revProblem) throw bad(revProblem);
  const commit = typeof d.commit === 'string' ? d.commit : '';
  if (!isCommitId(commit) || identity.pin !== commit)
    throw bad('the commit must be 40 lowercase hex, equal to digest');
  const include = stringList(d.include);
  const exclude = stringList(d.exclude);
  if (!include || !exclude || !Array.isArray(d.files)) throw bad('include, exclude and files must be lists');
  const files: HubFile[] = [];
  const seen = new Set<string>();
  for (const raw of d.files) {
    let file: HubFile;
    try {
      file = checkedFile(raw);
    } catch (error) {
      throw bad(`a file entry has ${(error as Error).message}`);
    }
    if (seen.has(file.path)) throw bad(`"${file.path}" is listed twice`);
    seen.add(file.path);
    files.push(file);
  }
  const conflict = pathConflict(seen);
  if (conflict) throw bad(conflictError(conflict, 'the file list').message);
  if (contentDigestOf(commit, files) !== identity.contentDigest)
    throw bad('contentDigest does not match the files');
  const named = displayName(type, repo);
  const wanted = displayName(ref.type, ref.repo);
  if (identity.name !== named || named !== wanted) throw bad(`it names ${identity.name}, not ${wanted}`);
  if (revision !== ref.revision) throw bad(`it is for revision ${revision}, not ${ref.revision}`);
  if (isCommitId(ref.revision) && commit !== ref.revision)
    throw bad(`it pins commit ${commit}, not the line's ${ref.revision}`);
  if (!sameList(include, ref.include) || !sameList(exclude, ref.exclude))
    throw bad("its include= / exclude= filters are not the line's");
  if (d.tree === undefined) return { type, repo, revision, commit, include, exclude, files };
  let tree: TreeEntry[];
  try {
    tree = checkedTree(d.tree);
  } catch (error) {
    throw bad((error as Error).message);
  }
  const mismatch = treeMismatch(tree, files, include, exclude);
  if (mismatch) throw bad(mismatch);
  return { type, repo, revision, commit, include, exclude, files, tree };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function stringList(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === 'string') ? [...value] : undefined;
}
