import { constants, type FileHandle, open, rm } from 'node:fs/promises';

/**
 * File access for folders other processes share (staging areas, lease files): nothing here
 * follows a symbolic link planted at the path, and nothing reads more than it expects.
 */

const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_WRONLY } = constants;

/** Reads at most `limit` bytes of a regular file, never through a link; undefined if absent or odd. */
export async function readSmall(path: string, limit: number): Promise<Buffer | undefined> {
  let file: FileHandle;
  try {
    file = await open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const info = await file.stat();
    if (!info.isFile() || info.size > limit) return undefined;
    const buffer = Buffer.alloc(Math.min(limit, info.size) + 1);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    return bytesRead > limit ? undefined : buffer.subarray(0, bytesRead);
  } catch {
    return undefined;
  } finally {
    await file.close();
  }
}

/**
 * Creates `path` afresh for writing: whatever was there (a file, a planted link) is removed and
 * the new file is created exclusively, so a link that appears in between makes this fail
 * (EEXIST) instead of writing through it.
 */
export async function createExclusive(path: string, mode = 0o644, read = false): Promise<FileHandle> {
  await rm(path, { force: true });
  return open(path, (read ? O_RDWR : O_WRONLY) | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
}

/**
 * Opens an existing file for reading and writing only if it is a regular file with a single
 * name (no link to elsewhere, no hard link shared with a file outside the store).
 */
export async function openOwnFile(path: string): Promise<FileHandle | undefined> {
  let file: FileHandle;
  try {
    file = await open(path, O_RDWR | O_NOFOLLOW);
  } catch {
    return undefined;
  }
  const info = await file.stat().catch(() => undefined);
  if (info?.isFile() && info.nlink === 1) return file;
  await file.close();
  return undefined;
}
