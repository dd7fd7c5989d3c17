import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ActionRun, freshStepEachTest, listFiles, type Runner } from '../helpers/action.js';
import type { CacheService } from '../helpers/cache-service.js';
import type { TestServer } from '../helpers/http.js';
import {
  blobGets,
  descriptor,
  type GeneratedModel,
  generateModel,
  pushModel,
  registryForFile,
  sha256,
} from '../helpers/registry.js';

/**
 * The bundled action against the real CNCF registry (behind a recording proxy, to count blob
 * GETs) and a local cache service v2 driven by the real @actions/cache client: the first run
 * downloads and saves one entry per model, later runs on an emptied HOME restore it.
 */

const MiB = 1024 * 1024;

let proxy: TestServer;
let service: CacheService;
let runner: Runner;
const small = generateModel(2 * MiB);
const other = generateModel(1 * MiB);

registryForFile(
  async (url) => {
    await pushModel(url, 'team/tiny', 'v1', small);
    await pushModel(url, 'team/other', 'v1', other);
  },
  (p) => {
    proxy = p;
  },
);
freshStepEachTest((r, s) => {
  runner = r;
  service = s;
});

const lineOf = (repo: string) => `ollama:${proxy.url}/${repo}:v1`;
const nameOf = (repo: string) => `${proxy.url.replace('http://', '')}/${repo}:v1`;
const blobsOf = (m: GeneratedModel) => [m.config, ...m.layers].map(descriptor);
const sizeOf = (m: GeneratedModel) => blobsOf(m).reduce((s, b) => s + b.size, 0);
const manifestDigest = (m: GeneratedModel) => `sha256:${sha256(m.manifest)}`;
const store = () => join(runner.home, '.ollama', 'models');
/** `<cache-key-prefix>-<layout version>-<source>-<content digest>` (issue 5); Ollama: the manifest's. */
const keyOf = (m: GeneratedModel) => `model-pull-v1-ollama-${sha256(m.manifest)}`;

function pull(lines: readonly string[], inputs: Record<string, string> = {}): Promise<ActionRun> {
  return runner.run({ models: lines.join('\n'), ...inputs }, service.env);
}

/** The models JSON entry the action must print for a fully present model. */
function expectedModel(repo: string, m: GeneratedModel, cache: string) {
  const root = store();
  const blob = (hex: string) => join(root, 'blobs', `sha256-${hex.replace('sha256:', '')}`);
  return {
    ref: lineOf(repo),
    source: 'ollama',
    name: nameOf(repo),
    digest: manifestDigest(m),
    path: blob(descriptor(m.layers[0]!).digest),
    size: sizeOf(m),
    cache,
    files: blobsOf(m).map((b) => ({ path: blob(b.digest), digest: b.digest, size: b.size })),
  };
}

/** Every blob of the model is in the store with the right bytes, and the manifest as served. */
async function expectInStore(repo: string, m: GeneratedModel): Promise<void> {
  for (const b of blobsOf(m)) {
    const bytes = await readFile(join(store(), 'blobs', `sha256-${b.digest.slice(7)}`));
    expect(`sha256:${sha256(bytes)}`).toBe(b.digest);
  }
  const manifest = await readFile(
    join(store(), 'manifests', ...nameOf(repo).replace(/:v1$/, '').split('/'), 'v1'),
  );
  expect(sha256(manifest)).toBe(sha256(m.manifest));
}

/** Digests of the blob GETs the registry saw after request number `mark`. */
const blobDigestsSince = (mark: number) =>
  proxy.requests
    .slice(mark)
    .filter((r) => r.method === 'GET' && r.url.includes('/blobs/sha256:'))
    .map((r) => r.url.split('/').pop()!);

