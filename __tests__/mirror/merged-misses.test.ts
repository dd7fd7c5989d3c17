import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pullThroughMirror } from '../helpers/cli-in-process.js';
import type { TestServer } from '../helpers/http.js';
import { tempDir } from '../helpers/http.js';
import { type NginxBlobCache, startNginxBlobCache } from '../helpers/nginx.js';
import { FILEPATH, gguf, modelPack, pushArtifact } from '../helpers/oci-artifacts.js';
import {
  type GeneratedModel,
  generateModel,
  pushModel,
  type RealRegistry,
  sha256,
  startRecordingProxy,
  startRegistry,
} from '../helpers/registry.js';

// Concurrent cold runners through a pull-through cache, with an engine that merges misses in
// front of it (docs/scale-out.md, "Merging concurrent misses"): nginx's proxy_cache with
// proxy_cache_lock. distribution 2.8 alone fetches a blob from its upstream once per request
// that arrives while the blob is missing (pull-through.test.ts); nginx lets one request per blob
// through and holds the others until it has the bytes. Counted on the origin's request log.

const KiB = 1024;
const N = 6;
let upstream: RealRegistry;
let origin: TestServer;
let home: Awaited<ReturnType<typeof tempDir>>;
const started: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  upstream = await startRegistry();
  origin = await startRecordingProxy(upstream.url);
  home = await tempDir('model-pull-merged-misses-');
});
afterAll(async () => {
  for (const s of started.reverse()) await s.close();
  await origin?.close();
  await upstream?.close();
  await home?.remove();
});

const originHost = () => new URL(origin.url).host;
let runs = 0;

/** One runner: fresh stores, the mirror for the origin's host. */
async function run(mirror: string, lines: readonly string[]) {
  return pullThroughMirror(join(home.path, `run-${++runs}`), originHost(), mirror, lines);
}

/** GETs of each blob that reached the origin, by digest. */
function originBlobGets(from: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of origin.requests.slice(from)) {
    const m = /\/blobs\/sha256:([0-9a-f]{64})$/.exec(r.url);
    if (r.method === 'GET' && m) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
  }
  return counts;
}

/** A model of its own per test (the caches are cold for it), pushed to the upstream. */
async function freshModels(
  name: string,
): Promise<{ lines: string[]; hexes: string[]; check(dir: string): Promise<void> }> {
  const model: GeneratedModel = generateModel(600 * KiB);
  await pushModel(upstream.url, `team/${name}`, 'v1', model);
  const weights = gguf(700 * KiB);
  const pack = modelPack([
    {
      mediaType: 'application/vnd.cncf.model.weight.v1.raw',
      bytes: weights,
      annotations: { [FILEPATH]: 'w.gguf' },
    },
  ]);
  await pushArtifact(upstream.url, `team/${name}-pack`, 'v1', pack);
  return {
    lines: [`ollama:${originHost()}/team/${name}:v1`, `oci:${originHost()}/team/${name}-pack:v1`],
    hexes: [
      ...[model.config, ...model.layers].map((b) => sha256(b.bytes)),
      sha256(pack.config.bytes),
      sha256(weights),
    ],
    async check(dir) {
      for (const blob of [model.config, ...model.layers]) {
        const bytes = await readFile(join(dir, 'ollama', 'blobs', `sha256-${sha256(blob.bytes)}`));
        expect(bytes.equals(blob.bytes)).toBe(true);
      }
      const folder = join(dir, 'oci', 'models', originHost(), 'team', `${name}-pack`, pack.hex);
      expect((await readFile(join(folder, 'w.gguf'))).equals(weights)).toBe(true);
    },
  };
}

async function coldWave(mirror: string, name: string) {
  const models = await freshModels(name);
  const start = origin.requests.length;
  const results = await Promise.all(Array.from({ length: N }, () => run(mirror, models.lines)));
  for (const r of results) {
    expect(r.stderr).not.toContain('registry-mirror');
    expect(r.code).toBe(0);
    await models.check(r.dir);
  }
  const counts = originBlobGets(start);
  const perBlob = models.hexes.map((h) => counts.get(h) ?? 0);
  return { models, perBlob };
}

