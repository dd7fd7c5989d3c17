import { closeSync, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { constants, type FileHandle, open, rm } from 'node:fs/promises';

/**
 * File access for folders other processes share (staging areas, lease files): nothing here
 * follows a symbolic link planted at the path, and nothing reads more than it expects. Files the
 * user names (a models list, a CA bundle) are read bounded too, links followed (`named`).
 */

const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_WRONLY } = constants;

/** What a bounded read found: the bytes, nothing at the path, or something it refuses to read. */
export type BoundedRead =
  | { readonly kind: 'read'; readonly bytes: Buffer }
  | { readonly kind: 'missing' }
  /** `reason` reads after "cannot read X: " (`not a regular file (a FIFO)`, `too large (…)`). */
  | { readonly kind: 'refused'; readonly reason: string };

export interface BoundedReadOptions {
  /**
   * A path the user named (`-f FILE`): links are followed, and a pipe or terminal
   * (`-f /dev/stdin`, `-f <(…)`) is read to its end like a file, as long as that end comes
   * within the limit. Never for paths in a folder other processes share.
   */
  readonly named?: boolean;
  /** A file larger than the limit yields its last `limit` bytes instead of a refusal (a log). */
  readonly tail?: boolean;
}

/**
 * Reads at most `limit` bytes of a regular file, never through a link and without blocking on
 * a FIFO (O_NONBLOCK), saying why when it does not: for files whose absence means something
 * other than damage (a lock file) or whose refusal is worth naming (verify). `options` widen
 * it for a path the user named or a log's tail.
 */
export async function readBounded(
  path: string,
  limit: number,
  options: BoundedReadOptions = {},
): Promise<BoundedRead> {
  let file: FileHandle;
  try {
    file = await open(path, options.named ? O_RDONLY : O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    return notOpened(error);
  }
  try {
    const info = await file.stat();
    if (options.named && (info.isFIFO() || info.isCharacterDevice())) return await readStream(file, limit);
    const refusal = refusalOf(info, limit, options.tail);
    if (refusal) return { kind: 'refused', reason: refusal };
    const from = Math.max(0, info.size - limit);
    const buffer = Buffer.alloc(info.size - from + 1);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, from);
    return grown(buffer, bytesRead, limit, options.tail);
  } catch (error) {
    return { kind: 'refused', reason: (error as Error).message };
  } finally {
    await file.close();
  }
}

/**
 * readBounded for a file the user named that must be read synchronously (settings: the
 * `ca-cert` bundle): links are followed, and only a regular file of at most `limit` bytes is read.
 */
export function readBoundedSync(path: string, limit: number): BoundedRead {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_NONBLOCK);
  } catch (error) {
    return notOpened(error);
  }
  try {
    const info = fstatSync(fd);
    const refusal = refusalOf(info, limit);
    if (refusal) return { kind: 'refused', reason: refusal };
    const buffer = Buffer.alloc(info.size + 1);
    return grown(buffer, readSync(fd, buffer, 0, buffer.length, 0), limit);
  } catch (error) {
    return { kind: 'refused', reason: (error as Error).message };
  } finally {
    closeSync(fd);
  }
}

/** What a failed open means: nothing at the path, or why it cannot be read. */
function notOpened(error: unknown): BoundedRead {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return { kind: 'missing' };
  return { kind: 'refused', reason: openProblem(code, error) };
}

/** Why a file that `stat` describes is not read, if it is not. */
function refusalOf(info: Stats, limit: number, tail = false): string | undefined {
  if (!info.isFile()) return `not a regular file (${kindOf(info)})`;
  if (info.size > limit && !tail) return tooLarge(info.size, limit);
  return undefined;
}

/**
 * The bytes read into a buffer one byte larger than the stat said: that byte filled means the
 * file grew since (still being written), past the limit, or past the tail asked for.
 */
function grown(buffer: Buffer, bytesRead: number, limit: number, tail = false): BoundedRead {
  if (bytesRead > limit && !tail) return { kind: 'refused', reason: tooLarge(bytesRead, limit, 'at least ') };
  return { kind: 'read', bytes: buffer.subarray(Math.max(0, bytesRead - limit), bytesRead) };
}

/** A pipe or device read to its end, refused as soon as more than `limit` bytes came. */
async function readStream(file: FileHandle, limit: number): Promise<BoundedRead> {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const chunk = Buffer.alloc(Math.min(64 * 1024, limit + 1 - total));
    const { bytesRead } = await file.read(chunk, 0, chunk.length, null);
    if (bytesRead === 0) return { kind: 'read', bytes: Buffer.concat(chunks, total) };
    chunks.push(chunk.subarray(0, bytesRead));
    total += bytesRead;
    if (total > limit) return { kind: 'refused', reason: tooLarge(total, limit, 'at least ') };
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
