import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import { type ActionRun, freshStepEachTest, listFiles, type Runner } from '../helpers/action.js';
import { buildTar } from '../helpers/cache-archive.js';
import type { CacheService } from '../helpers/cache-service.js';
import type { TestServer } from '../helpers/http.js';
import { FILEPATH, gguf, modelPack, pushArtifact } from '../helpers/oci-artifacts.js';
import { blobGets, registryForFile, sha256 } from '../helpers/registry.js';

/**
 * The bundled action with an oci: line and the Actions cache (real @actions/cache client, local
 * service): the entry holds the model's blobs under the manifest digest's key; a run on an
 * emptied HOME restores them, rebuilds the folder (links and extracted files) and the layout.
 */

let proxy: TestServer;
let service: CacheService;
let runner: Runner;
const weights = gguf(1024 * 1024);
const tokenizer = Buffer.from('{"model":{"type":"BPE"}}');
const artifact = modelPack([
  {
    mediaType: 'application/vnd.cncf.model.weight.v1.raw',
    bytes: weights,
    annotations: { [FILEPATH]: 'tiny.gguf' },
  },
  {
    mediaType: 'application/vnd.cncf.model.weight.config.v1.tar+zstd',
    bytes: zstdCompressSync(buildTar([{ name: 'tokenizer.json', data: tokenizer }])),
  },
]);
const size = [artifact.config, ...artifact.layers].reduce((n, l) => n + l.bytes.length, 0);

registryForFile(
  async (url) => {
    await pushArtifact(url, 'team/tiny', 'v1', artifact);
  },
  (p) => {
    proxy = p;
  },
);
freshStepEachTest((r, s) => {
  runner = r;
  service = s;
});

function pull(lines: readonly string[]): Promise<ActionRun> {
  return runner.run({ models: lines.join('\n') }, service.env);
}

test('an oci: model: a miss pulls and saves its blobs; a run on an emptied HOME restores them', async () => {
  const host = new URL(proxy.url).host;
  const line = `oci:${host}/team/tiny:v1`;
  const ociDir = join(runner.home, '.cache', 'model-pull', 'oci');
  const folder = join(ociDir, 'models', host, 'team', 'tiny', artifact.hex);
  const expected = (cache: string) => ({
    ref: line,
    source: 'oci',
    name: `${host}/team/tiny:v1`,
    digest: `sha256:${artifact.hex}`,
    path: join(folder, 'tiny.gguf'),
    size,
    cache,
    files: [
      { path: join(folder, 'tiny.gguf'), digest: `sha256:${sha256(weights)}`, size: weights.length },
      { path: join(folder, 'tokenizer.json'), digest: `sha256:${sha256(tokenizer)}`, size: tokenizer.length },
    ],
  });
  const first = await pull([line]);
  expect(first.errors()).toEqual([]);
  expect(first.code).toBe(0);
  expect(first.outputs['cache-hit']).toBe('false');
  expect(first.outputs['downloaded-bytes']).toBe(String(size));
  expect(JSON.parse(first.outputs.models!)).toEqual([expected('miss')]);
  const key = `model-pull-v1-oci-${artifact.hex}`;
  expect(service.entries().map((e) => [e.key, e.finalized])).toEqual([[key, true]]);

  await runner.emptyHome();
  const before = blobGets(proxy);
  const second = await pull([line]);
  expect(second.code).toBe(0);
  expect(second.warnings()).toEqual([]);
  expect(second.outputs['cache-hit']).toBe('true');
  expect(second.outputs['downloaded-bytes']).toBe('0');
  expect(second.outputs['cached-bytes']).toBe(String(size));
  expect(JSON.parse(second.outputs.models!)).toEqual([expected('hit')]);
  expect(blobGets(proxy)).toBe(before);
  expect(sha256(await readFile(join(folder, 'tiny.gguf')))).toBe(sha256(weights));
  expect(await readFile(join(folder, 'tokenizer.json'))).toEqual(tokenizer);
  // Exactly the layout, the folder and its record: no staging leftovers.
  const blob = (bytes: Buffer) => `blobs/sha256/${sha256(bytes)}`;
  expect((await listFiles(ociDir)).sort()).toEqual(
    [
      'oci-layout',
      'index.json',
      blob(artifact.manifest),
      blob(artifact.config.bytes),
      ...artifact.layers.map((l) => blob(l.bytes)),
      `models/${host}/team/tiny/${artifact.hex}/tiny.gguf`,
      `models/${host}/team/tiny/${artifact.hex}/tokenizer.json`,
      `models/${host}/team/tiny/.${artifact.hex}.files.json`,
    ].sort(),
  );
});
