import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lockedIdentity, readLock, stableStringify, writeLock } from '../../src/lock/lockfile.js';
import type { Identity } from '../../src/plan.js';
import { tempDir } from '../helpers/http.js';

const hex = 'a'.repeat(64);
const url: Identity = {
  source: 'url',
  ref: 'https://h/f.gguf sha256=' + hex,
  name: 'https://h/f.gguf',
  digest: `sha256:${hex}`,
  contentDigest: hex,
};
const hf: Identity = {
  source: 'hf',
  ref: 'hf:o/r',
  name: 'o/r',
  digest: 'c'.repeat(40),
  contentDigest: 'b'.repeat(64),
  detail: { revision: 'main', files: [{ size: 2, path: 'z.json' }] },
};

describe('lock file', () => {
  let dir: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.remove());

  it('writes sorted, stable JSON and reads it back', async () => {
    const path = join(dir.path, 'sub', 'model-pull.lock');
    await writeLock(path, [url, hf]);
    const text = await readFile(path, 'utf8');
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.indexOf('"hf:o/r"')).toBeLessThan(text.indexOf('"https://h/f.gguf'));
    expect(text.indexOf('"contentDigest"')).toBeLessThan(text.indexOf('"digest"'));
    expect(text).toBe(`${stableStringify(JSON.parse(text))}\n`);
    const lock = await readLock(path);
    expect(lockedIdentity(lock!, path, 'hf:o/r', 'hf')).toEqual(hf);
  });

  it('keeps the entries of other lines when updating', async () => {
    const path = join(dir.path, 'm.lock');
    await writeLock(path, [url]);
    await writeLock(path, [hf], await readLock(path));
    expect(Object.keys((await readLock(path))!.models)).toEqual(['hf:o/r', url.ref]);
  });

  it('says how to update it when a line is not covered', async () => {
    const path = join(dir.path, 'm.lock');
    await writeLock(path, [url]);
    expect(() => lockedIdentity({ version: 1, models: {} }, path, 'ollama:x', 'ollama')).toThrow(
      `lock file ${path} does not cover "ollama:x": update it with \`model-pull lock --lockfile ${path} <lines>\` or delete it to re-create it`,
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
});