test(`${N} cold runners through nginx (proxy_cache_lock) in front of the pull-through cache: one request per blob reaches the cache`, async () => {
  const cache = await startRegistry({ proxyOf: origin.url });
  started.push(cache);
  const front: NginxBlobCache = await startNginxBlobCache(cache.url);
  started.push(front);
  const { models, perBlob } = await coldWave(front.url, 'front');
  // nginx let one request per blob through to the cache (its MISS), the others waited (HIT).
  const log = await front.log();
  for (const hex of models.hexes) {
    const misses = log.filter((l) => l.uri.endsWith(hex) && l.cache !== 'HIT');
    expect(misses.map((l) => l.cache)).toEqual(['MISS']);
  }
  // distribution fetches from the origin for that one request and, to store it, at most once
  // more: no more than 2 per blob, whatever N.
  for (const n of perBlob) {
    expect(n).toBeGreaterThanOrEqual(1);
    expect(n).toBeLessThanOrEqual(2);
  }
  process.stdout.write(
    `merged misses, nginx in front of the cache: ${N} cold runners, origin GETs per blob ${perBlob.join(' ')}\n`,
  );
});

test(`${N} cold runners through a pull-through cache whose upstream is behind nginx (proxy_cache_lock): the origin serves each blob once`, async () => {
  const shield: NginxBlobCache = await startNginxBlobCache(origin.url);
  started.push(shield);
  const cache = await startRegistry({ proxyOf: shield.url });
  started.push(cache);
  const { perBlob } = await coldWave(cache.url, 'shield');
  expect(perBlob).toEqual(perBlob.map(() => 1));
  process.stdout.write(
    `merged misses, nginx between the cache and the origin: ${N} cold runners, origin GETs per blob ${perBlob.join(' ')}\n`,
  );
});

test('a 24 MiB blob, 4 cold runners through nginx in front of the cache: 2 origin fetches, then ranges from nginx in parallel', async () => {
  const cache = await startRegistry({ proxyOf: origin.url });
  started.push(cache);
  const front = await startNginxBlobCache(cache.url);
  started.push(front);
  const large = generateModel(24 * 1024 * KiB);
  await pushModel(upstream.url, 'team/large', 'v1', large);
  const hex = sha256(large.layers[0]!.bytes);
  const line = `ollama:${originHost()}/team/large:v1`;
  const start = origin.requests.length;
  const cold = await Promise.all(Array.from({ length: 4 }, () => run(front.url, [line])));
  const check = async (dir: string) => {
    const blob = join(dir, 'ollama', 'blobs', `sha256-${hex}`);
    expect(sha256(await readFile(blob))).toBe(hex);
  };
  for (const r of cold) {
    expect(r.code).toBe(0);
    await check(r.dir);
  }
  const fetches = originBlobGets(start).get(hex) ?? 0;
  expect(fetches).toBeGreaterThanOrEqual(1);
  expect(fetches).toBeLessThanOrEqual(2);
  const coldLog = (await front.log()).filter((l) => l.uri.endsWith(hex));
  expect(coldLog.filter((l) => l.cache !== 'HIT').map((l) => l.cache)).toEqual(['MISS']);
  // proxy_force_ranges: nginx answers ranges from its copy, so the probe's 206 lets each runner
  // ask the rest in parallel.
  expect(coldLog.every((l) => l.status === 206)).toBe(true);
  const warm = await run(front.url, [line]);
  expect(warm.code).toBe(0);
  await check(warm.dir);
  const warmLog = (await front.log()).filter((l) => l.uri.endsWith(hex)).slice(coldLog.length);
  expect(warmLog.length).toBeGreaterThan(1);
  expect(warmLog.every((l) => l.status === 206 && l.cache === 'HIT')).toBe(true);
  expect(originBlobGets(start).get(hex)).toBe(fetches);
  process.stdout.write(
    `merged misses, 24 MiB blob: 4 cold runners, ${fetches} origin GETs, ${coldLog.length} range requests answered by nginx; a warm runner ${warmLog.length}\n`,
  );
});
