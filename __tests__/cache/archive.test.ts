import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ArchiveReader } from '../../src/cache/archive.js';
import { MAX_META, type TarMember } from '../../src/cache/tar-reader.js';
import { buildTar, zstd } from '../helpers/cache-archive.js';
import { tempDir } from '../helpers/http.js';

const MiB = 1024 * 1024;

/** Reads an archive in uneven pieces; returns every member and the bytes taken from each. */
async function read(
  archive: Buffer,
  options: { take?: (m: TarMember) => boolean; maxBytes?: number; piece?: number } = {},
) {
  const seen: { member: TarMember; bytes?: Buffer }[] = [];
  const reader = new ArchiveReader(
    async (member) => {
      const entry: { member: TarMember; bytes?: Buffer } = { member };
      seen.push(entry);
      if (options.take && !options.take(member)) return undefined;
      const parts: Buffer[] = [];
      return {
        write: async (chunk) => void parts.push(Buffer.from(chunk)),
        end: async () => {
          entry.bytes = Buffer.concat(parts);
        },
      };
    },
    () => options.maxBytes ?? 1024 * MiB,
  );
  const piece = options.piece ?? 7777;
  for (let at = 0; at < archive.length; at += piece) await reader.write(archive.subarray(at, at + piece));
  await reader.end();
  return seen;
}

