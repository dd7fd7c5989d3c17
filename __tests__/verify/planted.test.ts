import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_MANIFEST_BYTES } from '../../src/registry/manifest.js';
import { MAX_RECORD_BYTES, MAX_REF_BYTES } from '../../src/sources/hf/record.js';
import { verifyHfCache, verifyOllamaStore } from '../../src/sources/ollama/verify.js';
import { tempDir } from '../helpers/http.js';
import { plant } from '../helpers/planted.js';

/**
 * `model-pull verify` reads manifests, refs and records that any process sharing the store may
 * have planted: a FIFO, a link to /dev/zero or an oversize file is reported as damage at once
 * (never a blocked open, an endless read or a file read whole into memory).
 */
let dir: Awaited<ReturnType<typeof tempDir>>;
beforeEach(async () => {
  dir = await tempDir('model-pull-verify-planted-');
});
afterEach(() => dir.remove());

const refused = {
  fifo: 'not a regular file (a FIFO)',
  link: 'not a regular file (a symbolic link)',
  huge: (limit: number) => `too large (${limit + 1} bytes, limit ${limit})`,
};
const reason = (kind: 'fifo' | 'link' | 'huge', limit: number) =>
  kind === 'huge' ? refused.huge(limit) : refused[kind];

test.each(['fifo', 'link', 'huge'] as const)('a planted %s as an Ollama manifest is damage', async (kind) => {
  const file = join(dir.path, 'manifests', 'registry.ollama.ai', 'library', 'm', 'latest');
  await plant(file, kind, MAX_MANIFEST_BYTES + 1);
  expect(await verifyOllamaStore(dir.path)).toEqual({
    checkedFiles: 0,
    checkedBytes: 0,
    damaged: [
      {
        model: 'registry.ollama.ai/library/m:latest',
        path: file,
        problem: `cannot read the manifest: ${reason(kind, MAX_MANIFEST_BYTES)}`,
        line: 'ollama:m:latest',
      },
    ],
  });
});

test.each(['fifo', 'link', 'huge'] as const)('a planted %s as an HF ref is damage', async (kind) => {
  const file = join(dir.path, 'models--o--r', 'refs', 'main');
  await plant(file, kind, MAX_REF_BYTES + 1);
  expect((await verifyHfCache(dir.path)).damaged).toEqual([
    {
      model: 'hf:o/r',
      path: file,
      problem: `cannot read the ref: ${reason(kind, MAX_REF_BYTES)}`,
      line: 'hf:o/r@main',
    },
  ]);
});

test.each(['fifo', 'link', 'huge'] as const)(
  'a planted %s as an HF record is skipped like any record not ours',
  async (kind) => {
    const repo = join(dir.path, 'datasets--o--d');
    await mkdir(join(repo, 'snapshots', 'c'.repeat(40)), { recursive: true });
    await plant(
      join(repo, '.model-pull', `${'c'.repeat(40)}.0123456789abcdef.json`),
      kind,
      MAX_RECORD_BYTES + 1,
    );
    expect(await verifyHfCache(dir.path)).toEqual({ checkedFiles: 0, checkedBytes: 0, damaged: [] });
  },
);
