import { readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { isSha1Hex, isSha256Hex } from '../digest.js';
import { hashFile } from '../download/engine.js';
import { describeError } from '../errors.js';
import { parseManifest } from '../sources/ollama/manifest.js';

/** One file that is not what its manifest or snapshot says. */
export interface Damage {
  /** The model: an Ollama name or an HF repo folder with its commit. */
  readonly model: string;
  readonly path: string;
  readonly problem: string;
}

export interface VerifyReport {
  readonly checkedFiles: number;
  readonly checkedBytes: number;
  readonly damaged: readonly Damage[];
}

/**
 * Re-hashes an Ollama store against its manifests: every manifest under `manifests/` must parse
 * and every blob it names (config included) must exist with its size and sha256.
 */
export async function verifyOllamaStore(root: string): Promise<VerifyReport> {
  const damaged: Damage[] = [];
  let checkedFiles = 0;
  let checkedBytes = 0;
  const hashed = new Map<string, string | undefined>();
  for (const file of await walk(join(root, 'manifests'))) {
    const model = relative(join(root, 'manifests'), file);
    let manifest: ReturnType<typeof parseManifest>;
    try {
      manifest = parseManifest(await readFile(file), model);
    } catch (error) {
      damaged.push({ model, path: file, problem: describeError(error) });
      continue;
    }
    for (const blob of [manifest.config, ...manifest.layers]) {
      const hex = blob.hex;
      const path = join(root, 'blobs', `sha256-${hex}`);
      if (!hashed.has(path)) {
        hashed.set(path, await checkFile(path, blob.size, (p, size) => hashFile(p, 'sha256', size), hex));
        checkedFiles++;
        checkedBytes += blob.size;
      }
      const problem = hashed.get(path);
      if (problem) damaged.push({ model, path, problem });
    }
  }
  return { checkedFiles, checkedBytes, damaged };
}

/**
 * Re-hashes a Hugging Face cache: every file under `snapshots/<commit>/` is checked against the
 * blob name it links to (the ETag: sha256 for LFS files, git blob sha1 for the others). A
 * dangling link is damage; a real file (no symlinks on that filesystem) is checked when a
 * blob of the same size and content name exists beside it.
 */
export async function verifyHfCache(root: string): Promise<VerifyReport> {
  const damaged: Damage[] = [];
  let checkedFiles = 0;
  let checkedBytes = 0;
  for (const repo of await dirs(root)) {
    if (!/^(models|datasets|spaces)--/.test(repo)) continue;
    for (const commit of await dirs(join(root, repo, 'snapshots'))) {
      const model = `${repo}@${commit}`;
      for (const file of await walk(join(root, repo, 'snapshots', commit))) {
        const etag = await etagOf(file);
        if (!etag) continue;
        let size = 0;
        try {
          size = (await stat(file)).size;
        } catch {
          damaged.push({ model, path: file, problem: `missing blob ${etag}` });
          continue;
        }
        const algorithm = isSha256Hex(etag) ? 'sha256' : 'git-sha1';
        const problem = await checkFile(file, size, (p, s) => hashFile(p, algorithm, s), etag);
        checkedFiles++;
        checkedBytes += size;
        if (problem) damaged.push({ model, path: file, problem });
      }
    }
  }
  return { checkedFiles, checkedBytes, damaged };
}

/** The ETag a snapshot entry points at (its link target's name), if it is a content name. */
async function etagOf(file: string): Promise<string | undefined> {
  let target: string;
  try {
    target = basename(await readlink(file));
  } catch {
    try {
      target = basename(await realpath(file));
    } catch {
      return undefined;
    }
  }
  return isSha256Hex(target) || isSha1Hex(target) ? target : undefined;
}

async function checkFile(
  path: string,
  size: number,
  hash: (path: string, size: number) => Promise<string>,
  expected: string,
): Promise<string | undefined> {
  let actual: number;
  try {
    actual = (await stat(path)).size;
  } catch {
    return 'missing';
  }
  if (actual !== size) return `size ${actual}, expected ${size}`;
  const hex = await hash(path, size);
  return hex === expected ? undefined : `digest ${hex}, expected ${expected}`;
}

async function dirs(path: string): Promise<string[]> {
  try {
    return (await readdir(path, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}

/** Every file or symlink below `path`, sorted. */
async function walk(path: string): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const full = join(path, e.name);
    if (e.isDirectory()) out.push(...(await walk(full)));
    else if (e.isFile() || e.isSymbolicLink()) out.push(full);
  }
  return out;
}