describe('ArchiveReader: the archives @actions/cache writes', () => {
  let dir: { path: string; remove(): Promise<void> };
  beforeAll(async () => {
    dir = await tempDir('model-pull-archive-');
  });
  afterAll(() => dir.remove());

  /** GNU tar --posix, as the library runs it, over files with a long nested name. */
  async function gnuTar(compress: string[]): Promise<{ archive: Buffer; files: Map<string, Buffer> }> {
    const root = join(dir.path, `src-${Math.random().toString(36).slice(2)}`);
    const long = `${'deep/'.repeat(30)}weights.bin`;
    const files = new Map([
      ['small.json', Buffer.from('{"a":1}')],
      [long, randomBytes(3 * MiB + 17)],
      ['empty', Buffer.alloc(0)],
    ]);
    for (const [name, bytes] of files) {
      await mkdir(join(root, name, '..'), { recursive: true });
      await writeFile(join(root, name), bytes);
    }
    const out = join(dir.path, `a-${Math.random().toString(36).slice(2)}`);
    execFileSync('tar', ['--posix', '-cf', `${out}.tar`, '-C', root, ...files.keys()]);
    execFileSync(compress[0]!, [...compress.slice(1), `${out}.tar`, '-o', `${out}.z`]);
    return { archive: await readFile(`${out}.z`), files };
  }

  test.each([
    ['zstd (as saved: zstdmt, no --long)', ['zstd', '-q', '-T0']],
    ['zstd --long=30 (older clients)', ['zstd', '-q', '-T0', '--long=30']],
  ])('%s: every member and its bytes, long pax names included', async (_name, command) => {
    const { archive, files } = await gnuTar(command);
    const seen = await read(archive);
    expect(seen.map((s) => [s.member.name, s.member.type, s.member.size])).toEqual(
      [...files].map(([name, bytes]) => [name, '0', bytes.length]),
    );
    for (const s of seen) expect(s.bytes?.equals(files.get(s.member.name)!)).toBe(true);
  });

  test('gzip, when the saving runner had no zstd', async () => {
    const data = randomBytes(100_000);
    const seen = await read(gzipSync(buildTar([{ name: 'x/y.bin', data }])), { piece: 1000 });
    expect(seen[0]?.bytes?.equals(data)).toBe(true);
  });

  test('skipped members are passed over unread; the next member is still found', async () => {
    const a = randomBytes(5000);
    const b = randomBytes(700);
    const seen = await read(
      zstd(
        buildTar([
          { name: 'a', data: a },
          { name: 'b', data: b },
        ]),
      ),
      {
        take: (m) => m.name === 'b',
      },
    );
    expect(seen.map((s) => [s.member.name, s.bytes?.length])).toEqual([
      ['a', undefined],
      ['b', 700],
    ]);
  });

  test('links, folders and devices are reported with their type; their names are never used here', async () => {
    const seen = await read(
      zstd(
        buildTar([
          { name: '../../etc/x', type: '2', linkname: '/etc/passwd' },
          { name: 'hard', type: '1', linkname: '../../outside' },
          { name: 'dev', type: '3' },
          { name: 'dir/', type: '5' },
        ]),
      ),
    );
    expect(seen.map((s) => [s.member.name, s.member.type])).toEqual([
      ['../../etc/x', '2'],
      ['hard', '1'],
      ['dev', '3'],
      ['dir/', '5'],
    ]);
  });

  test('a pax header larger than the bound is skipped unbuffered and marks the member after it', async () => {
    const huge = 'x'.repeat(MAX_META * 4);
    const seen = await read(
      zstd(buildTar([{ name: 'a', data: Buffer.from('1'), pax: { comment: huge } }, { name: 'b' }])),
    );
    expect(seen.map((s) => [s.member.name, s.member.problem])).toEqual([
      ['a', `an extended header larger than ${MAX_META} bytes`],
      ['b', undefined],
    ]);
  });

  test.each([
    ['not zstd or gzip', () => randomBytes(5000), /^not a zstd or gzip archive \(it starts with 0x/],
    [
      'truncated inside a member',
      () => zstd(buildTar([{ name: 'a', data: randomBytes(50_000) }]).subarray(0, 20_000)),
      /^the archive is truncated \(it ends at byte 20000 inside a member, 30512 bytes short\)$/,
    ],
    [
      'a damaged header',
      () => {
        const tar = buildTar([{ name: 'a', data: Buffer.from('x') }]);
        tar[10] = 0x41;
        return zstd(tar);
      },
      /^not a tar archive, or a damaged one \(bad header checksum at byte 0\)$/,
    ],
  ])('%s: a clear error', async (_name, make, message) => {
    await expect(read(make())).rejects.toThrow(message);
  });

  test.each([
    ['zstd', zstd],
    ['gzip', gzipSync],
  ])(
    "%s: a chunk is the caller's again once write resolves; output buffers are freed once read",
    async (_name, compress) => {
      // Weights hardly compress: zstd frames of raw blocks, as a restore reads them.
      const data = randomBytes(5 * MiB + 4321);
      const archive = compress(buildTar([{ name: 'w.bin', data }]));
      const hash = createHash('sha256');
      const given: Buffer[] = [];
      const reader = new ArchiveReader(
        async () => ({
          write: async (chunk) => {
            // The chunk is the sink's until this resolves: it must not be freed before.
            await new Promise((resolve) => setImmediate(resolve));
            hash.update(chunk);
            given.push(chunk);
          },
          end: async () => undefined,
        }),
        () => 64 * MiB,
      );
      // One buffer for every piece, filled again as soon as write resolves (as the stream window
      // does): any byte the decompressor read late would be garbage.
      const piece = Buffer.allocUnsafe(MiB);
      for (let at = 0; at < archive.length; at += MiB) {
        const n = archive.copy(piece, 0, at, at + MiB);
        await reader.write(piece.subarray(0, n));
        piece.fill(0xa5);
      }
      await reader.end();
      expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
      // Each full output buffer was freed after its last slice was written out (a view of a
      // freed buffer reads as empty); the one the stream ended in is left to the collector.
      const freed = given.filter((chunk) => chunk.buffer.byteLength === 0).length;
      expect(freed).toBeGreaterThanOrEqual(4);
      expect(given.at(-1)?.length).toBeGreaterThan(0);
    },
  );

  test('an archive that expands beyond the cap stops there (a small archive of zeros)', async () => {
    const archive = zstd(buildTar([{ name: 'zeros', data: Buffer.alloc(64 * MiB) }]));
    expect(archive.length).toBeLessThan(MiB);
    await expect(read(archive, { maxBytes: 8 * MiB })).rejects.toThrow(
      `the archive expands to more than ${8 * MiB} bytes`,
    );
  });
});
