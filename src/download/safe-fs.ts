import type { Stats } from 'node:fs';
import { constants, type FileHandle, open, rm } from 'node:fs/promises';

/**
 * File access for folders other processes share (staging areas, lease files): nothing here
 * follows a symbolic link planted at the path, and nothing reads more than it expects.
 */

const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_WRONLY } = constants;

/** What a bounded read found: the bytes, nothing at the path, or something it refuses to read. */
export type BoundedRead =
  | { readonly kind: 'read'; readonly bytes: Buffer }
  | { readonly kind: 'missing' }
  /** `reason` reads after "cannot read X: " (`not a regular file (a FIFO)`, `too large (…)`). */
  | { readonly kind: 'refused'; readonly reason: string };

/**
 * Reads at most `limit` bytes of a regular file, never through a link and without blocking on
 * a FIFO (O_NONBLOCK), saying why when it does not: for files whose absence means something
 * other than damage (a lock file) or whose refusal is worth naming (verify).
 */
export async function readBounded(path: string, limit: number): Promise<BoundedRead> {
  let file: FileHandle;
  try {
    file = await open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'refused', reason: openProblem(code, error) };
  }
  try {
    const info = await file.stat();
    if (!info.isFile()) return { kind: 'refused', reason: `not a regular file (${kindOf(info)})` };
    if (info.size > limit) return { kind: 'refused', reason: tooLarge(info.size, limit) };
    const buffer = Buffer.alloc(info.size + 1);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    // One byte more than the stat said: it grew past the limit since (a file still being written).
    if (bytesRead > limit) return { kind: 'refused', reason: tooLarge(bytesRead, limit, 'at least ') };
    return { kind: 'read', bytes: buffer.subarray(0, bytesRead) };
  } catch (error) {
    return { kind: 'refused', reason: (error as Error).message };
  } finally {
    await file.close();
  }
}

/** Reads at most `limit` bytes of a regular file, never through a link; undefined if absent or odd. */
export async function readSmall(path: string, limit: number): Promise<Buffer | undefined> {
  const result = await readBounded(path, limit);
  return result.kind === 'read' ? result.bytes : undefined;
}

function tooLarge(size: number, limit: number, qualifier = ''): string {
  return `too large (${qualifier}${size} bytes, limit ${limit})`;
}

function openProblem(code: string | undefined, error: unknown): string {
  switch (code) {
    case 'ELOOP':
      return 'not a regular file (a symbolic link)';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOTDIR':
      return 'a file is in the way where a folder must be';
    default:
      return (error as Error).message;
  }
}

function kindOf(info: Stats): string {
  if (info.isDirectory()) return 'a folder';
  if (info.isFIFO()) return 'a FIFO';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isSocket()) return 'a socket';
  return 'an unknown kind';
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
