import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock } from '../../../src/clock.js';
import { fetchBlobs } from '../../../src/download/engine.js';
import { isModelPullError } from '../../../src/errors.js';
import type { HttpClient } from '../../../src/http/client.js';
import type { SourceContext } from '../../../src/plan.js';
import { splitLine } from '../../../src/refs/line.js';
import { MemoryLogger } from '../../../src/report/logger.js';
import { parseOllamaRef } from '../../../src/sources/ollama/ref.js';
import { createOllamaSource } from '../../../src/sources/ollama/source.js';
import { FAST_RETRY, testClient } from '../../helpers/engine.js';
import { type TestServer, tempDir } from '../../helpers/http.js';
import {
  blobGets,
  type GeneratedModel,
  generateModel,
  pushModel,
  type RealRegistry,
  sha256,
  startRecordingProxy,
  startRegistry,
} from '../../helpers/registry.js';

// The real CNCF distribution registry answers blob GETs with 200 and the bytes (no redirect),
// where Ollama itself fails (ollama #6308); behind it, a recording proxy counts what we ask.
let registry: RealRegistry;
let proxy: TestServer;
let http: HttpClient;
let model: GeneratedModel;
let pushedDigest: string;
let store: { path: string; remove(): Promise<void> };

const REPO = 'team/tiny';
const ref = (suffix: string) => parseOllamaRef(splitLine(`ollama:${proxy.url}/${REPO}${suffix}`));
const ctx = (): SourceContext => ({ http, retry: FAST_RETRY, log: new MemoryLogger(), clock: systemClock });
const engine = () => ({ http, concurrency: 4, connections: 4, verify: 'full' as const, retry: FAST_RETRY });
const host = () => new URL(proxy.url).host;

beforeAll(async () => {
  registry = await startRegistry();
  proxy = await startRecordingProxy(registry.url);
  http = testClient();
  store = await tempDir('model-pull-ollama-store-');
  model = generateModel(300 * 1024);
  pushedDigest = await pushModel(registry.url, REPO, 'v1', model);
});

afterAll(async () => {
  await http?.close();
  await proxy?.close();
  await registry?.close();
  await store?.remove();
});

