import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelPullError } from '../../src/errors.js';
import {
  type LockFile,
  lockEntries,
  MAX_LOCK_BYTES,
  readLock,
  stableStringify,
  writeLock,
} from '../../src/lockfile.js';
import type { Identity } from '../../src/plan.js';
import { DEFAULT_SOURCES } from '../../src/sources/index.js';
import { tempDir } from '../helpers/http.js';
import { plant } from '../helpers/planted.js';

const hex = 'a'.repeat(64);
const url: Identity = {
  source: 'url',
  ref: 'https://h/f.gguf sha256=' + hex,
  name: 'https://h/f.gguf',
  pin: `sha256:${hex}`,
  contentDigest: hex,
};
const hf: Identity = {
  source: 'hf',
  ref: 'hf:o/r@main',
  name: 'o/r',
  pin: 'c'.repeat(40),
  contentDigest: 'b'.repeat(64),
  detail: { revision: 'main', files: [{ size: 2, path: 'z.json' }] },
};

/** An entry as the file holds it: the pin is written `digest`. */
const onDisk = ({ pin, ...rest }: Identity) => ({ ...rest, digest: pin });

describe('lock file', () => {
  let dir: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.remove());

  const entries = (...identities: Identity[]) => new Map(identities.map((i) => [i.ref, i]));
  const keys = (lock: LockFile | undefined) => [...lockEntries(lock!, 'm.lock', DEFAULT_SOURCES).keys()];

  it('writes sorted, stable JSON and reads it back', async () => {
    const path = join(dir.path, 'sub', 'model-pull.lock');
    await writeLock(path, entries(url, hf));
    const text = await readFile(path, 'utf8');
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.indexOf('"hf:o/r@main"')).toBeLessThan(text.indexOf('"https://h/f.gguf'));
    expect(text.indexOf('"contentDigest"')).toBeLessThan(text.indexOf('"digest"'));
    expect(text).toBe(`${stableStringify(JSON.parse(text))}\n`);
    const lock = await readLock(path);
    expect(lockEntries(lock!, path, DEFAULT_SOURCES).get('hf:o/r@main')).toEqual(hf);
  });

  it('keys entries by the canonical line, whatever form a lock written before used', async () => {
    const path = join(dir.path, 'm.lock');
    // A lock from before canonical keys: the line as the user wrote it.
    await writeFile(
      path,
      JSON.stringify({
        version: 1,
        models: { 'hf:o/r': onDisk({ ...hf, ref: 'hf:o/r' }), [url.ref]: onDisk(url) },
      }),
    );
    const lock = await readLock(path);
    expect(keys(lock)).toEqual(['hf:o/r@main', url.ref]);
    // Written again, the key and the entry's ref are the canonical line.
    await writeLock(path, lockEntries(lock!, path, DEFAULT_SOURCES));
    const rewritten = JSON.parse(await readFile(path, 'utf8')) as LockFile;
    expect(Object.keys(rewritten.models)).toEqual(['hf:o/r@main', url.ref]);
    expect(rewritten.models['hf:o/r@main']!.ref).toBe('hf:o/r@main');
  });

  it('refuses two entries for one line, an entry of another source, a key that is no line', () => {
    const lock = (models: Record<string, Identity>): LockFile => ({ version: 1, models });
    expect(() =>
      lockEntries(lock({ 'hf:o/r': { ...hf, ref: 'hf:o/r' }, 'hf:o/r@main': hf }), 'm.lock', DEFAULT_SOURCES),
    ).toThrow('lock file m.lock has two entries for one model line: "hf:o/r" and "hf:o/r@main" (keep one)');
    expect(() =>
      lockEntries(lock({ 'hf:o/r': { ...url, ref: 'hf:o/r' } }), 'm.lock', DEFAULT_SOURCES),
    ).toThrow('lock file m.lock has a url entry for the hf line "hf:o/r"');
    expect(() => lockEntries(lock({ 'hf:o': { ...hf, ref: 'hf:o' } }), 'm.lock', DEFAULT_SOURCES)).toThrow(
      'lock file m.lock: invalid model line "hf:o": "o" is not owner/repo',
    );
  });

  it('is undefined when absent and refuses a broken file', async () => {
    const path = join(dir.path, 'm.lock');
    expect(await readLock(path)).toBeUndefined();
    await writeFile(path, '{"version":1,"models":{"x":{"ref":"y"}}}');
    await expect(readLock(path)).rejects.toThrow(`lock file ${path}: the entry for "x" is malformed`);
    await writeFile(path, 'not json');
    await expect(readLock(path)).rejects.toThrow(`lock file ${path} is not valid JSON`);
  });

  // The lock comes with the repository: a planted FIFO must not block the run, a link must not
  // be followed (to /dev/zero: an endless read), nor an oversize file read whole.
  it.each([
    ['fifo', 'not a regular file (a FIFO)'],
    ['link', 'not a regular file (a symbolic link)'],
    ['huge', `too large (${MAX_LOCK_BYTES + 1} bytes, limit ${MAX_LOCK_BYTES})`],
  ] as const)('refuses a planted %s in one line, unlike a missing file', async (kind, reason) => {
    const path = join(dir.path, 'm.lock');
    await plant(path, kind, MAX_LOCK_BYTES + 1);
    const error = await readLock(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelPullError);
    expect((error as ModelPullError).code).toBe('ERR_LOCKFILE');
    expect((error as ModelPullError).message).toBe(`cannot read lock file ${path}: ${reason}`);
  });
});
