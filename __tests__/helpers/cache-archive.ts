import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';

/**
 * Reads and edits the archives @actions/cache uploads: a POSIX (pax) tar, compressed with zstd
 * (or gzip when no zstd binary exists; the machines we test on have zstd). Member names are the
 * saved paths relative to GITHUB_WORKSPACE, `../` included.
 */
export interface TarMember {
  readonly name: string;
  /** '0' regular file, '2' symlink, '5' folder, … */
  readonly type: string;
  readonly size: number;
  /** Offset of the content in the uncompressed tar. */
  readonly offset: number;
}

const BLOCK = 512;

export function listMembers(tar: Buffer): TarMember[] {
  const members: TarMember[] = [];
  let pax: Record<string, string> = {};
  let at = 0;
  while (at + BLOCK <= tar.length && !isZeroBlock(tar, at)) {
    const header = tar.subarray(at, at + BLOCK);
    const type = header.toString('latin1', 156, 157) || '0';
    const size = Number(pax['size'] ?? Number.parseInt(field(header, 124, 12) || '0', 8));
    const offset = at + BLOCK;
    if (type === 'x') {
      pax = parsePax(tar.subarray(offset, offset + size));
    } else if (type !== 'g') {
      const prefix = field(header, 345, 155);
      const short = field(header, 0, 100);
      const name = pax['path'] ?? (prefix ? `${prefix}/${short}` : short);
      members.push({ name, type: type === '\0' ? '0' : type, size, offset });
      pax = {};
    }
    at = offset + Math.ceil(size / BLOCK) * BLOCK;
  }
  return members;
}

/** The uncompressed tar of a `cache.tzst` archive. */
export function untar(archive: Buffer): Buffer {
  return zstdDecompressSync(archive);
}

/**
 * Flips every byte of the content of the regular files whose name `pick` accepts, keeping their
 * size: only a content hash can tell the restored file from the saved one. Returns the archive
 * recompressed and the names it changed.
 */
export function tamperArchive(
  archive: Buffer,
  pick: (name: string) => boolean,
): { archive: Buffer; changed: string[] } {
  const tar = Buffer.from(untar(archive));
  const changed: string[] = [];
  for (const member of listMembers(tar)) {
    if (member.type !== '0' || member.size === 0 || !pick(member.name)) continue;
    for (let i = member.offset; i < member.offset + member.size; i++) tar[i] = (tar[i] ?? 0) ^ 0xff;
    changed.push(member.name);
  }
  return { archive: zstdCompressSync(tar), changed };
}

function field(header: Buffer, start: number, length: number): string {
  const raw = header.toString('utf8', start, start + length);
  const end = raw.indexOf('\0');
  return (end < 0 ? raw : raw.slice(0, end)).trim();
}

/** Pax records: `<length> <key>=<value>\n`, the length counting the whole record. */
function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0) break;
    const length = Number(data.toString('latin1', at, space));
    if (!Number.isInteger(length) || length <= 0) break;
    const record = data.toString('utf8', space + 1, at + length - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    at += length;
  }
  return out;
}

function isZeroBlock(tar: Buffer, at: number): boolean {
  for (let i = at; i < at + BLOCK; i++) if (tar[i] !== 0) return false;
  return true;
}
