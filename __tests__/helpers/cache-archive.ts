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

/** A member to write with `buildTar`: any name, any type flag, any bytes, any declared size. */
export interface CraftedMember {
  readonly name: string;
  /** '0' file (default), '1' hard link, '2' symlink, '3' char device, '5' folder, … */
  readonly type?: string;
  readonly data?: Buffer;
  /** The size the header declares (default: the data's length). */
  readonly size?: number;
  readonly linkname?: string;
  /** Extra pax records for this member (a `path` record is added for names over 100 bytes). */
  readonly pax?: Readonly<Record<string, string>>;
}

/**
 * Writes a tar the way GNU tar `--posix` does (ustar headers, a pax header for long names),
 * ending with two zero blocks, so tests can hand the reader exactly what an attacker would.
 */
export function buildTar(members: readonly CraftedMember[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const data = m.data ?? Buffer.alloc(0);
    const pax: Record<string, string> = { ...(m.pax ?? {}) };
    if (Buffer.byteLength(m.name) > 100) pax['path'] = m.name;
    if (Object.keys(pax).length > 0) {
      const body = Buffer.from(
        Object.entries(pax)
          .map(([k, v]) => paxRecord(k, v))
          .join(''),
        'utf8',
      );
      parts.push(header('PaxHeaders/x', 'x', body.length, ''), pad(body));
    }
    parts.push(
      header(m.name.slice(0, 100), m.type ?? '0', m.size ?? data.length, m.linkname ?? ''),
      pad(data),
    );
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  while (String(length).length + Buffer.byteLength(body) !== length) length++;
  return `${length}${body}`;
}

function header(name: string, type: string, size: number, linkname: string): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  h.write('00000000000\0', 136, 'latin1');
  h.write(type, 156, 'latin1');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

function pad(data: Buffer): Buffer {
  const rest = (BLOCK - (data.length % BLOCK)) % BLOCK;
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(rest)]);
}

/** The regular members of a saved archive with their bytes, to rebuild it with additions. */
export function membersOf(archive: Buffer): CraftedMember[] {
  const tar = untar(archive);
  return listMembers(tar)
    .filter((m) => m.type === '0')
    .map((m) => ({ name: m.name, data: Buffer.from(tar.subarray(m.offset, m.offset + m.size)) }));
}

export function zstd(tar: Buffer): Buffer {
  return zstdCompressSync(tar);
}
