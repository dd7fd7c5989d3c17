import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { manifestPath, readStoredManifest } from '../../src/layouts/ollama.js';
import { readRecord } from '../../src/sources/hf/record.js';
import { tempDir } from '../helpers/http.js';

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

async function plant(path: string, kind: 'fifo' | 'link' | 'huge'): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  if (kind === 'fifo') execFileSync('mkfifo', [path]);
  else if (kind === 'link') await symlink('/dev/zero', path);
  else await writeFile(path, Buffer.alloc(5 * 1024 * 1024, 0x20));
}

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
