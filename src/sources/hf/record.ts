import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Digest, formatDigest, isSha1Hex, parseDigest, sha256Hex } from '../../digest.js';
import { readSmall } from '../../download/safe-fs.js';
import { blobPath, type HfRepoPaths, repoPathProblem } from '../../layouts/hf.js';
import type { HubFile } from './api.js';
import type { HfRepoType } from './ref.js';

/** A record lists the selected files; past this it is not ours (absent). */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;

/** A ref holds a 40-hex commit (huggingface_hub writes no newline); past this it is not one. */
export const MAX_REF_BYTES = 1024;

/**
 * The record of a complete pull: the filtered listing at a commit, written last by commit().
 * A commit's tree never changes, so with this record and the blobs on disk a pinned line needs
 * no request at all (docs/registries.md, "Hugging Face Hub": shared runner IPs hit the Hub's rate limits).
 */
export interface RecordKey {
  readonly type: HfRepoType;
  readonly repo: string;
  readonly commit: string;
  readonly include: readonly string[];
  readonly exclude: readonly string[];
}

const FORMAT = 'model-pull/hf-snapshot@1';

/** Filters decide the listing, so they are part of the record's name (order and repeats do not matter). */
export function recordPath(paths: HfRepoPaths, key: RecordKey): string {
  const filters = JSON.stringify([canonical(key.include), canonical(key.exclude)]);
  return join(paths.private, `${key.commit}.${sha256Hex(filters).slice(0, 16)}.json`);
}

export function recordContent(key: RecordKey, files: readonly HubFile[]): string {
  return `${JSON.stringify(
    {
      format: FORMAT,
      type: key.type,
      repo: key.repo,
      commit: key.commit,
      include: canonical(key.include),
      exclude: canonical(key.exclude),
      files: files.map((f) => ({ path: f.path, digest: formatDigest(f.digest), size: f.size })),
    },
    null,
    1,
  )}\n`;
}

/** The listing of a matching record, or undefined when absent, foreign or malformed in any way. */
export async function readRecord(path: string, key: RecordKey): Promise<HubFile[] | undefined> {
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(String(await readSmall(path, MAX_RECORD_BYTES))) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const same =
    data.format === FORMAT &&
    data.type === key.type &&
    data.repo === key.repo &&
    data.commit === key.commit &&
    JSON.stringify(data.include) === JSON.stringify(canonical(key.include)) &&
    JSON.stringify(data.exclude) === JSON.stringify(canonical(key.exclude));
  if (!same || !Array.isArray(data.files)) return undefined;
  try {
    return data.files.map(checkedFile);
  } catch {
    return undefined;
  }
}

/** Validates a `{path, digest, size}` from a record or a lock file before it names a path. */
export function checkedFile(raw: unknown): HubFile {
  const f = raw as { path?: unknown; digest?: unknown; size?: unknown } | null;
  const problem = repoPathProblem(f?.path);
  if (problem) throw new Error(problem);
  if (typeof f!.size !== 'number' || !Number.isSafeInteger(f!.size) || f!.size < 0)
    throw new Error('an invalid size');
  let digest: Digest;
  try {
    digest = parseDigest(typeof f!.digest === 'string' ? f!.digest : '');
  } catch {
    throw new Error('an invalid digest');
  }
  return { path: f!.path as string, digest, size: f!.size };
}

/** The commit `refs/<revision>` names, when it holds exactly 40 hex (as huggingface_hub writes it). */
export async function readRef(paths: HfRepoPaths, revision: string): Promise<string | undefined> {
  const text = String(await readSmall(join(paths.refs, ...revision.split('/')), MAX_REF_BYTES)).trim();
  return isSha1Hex(text) ? text : undefined;
}

/** Every file's blob is present with its size (the engine hashes them before use). */
export async function blobsPresent(paths: HfRepoPaths, files: readonly HubFile[]): Promise<boolean> {
  for (const file of files) {
    const size = await stat(blobPath(paths, file.digest.hex)).then(
      (s) => (s.isFile() ? s.size : -1),
      () => -1,
    );
    if (size !== file.size) return false;
  }
  return true;
}

function canonical(patterns: readonly string[]): string[] {
  return [...new Set(patterns)].sort();
}