describe('the action with Ollama models and the Actions cache', () => {
  test('a miss pulls and saves; a second run on an emptied HOME restores with no blob request', async () => {
    const line = lineOf('team/tiny');
    const mark = proxy.requests.length;
    const first = await pull([line]);
    expect(first.code).toBe(0);
    expect(first.errors()).toEqual([]);
    expect(first.warnings()).toEqual([]);
    expect(first.outputs['cache-hit']).toBe('false');
    expect(first.outputs['downloaded-bytes']).toBe(String(sizeOf(small)));
    expect(first.outputs['cached-bytes']).toBe('0');
    expect(first.outputs['ollama-models']).toBe(store());
    expect(first.outputs['hf-cache']).toBe(join(runner.home, '.cache', 'huggingface', 'hub'));
    expect(JSON.parse(first.outputs.models!)).toEqual([expectedModel('team/tiny', small, 'miss')]);
    expect(first.exported).toEqual({
      OLLAMA_MODELS: store(),
      HF_HUB_CACHE: join(runner.home, '.cache', 'huggingface', 'hub'),
    });
    expect(first.summary).toContain('| model | source | size | cache | downloaded | time | throughput |');
    expect(first.summary).toContain(`| \`${line}\` | ollama | 2.0 MiB | miss | 2.0 MiB |`);
    // One log group per model, named with what happened to it.
    expect(first.stdout.split('\n').filter((l) => l.startsWith('::group::'))).toEqual([
      `::group::${nameOf('team/tiny')} (ollama, 2.0 MiB, cache miss)`,
    ]);
    await expectInStore('team/tiny', small);
    // Every blob came from the registry; one entry was created under the content key.
    expect(new Set(blobDigestsSince(mark))).toEqual(new Set(blobsOf(small).map((b) => b.digest)));
    const key = keyOf(small);
    expect(service.entries().map((e) => [e.key, e.finalized])).toEqual([[key, true]]);

    await runner.emptyHome();
    const before = blobGets(proxy);
    const second = await pull([line]);
    expect(second.code).toBe(0);
    expect(second.outputs['cache-hit']).toBe('true');
    expect(second.outputs['downloaded-bytes']).toBe('0');
    expect(second.outputs['cached-bytes']).toBe(String(sizeOf(small)));
    expect(JSON.parse(second.outputs.models!)).toEqual([expectedModel('team/tiny', small, 'hit')]);
    expect(blobGets(proxy)).toBe(before);
    await expectInStore('team/tiny', small);
    // An exact hit is not saved again.
    expect(service.entries()).toHaveLength(1);
    expect(second.summary).toContain(`| \`${line}\` | ollama | 2.0 MiB | hit | 0 B |`);
    // The staging folder sits beside blobs/ and holds no leftovers after a run.
    expect(
      (await listFiles(store())).filter((f) => !f.startsWith('blobs/') && !f.startsWith('manifests/')),
    ).toEqual([]);
  });

  test('the log tells the restore; a model already in place fetches no archive byte', async () => {
    const line = lineOf('team/tiny');
    expect((await pull([line])).code).toBe(0);
    await runner.emptyHome();
    const restored = await pull([line]);
    expect(restored.outputs['cache-hit']).toBe('true');
    const told = restored.stdout
      .split('\n')
      .filter((l) => l.startsWith(`${line}: `))
      .map((l) => l.slice(line.length + 2));
    expect(told).toEqual([
      'resolving manifest',
      expect.stringMatching(/^listing files \(\d+\)$/),
      expect.stringMatching(/^restoring from the Actions cache, 2\.\d MiB$/),
      expect.stringMatching(/^restored \d+ of \d+ files from the Actions cache \(/),
      'writing manifest',
      expect.stringMatching(/^done, 2\.0 MiB at .* \(restored 2\.0 MiB from the Actions cache\)$/),
    ]);

    const mark = service.calls.length;
    const again = await pull([line]);
    expect(again.code).toBe(0);
    expect(again.outputs['cache-hit']).toBe('true');
    expect(JSON.parse(again.outputs.models!)).toEqual([expectedModel('team/tiny', small, 'hit')]);
    // The entry is looked up (it exists, so nothing is saved), its archive never fetched.
    expect(service.calls.slice(mark).map((c) => c.call)).toEqual(['GetCacheEntryDownloadURL']);
    expect(again.stdout).toMatch(/: restored 0 of 4 files from the Actions cache, 4 already in place \(/);
    // Nothing came from the cache this time: the files were on disk.
    expect(again.outputs['cached-bytes']).toBe('0');
    expect(again.stdout).toMatch(/: done, 2\.0 MiB at .* \(already on disk, verified\)\n/);
    expect(again.stdout).not.toContain('restoring from the Actions cache');
  });

  test('two models, one cached: only the other is downloaded and saved', async () => {
    const tiny = lineOf('team/tiny');
    const second = lineOf('team/other');
    expect((await pull([tiny])).code).toBe(0);
    await runner.emptyHome();
    const mark = proxy.requests.length;
    const creates = service.count('CreateCacheEntry');

    const run = await pull([tiny, second]);
    expect(run.code).toBe(0);
    expect(run.warnings()).toEqual([]);
    // Both generated models carry the same template and params blobs: those arrive with the
    // restored entry of the first model, so only the other's config and weights are fetched.
    const shared = new Set(blobsOf(small).map((b) => b.digest));
    const own = blobsOf(other).filter((b) => !shared.has(b.digest));
    expect(own.map((b) => b.digest)).toEqual([blobsOf(other)[0]!.digest, blobsOf(other)[1]!.digest]);
    expect(run.outputs['cache-hit']).toBe('false');
    expect(run.outputs['downloaded-bytes']).toBe(String(own.reduce((s, b) => s + b.size, 0)));
    expect(run.outputs['cached-bytes']).toBe(String(sizeOf(small)));
    expect(JSON.parse(run.outputs.models!)).toEqual([
      expectedModel('team/tiny', small, 'hit'),
      expectedModel('team/other', other, 'miss'),
    ]);
    expect(blobDigestsSince(mark).sort()).toEqual(own.map((b) => b.digest).sort());
    // Only the miss is saved; the hit's entry is left as it was.
    const created = service.calls.filter((c) => c.call === 'CreateCacheEntry').slice(creates);
    expect(created.map((c) => c.body?.['key'])).toEqual([keyOf(other)]);
    expect(
      service
        .entries()
        .map((e) => e.key)
        .sort(),
    ).toEqual([keyOf(small), keyOf(other)].sort());
    expect(run.summary).toContain(`| \`${tiny}\` | ollama | 2.0 MiB | hit | 0 B |`);
    expect(run.summary).toContain(`| \`${second}\` | ollama | 1.0 MiB | miss | 1.0 MiB |`);
    await expectInStore('team/tiny', small);
    await expectInStore('team/other', other);
  });

  test('a tampered restored blob is caught by sha256, downloaded again and not re-saved', async () => {
    const line = lineOf('team/tiny');
    expect((await pull([line])).code).toBe(0);
    const weights = descriptor(small.layers[0]!);
    const key = keyOf(small);
    expect(service.tamper(key, (name) => name.endsWith(`sha256-${weights.digest.slice(7)}`))).toHaveLength(1);
    await runner.emptyHome();
    const mark = proxy.requests.length;
    const creates = service.count('CreateCacheEntry');

    const run = await pull([line]);
    expect(run.code).toBe(0);
    expect(run.outputs['cache-hit']).toBe('false');
    expect(run.outputs['downloaded-bytes']).toBe(String(weights.size));
    expect(run.outputs['cached-bytes']).toBe(String(sizeOf(small) - weights.size));
    expect(JSON.parse(run.outputs.models!)).toEqual([expectedModel('team/tiny', small, 'partial')]);
    // Only the poisoned blob went back to the registry, and the consumer sees the real bytes.
    expect(blobDigestsSince(mark)).toEqual([weights.digest]);
    await expectInStore('team/tiny', small);
    // The entry is immutable under its key: no save was even attempted.
    expect(service.count('CreateCacheEntry')).toBe(creates);
    expect(run.summary).toContain(`| \`${line}\` | ollama | 2.0 MiB | partial | 2.0 MiB |`);
  });

  test('two models sharing layers on a cold run: each shared blob fetched and counted once', async () => {
    const lines = [lineOf('team/tiny'), lineOf('team/other')];
    const mark = proxy.requests.length;
    const run = await pull(lines);
    expect(run.code).toBe(0);
    const unique = new Map([...blobsOf(small), ...blobsOf(other)].map((b) => [b.digest, b.size]));
    expect(unique.size).toBe(6); // 4 + 4 blobs, template and params shared
    expect(blobDigestsSince(mark).sort()).toEqual([...unique.keys()].sort());
    expect(run.outputs['downloaded-bytes']).toBe(String([...unique.values()].reduce((s, n) => s + n, 0)));
    expect(JSON.parse(run.outputs.models!)).toEqual([
      expectedModel('team/tiny', small, 'miss'),
      expectedModel('team/other', other, 'miss'),
    ]);
  });

  test('the same line twice: one download, one entry saved, no warning, counted once', async () => {
    const line = lineOf('team/tiny');
    const mark = proxy.requests.length;
    const run = await pull([line, line]);
    expect(run.code).toBe(0);
    expect(run.warnings()).toEqual([]);
    expect(run.outputs['downloaded-bytes']).toBe(String(sizeOf(small)));
    expect(JSON.parse(run.outputs.models!)).toEqual([
      expectedModel('team/tiny', small, 'miss'),
      expectedModel('team/tiny', small, 'miss'),
    ]);
    expect(blobDigestsSince(mark).sort()).toEqual(
      blobsOf(small)
        .map((b) => b.digest)
        .sort(),
    );
    expect(service.count('CreateCacheEntry')).toBe(1);

    await runner.emptyHome();
    const warm = await pull([line, line]);
    expect(warm.code).toBe(0);
    expect(warm.warnings()).toEqual([]);
    expect(warm.outputs['cache-hit']).toBe('true');
    expect(warm.outputs['cached-bytes']).toBe(String(sizeOf(small)));
    expect(service.count('GET archive')).toBe(1);
  });
});