describe('ollama source against the real distribution registry', () => {
  test('pull: identify, plan, fetch, commit write the Ollama store exactly', async () => {
    const source = createOllamaSource({ modelsRoot: store.path });
    const manifestHex = sha256(model.manifest);
    const identity = await source.identify(ref(':v1'), ctx());
    expect(identity).toEqual({
      source: 'ollama',
      ref: `ollama:${proxy.url}/${REPO}:v1`,
      name: `${host()}/${REPO}:v1`,
      pin: `sha256:${manifestHex}`,
      contentDigest: manifestHex,
      detail: { manifest: model.manifest.toString('utf8') },
    });
    expect(identity.pin).toBe(pushedDigest);

    const before = proxy.requests.length;
    const entry = await source.plan(ref(':v1'), identity, ctx());
    expect(proxy.requests.length).toBe(before); // the manifest text rode along in the identity
    const all = [model.config, ...model.layers];
    const blobPath = (b: { bytes: Buffer }) => join(store.path, 'blobs', `sha256-${sha256(b.bytes)}`);
    const manifestFile = join(store.path, 'manifests', host(), 'team', 'tiny', 'v1');
    expect(entry.path).toBe(blobPath(model.layers[0]!));
    expect(entry.size).toBe(all.reduce((n, b) => n + b.bytes.length, 0));
    expect(entry.files).toEqual(
      all.map((b) => ({ path: blobPath(b), digest: `sha256:${sha256(b.bytes)}`, size: b.bytes.length })),
    );
    expect(entry.cachePaths).toEqual(all.map(blobPath)); // blobs only: commit() writes the manifest last
    for (const blob of entry.blobs) expect(blob.ingestDir).toBe(join(store.path, '.model-pull-ingest'));

    const results = await fetchBlobs(entry.blobs, engine());
    expect(results.reduce((n, r) => n + r.downloadedBytes, 0)).toBe(entry.size);
    await entry.commit();

    for (const b of all) {
      const data = await readFile(blobPath(b));
      expect(sha256(data)).toBe(sha256(b.bytes));
      expect((await stat(blobPath(b))).mode & 0o777).toBe(0o644);
    }
    expect((await readFile(manifestFile)).equals(model.manifest)).toBe(true);
    expect((await stat(manifestFile)).mode & 0o777).toBe(0o644);
    // every blob was asked of the registry, which answered 200 itself
    const fetched = new Set(
      proxy.requests.filter((r) => r.method === 'GET').map((r) => r.url.split('/').pop()),
    );
    for (const b of all) expect(fetched.has(`sha256:${sha256(b.bytes)}`)).toBe(true);
  });

  test('a second run downloads nothing: every blob reused, no blob GET reaches the registry', async () => {
    const source = createOllamaSource({ modelsRoot: store.path });
    const gets = blobGets(proxy);
    const entry = await source.plan(ref(':v1'), await source.identify(ref(':v1'), ctx()), ctx());
    const results = await fetchBlobs(entry.blobs, engine());
    expect(results.map((r) => [r.reused, r.downloadedBytes])).toEqual(entry.blobs.map(() => [true, 0]));
    await entry.commit();
    expect(blobGets(proxy)).toBe(gets);
  });

  test('a pinned reference whose manifest is in the store makes no request at all', async () => {
    const source = createOllamaSource({ modelsRoot: store.path });
    const count = proxy.requests.length;
    const pinned = ref(`:v1@sha256:${sha256(model.manifest)}`);
    const identity = await source.identify(pinned, ctx());
    const entry = await source.plan(pinned, identity, ctx());
    const results = await fetchBlobs(entry.blobs, engine());
    await entry.commit();
    expect(identity.pin).toBe(pushedDigest);
    expect(results.every((r) => r.reused)).toBe(true);
    expect(proxy.requests.length).toBe(count);
  });

  test('a pin without a tag fetches the manifest by digest and stores it under latest', async () => {
    const source = createOllamaSource({ modelsRoot: store.path });
    const hex = sha256(model.manifest);
    const count = proxy.requests.length;
    const entry = await source.plan(
      ref(`@sha256:${hex}`),
      await source.identify(ref(`@sha256:${hex}`), ctx()),
      ctx(),
    );
    expect(proxy.requests.slice(count).map((r) => `${r.method} ${r.url}`)).toEqual([
      `GET /v2/${REPO}/manifests/sha256:${hex}`,
    ]);
    expect(entry.identity.name).toBe(`${host()}/${REPO}:latest`);
    await fetchBlobs(entry.blobs, engine());
    await entry.commit();
    const latest = join(store.path, 'manifests', host(), 'team', 'tiny', 'latest');
    expect((await readFile(latest)).equals(model.manifest)).toBe(true);
  });

  test('a lock-file identity without the manifest text plans from the registry into a fresh store', async () => {
    const fresh = await tempDir('model-pull-ollama-fresh-');
    try {
      const source = createOllamaSource({ modelsRoot: fresh.path });
      const hex = sha256(model.manifest);
      const line = `ollama:${proxy.url}/${REPO}:v1`;
      const identity = {
        source: 'ollama' as const,
        ref: line,
        name: `${host()}/${REPO}:v1`,
        pin: `sha256:${hex}`,
        contentDigest: hex,
      };
      const count = proxy.requests.length;
      const entry = await source.plan(ref(':v1'), identity, ctx());
      const results = await fetchBlobs(entry.blobs, engine());
      await entry.commit();
      const asked = proxy.requests
        .slice(count)
        .map((r) => `${r.method} ${r.url.split('/').slice(-2).join('/')}`);
      expect(asked[0]).toBe(`GET manifests/sha256:${hex}`);
      expect(results.every((r) => !r.reused && r.downloadedBytes === r.size)).toBe(true);
      const manifestFile = join(fresh.path, 'manifests', host(), 'team', 'tiny', 'v1');
      expect((await readFile(manifestFile)).equals(model.manifest)).toBe(true);
      expect(sha256(await readFile(entry.path))).toBe(sha256(model.layers[0]!.bytes));
    } finally {
      await fresh.remove();
    }
  });

  test('an unknown tag fails with the model name and the 404', async () => {
    const source = createOllamaSource({ modelsRoot: store.path });
    await source.identify(ref(':v1'), ctx()); // the same repository, asked first under another tag
    const error = await source.identify(ref(':nope'), ctx()).catch((e: unknown) => e);
    expect(isModelPullError(error, 'ERR_NOT_FOUND')).toBe(true);
    expect((error as Error).message).toBe(`${host()}/${REPO}:nope was not found on ${host()} (HTTP 404)`);
  });

  test('a loopback registry written without a scheme: https is tried, then plain http', async () => {
    const fresh = await tempDir('model-pull-ollama-noscheme-');
    try {
      const source = createOllamaSource({ modelsRoot: fresh.path });
      const bare = parseOllamaRef(splitLine(`ollama:${host()}/${REPO}:v1`));
      expect(bare.scheme).toBeUndefined();
      const count = proxy.requests.length;
      const entry = await source.plan(bare, await source.identify(bare, ctx()), ctx());
      await fetchBlobs(entry.blobs, engine());
      await entry.commit();
      // The https probe reached no HTTP request; everything after it went over http.
      expect(proxy.requests[count]).toMatchObject({ method: 'GET', url: `/v2/${REPO}/manifests/v1` });
      expect(sha256(await readFile(entry.path))).toBe(sha256(model.layers[0]!.bytes));
    } finally {
      await fresh.remove();
    }
  });
});
