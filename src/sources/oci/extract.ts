import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { constants, type FileHandle, mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createZstdDecompress, constants as zlib } from 'node:zlib';
import { type MemberSink, type TarMember, TarReader } from '../../cache/tar-reader.js';
import { ModelPullError } from '../../errors.js';
import type { Compression } from './formats.js';
import { memberPath, type PathClaims, unsafePathReason } from './paths.js';

/** A file written from an archive layer, with the sha256 of the bytes written. */
export interface ExtractedFile {
  /** Relative to the folder, `/`-separated. */
  readonly path: string;
  readonly hex: string;
  readonly size: number;
}

export interface ExtractOptions {
  /** The verified blob of the layer. */
  readonly blob: string;
  readonly compression: Compression;
  /** The folder being built (fresh, ours alone: nothing in it was planted). */
  readonly root: string;
  /** The paths the folder's other entries hold. */
  readonly claims: PathClaims;
  /** `layer 3 (sha256:abcd…)`, for messages. */
  readonly owner: string;
  /** Most bytes the decompressed archive may grow to (a small layer that expands without end). */
  readonly maxBytes: number;
}

/** Far beyond any model's file count; bounds the inodes one hostile layer can use. */
const MAX_MEMBERS = 100_000;
const MiB = 1024 * 1024;
const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;

/**
 * Extracts a tar layer into the folder with the rules of a cache restore: only regular files and
 * folders, each at a path that stays inside the folder and is claimed by nothing else; links,
 * devices, `..`, absolute paths and anything the tar reader itself refuses fail the layer (a
 * model with a silently missing file is worse than one that fails). Files are created
 * exclusively without following links, hashed as they are written, mode 0644.
 */
export async function extractLayer(options: ExtractOptions): Promise<ExtractedFile[]> {
  const files: ExtractedFile[] = [];
  let writing: FileHandle | undefined;
  let members = 0;
  const refuse = (name: string, why: string) =>
    new ModelPullError(
      'ERR_BAD_MANIFEST',
      `${options.owner} holds ${JSON.stringify(name.slice(0, 200))}, which is refused: ${why}`,
    );

  const handler = async (member: TarMember): Promise<MemberSink | undefined> => {
    if (++members > MAX_MEMBERS) throw refuse(member.name, `the layer has more than ${MAX_MEMBERS} members`);
    if (member.problem) throw refuse(member.name, member.problem);
    const path = memberPath(member.name);
    if (member.type === '5') {
      if (path === '') return undefined;
      const why = unsafePathReason(path) ?? options.claims.dir(path, options.owner);
      if (why) throw refuse(member.name, why);
      await mkdir(join(options.root, path), { recursive: true, mode: 0o755 });
      return undefined;
    }
    if (member.type !== '0' && member.type !== '7') {
      throw refuse(member.name, `it is ${kindOf(member.type)}; only regular files and folders are extracted`);
    }
    const why = unsafePathReason(path) ?? options.claims.file(path, options.owner);
    if (why) throw refuse(member.name, why);
    const target = join(options.root, path);
    await mkdir(dirname(target), { recursive: true, mode: 0o755 });
    const file = await open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
    writing = file;
    const hash = createHash('sha256');
    let size = 0;
    return {
      async write(chunk) {
        hash.update(chunk);
        size += chunk.length;
        for (let at = 0; at < chunk.length; ) {
          const { bytesWritten } = await file.write(chunk, at, chunk.length - at);
          at += bytesWritten;
        }
      },
      async end() {
        writing = undefined;
        await file.close();
        files.push({ path, hex: hash.digest('hex'), size });
      },
    };
  };

  const source = createReadStream(options.blob, { highWaterMark: MiB });
  const reader = new TarReader(handler);
  try {
    if (options.compression === 'none') {
      await pipeline(source, reader);
    } else {
      await pipeline(
        source,
        decompressor(options.compression),
        capped(options.maxBytes, options.owner),
        reader,
      );
    }
  } catch (error) {
    await writing?.close().catch(() => undefined);
    if (error instanceof ModelPullError) throw error;
    throw new ModelPullError(
      'ERR_BAD_MANIFEST',
      `${options.owner} is not a readable tar archive: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return files;
}

function decompressor(compression: 'gzip' | 'zstd'): Transform {
  return compression === 'gzip'
    ? createGunzip({ chunkSize: MiB })
    : // Long-distance matching (`zstd --long`) needs a window up to zstd's 64-bit ceiling.
      createZstdDecompress({ chunkSize: MiB, params: { [zlib.ZSTD_d_windowLogMax]: 31 } });
}

function capped(maxBytes: number, owner: string): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      total += chunk.length;
      if (total > maxBytes) {
        callback(
          new ModelPullError('ERR_BAD_MANIFEST', `${owner} expands to more than ${maxBytes} bytes; refused`),
        );
        return;
      }
      callback(null, chunk);
    },
  });
}

function kindOf(type: string): string {
  switch (type) {
    case '1':
      return 'a hard link';
    case '2':
      return 'a symbolic link';
    case '3':
    case '4':
      return 'a device';
    case '6':
      return 'a named pipe';
    default:
      return `a member of type "${type}"`;
  }
}
