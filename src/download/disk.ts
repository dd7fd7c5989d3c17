import { stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ModelPullError } from '../errors.js';

const MiB = 1024 * 1024;

/** Free bytes for an unprivileged writer on the filesystem holding `dir` (or its nearest parent). */
export async function freeBytes(dir: string): Promise<{ free: number; at: string; device: number }> {
  let at = dir;
  for (;;) {
    try {
      const [s, st] = await Promise.all([statfs(at), stat(at)]);
      return { free: Number(s.bavail) * Number(s.bsize), at, device: st.dev };
    } catch (error) {
      const parent = dirname(at);
      if (parent === at) throw error;
      at = parent;
    }
  }
}

/**
 * The filesystems where `needs` (a folder → the bytes still to land under it) does not fit:
 * folders on the same filesystem are summed.
 */
export async function shortfalls(
  needs: ReadonlyMap<string, number>,
): Promise<{ need: number; free: number; at: string }[]> {
  const byFs = new Map<number, { need: number; free: number; at: string }>();
  for (const [dir, need] of needs) {
    if (need <= 0) continue;
    const { free, at, device } = await freeBytes(dir);
    const entry = byFs.get(device) ?? { need: 0, free, at };
    entry.need += need;
    byFs.set(device, entry);
  }
  return [...byFs.values()].filter((e) => e.need > e.free);
}

/**
 * Fails before the first byte when the missing bytes cannot fit (Ollama has no such check and
 * fills the disk, ollama#1731). `needs` maps a folder to the bytes still to land under it.
 */
export async function checkDiskSpace(needs: ReadonlyMap<string, number>): Promise<void> {
  const [short] = await shortfalls(needs);
  if (short) {
    throw new ModelPullError(
      'ERR_DISK_SPACE',
      `not enough disk space under ${short.at}: ${(short.need / MiB).toFixed(1)} MiB to download, ${(short.free / MiB).toFixed(1)} MiB free`,
    );
  }
}
