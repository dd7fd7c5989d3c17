import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ensureDirs } from './fs-dirs.js';

export interface AtomicWriteOptions {
  /** Permission bits of the file, whatever the umask. */
  readonly mode?: number;
  /**
   * Where the temporary file goes (same filesystem as `path`): by default beside it; elsewhere
   * when readers scan the target's folder (a half-written name in `manifests/` would be listed).
   */
  readonly tempDir?: string;
}

/**
 * Writes a small file so that a reader sees the old content or the whole new one, never a part:
 * the bytes go to a fresh temporary name, then one rename replaces the target. The temporary
 * file is created exclusively under a random name, so a file or link planted there by another
 * process is never written through, and two writers never share one; it is removed on failure.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const folder = options.tempDir ?? dirname(path);
  const temp = tempName(path, folder);
  const mode = options.mode === undefined ? {} : { mode: options.mode };
  // Folders are made only when missing, so frequent writers (progress records) pay no extra call.
  const whenMissing = (folders: readonly string[], step: () => Promise<void>) => async (error: unknown) => {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    for (const f of folders) await ensureDirs(f);
    await step();
  };
  const write = () => writeFile(temp, data, { flag: 'wx', ...mode });
  const move = () => rename(temp, path);
  try {
    await write().catch(whenMissing([folder], write));
    if (options.mode !== undefined) await chmod(temp, options.mode);
    await move().catch(whenMissing([dirname(path)], move));
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * `writeFileAtomic` on the calling thread, for a small file in a folder that exists: nothing else
 * runs between the caller's decision and the rename (a download's progress record must describe
 * the bytes on disk when it lands, not what landed while a write waited for the thread pool).
 */
export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  const temp = tempName(path, dirname(path));
  try {
    writeFileSync(temp, data, { flag: 'wx' });
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

/** A fresh temporary name for a writer of `path` in `folder` (see removeStaleTemps). */
const tempName = (path: string, folder: string) =>
  join(folder, `${tempPrefix(path)}${randomBytes(6).toString('hex')}.tmp`);

/** `.record.json.` for `…/record.json`: the temporary names of a path start with it. */
const tempPrefix = (path: string) => `.${basename(path)}.`;

/**
 * Removes the temporary files that writers of `path` killed mid-write left behind (a random name
 * each, so nothing else would ever reuse them). Only while no other writer of `path` can run:
 * the staging area calls it under the entry's lease.
 */
export async function removeStaleTemps(path: string, tempDir = dirname(path)): Promise<void> {
  const prefix = tempPrefix(path);
  const names = await readdir(tempDir).catch(() => [] as string[]);
  const stale = names.filter(
    (n) => n.startsWith(prefix) && /^[0-9a-f]{12}\.tmp$/.test(n.slice(prefix.length)),
  );
  await Promise.all(stale.map((n) => rm(join(tempDir, n), { force: true })));
}
