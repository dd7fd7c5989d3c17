import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hfRepoPaths } from '../../src/layouts/hf.js';
import { manifestPath, readStoredManifest } from '../../src/layouts/ollama.js';
import { readRecord, readRef } from '../../src/sources/hf/record.js';
import { tempDir } from '../helpers/http.js';
import { plant } from '../helpers/planted.js';

/**
 * Files model-pull reads back from a shared store (stored manifests, HF records) may have been
 * planted by another process: a FIFO (whose open would block forever), a link to an endless
 * device, or a file far larger than any real one. Each reads as absent, at once.
 */
const name = { host: 'registry.ollama.ai', namespace: 'library', model: 'm', tag: 'latest' };
const key = { type: 'model' as const, repo: 'o/r', commit: 'c'.repeat(40), include: [], exclude: [] };

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeEach(async () => {
  dir = await tempDir('model-pull-planted-');
});
afterEach(() => dir.remove());

test.each(['fifo', 'link', 'huge'] as const)(
  'a planted %s as a stored manifest reads as none',
  async (kind) => {
    const path = manifestPath(dir.path, name);
    await plant(path, kind);
    expect(await readStoredManifest(dir.path, name)).toBeUndefined();
  },
);

test.each(['fifo', 'link'] as const)('a planted %s as an HF record reads as no record', async (kind) => {
  const path = join(dir.path, 'record.json');
  await plant(path, kind);
  expect(await readRecord(path, key)).toBeUndefined();
});

test.each(['fifo', 'link', 'huge'] as const)('a planted %s as an HF ref reads as no commit', async (kind) => {
  const paths = hfRepoPaths(dir.path, 'model', 'o/r');
  await plant(join(paths.refs, 'main'), kind);
  expect(await readRef(paths, 'main')).toBeUndefined();
  // The same ref holding a commit is read (the refusals above are not a reader that reads nothing).
  await rm(join(paths.refs, 'main'));
  await writeFile(join(paths.refs, 'main'), key.commit);
  expect(await readRef(paths, 'main')).toBe(key.commit);
});
