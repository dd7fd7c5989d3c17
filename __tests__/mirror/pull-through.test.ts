import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pullThroughMirror } from '../helpers/cli-in-process.js';
import { startServer, type TestServer, tempDir } from '../helpers/http.js';
import { FILEPATH, gguf, modelPack, pushArtifact } from '../helpers/oci-artifacts.js';
import {
  type GeneratedModel,
  generateModel,
  pushModel,
  type RealRegistry,
  sha256,
  startRecordingProxy,
  startRegistry,
  storedBlobs,
} from '../helpers/registry.js';

// registry-mirror: ollama: and oci: lines for a host go to its mirror first. The mirror here is a
// second real docker-registry configured as a pull-through cache (proxy.remoteurl) of the
// upstream registry; a recording proxy in front of the upstream counts what reaches the origin,
// both through the cache and from fallbacks. Every run gets its own stores, as runners do.

const KiB = 1024;
let upstream: RealRegistry;
let origin: TestServer;
let cache: RealRegistry;
let home: Awaited<ReturnType<typeof tempDir>>;
let ollamaModel: GeneratedModel;
let ollamaDigest: string;
const weights = gguf(700 * KiB);
const pack = modelPack([
  {
    mediaType: 'application/vnd.cncf.model.weight.v1.raw',
    bytes: weights,
    annotations: { [FILEPATH]: 'tiny.gguf' },
  },
]);

beforeAll(async () => {
  upstream = await startRegistry();
  origin = await startRecordingProxy(upstream.url);
  cache = await startRegistry({ proxyOf: origin.url });
  home = await tempDir('model-pull-pull-through-');
  ollamaModel = generateModel(600 * KiB);
  ollamaDigest = await pushModel(upstream.url, 'team/tiny', 'v1', ollamaModel);
  await pushArtifact(upstream.url, 'team/pack', 'v1', pack);
});
afterAll(async () => {
  await cache?.close();
  await origin?.close();
  await upstream?.close();
  await home?.remove();
});

const originHost = () => new URL(origin.url).host;
const lines = () => [`ollama:${originHost()}/team/tiny:v1`, `oci:${originHost()}/team/pack:v1`];
let runs = 0;

/** One runner: fresh stores, the mirror for the origin's host, both lines. */
async function run(mirror: string, extra: readonly string[] = lines()) {
  return pullThroughMirror(join(home.path, `run-${++runs}`), originHost(), mirror, extra);
}

/** The verified files each run must hold, byte for byte. */
async function expectModels(dir: string): Promise<void> {
  const blobs = join(dir, 'ollama', 'blobs');
  for (const blob of [ollamaModel.config, ...ollamaModel.layers]) {
    const bytes = await readFile(join(blobs, `sha256-${sha256(blob.bytes)}`));
    expect(bytes.equals(blob.bytes)).toBe(true);
  }
  const manifest = join(dir, 'ollama', 'manifests', originHost(), 'team', 'tiny', 'v1');
  expect((await readFile(manifest)).equals(ollamaModel.manifest)).toBe(true);
  const folder = join(dir, 'oci', 'models', originHost(), 'team', 'pack', pack.hex);
  expect((await readFile(join(folder, 'tiny.gguf'))).equals(weights)).toBe(true);
}

/**
 * Waits until the cache has stored these blobs: distribution stores a blob it proxied in the
 * background, and may still be writing it after the client has all of its bytes.
 */
async function cacheHolds(hexes: readonly string[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { blobs } = await storedBlobs(cache);
    if (hexes.every((h) => blobs.includes(h))) return;
    if (Date.now() > deadline)
      throw new Error(`the cache did not store ${hexes.filter((h) => !blobs.includes(h))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** GETs of each blob that reached the origin, by digest (manifests and HEADs not counted). */
function originBlobGets(requests = origin.requests): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of requests) {
    const m = /\/blobs\/sha256:([0-9a-f]{64})$/.exec(r.url);
    if (r.method === 'GET' && m) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
  }
  return counts;
}

const allBlobs = () => [
  ...[ollamaModel.config, ...ollamaModel.layers].map((b) => sha256(b.bytes)),
  sha256(pack.config.bytes),
  sha256(weights),
];

test('concurrent runs through a cold pull-through cache: at most two origin fetches per blob and runner, then none', async () => {
  const N = 4;
  const results = await Promise.all(Array.from({ length: N }, () => run(cache.url)));
  for (const r of results) {
    expect(r.stderr).not.toContain('registry-mirror');
    expect(r.code).toBe(0);
    await expectModels(r.dir);
  }
  const cold = originBlobGets();
  // distribution 2.8's proxy does not merge requests: a blob missing from its storage is fetched
  // from the origin for the client and, unless another fetch is in flight, once more to store it.
  // So N runners at once cost up to 2N per blob (measured: 5 to 7 for 4); one model-pull run asks
  // once per blob, with no retry here.
  for (const hex of allBlobs()) {
    expect(cold.get(hex) ?? 0).toBeGreaterThanOrEqual(1);
    expect(cold.get(hex) ?? 0).toBeLessThanOrEqual(2 * N);
  }

  // A second wave of runners: the cache is warm, the origin serves no blob at all.
  await cacheHolds(allBlobs());
  const before = origin.requests.length;
  const warm = await Promise.all(Array.from({ length: N }, () => run(cache.url)));
  for (const r of warm) {
    expect(r.code).toBe(0);
    await expectModels(r.dir);
  }
  const afterWarm = origin.requests.slice(before);
  expect(afterWarm.filter((r) => r.method === 'GET' && r.url.includes('/blobs/'))).toEqual([]);
  report(`${N} cold runners at once`, N, cold);
  report(`${N} more runners, warm`, N, new Map());
});

test('one runner warms the cache: the origin serves each blob twice at most, the runners after it nothing', async () => {
  // A model of its own, so the cache is cold for it.
  const solo = generateModel(600 * KiB);
  await pushModel(upstream.url, 'team/solo', 'v1', solo);
  const line = `ollama:${originHost()}/team/solo:v1`;
  const start = origin.requests.length;
  const first = await run(cache.url, [line]);
  expect(first.code).toBe(0);
  const warming = originBlobGets(origin.requests.slice(start));
  const hexes = [solo.config, ...solo.layers].map((b) => sha256(b.bytes));
  for (const hex of hexes) expect(warming.get(hex)).toBeLessThanOrEqual(2);
  await cacheHolds(hexes);
  const after = origin.requests.length;
  const N = 4;
  const rest = await Promise.all(Array.from({ length: N }, () => run(cache.url, [line])));
  for (const r of rest) {
    expect(r.code).toBe(0);
    const weightsLayer = solo.layers[0]!.bytes;
    const blob = join(r.dir, 'ollama', 'blobs', `sha256-${sha256(weightsLayer)}`);
    expect((await readFile(blob)).equals(weightsLayer)).toBe(true);
  }
  expect(originBlobGets(origin.requests.slice(after)).size).toBe(0);
  const sizes = new Map([solo.config, ...solo.layers].map((b) => [sha256(b.bytes), b.bytes.length]));
  const bytes = [...warming].reduce((n, [hex, count]) => n + (sizes.get(hex) ?? 0) * count, 0);
  const model = [...sizes.values()].reduce((n, size) => n + size, 0);
  process.stdout.write(
    `pull-through, 1 runner then ${N}: origin ${bytes} bytes for ${N + 1} runners of a ${model}-byte model (${(bytes / model).toFixed(2)}x one model)\n`,
  );
});

function sizeOf(hex: string): number {
  const all = [ollamaModel.config, ...ollamaModel.layers, pack.config].map((b) => b.bytes);
  all.push(weights);
  return all.find((b) => sha256(b) === hex)?.length ?? 0;
}
function sumBytes(counts: Map<string, number>): number {
  return [...counts].reduce((n, [hex, count]) => n + sizeOf(hex) * count, 0);
}
function modelBytes(): number {
  return allBlobs().reduce((n, hex) => n + sizeOf(hex), 0);
}

test('a blob large enough for parallel ranges: one connection until the mirror serves a range', async () => {
  // 24 MiB: split into ranges (16 connections) when the server serves them. A cold cache
  // answers a range request with the whole blob, fetched from the origin each time.
  const large = generateModel(24 * 1024 * KiB);
  await pushModel(upstream.url, 'team/large', 'v1', large);
  const front = await startRecordingProxy(cache.url);
  try {
    const line = `ollama:${originHost()}/team/large:v1`;
    const weightsHex = sha256(large.layers[0]!.bytes);
    const start = origin.requests.length;
    const cold = await run(front.url, [line]);
    expect(cold.code).toBe(0);
    const fromOrigin = originBlobGets(origin.requests.slice(start)).get(weightsHex) ?? 0;
    expect(fromOrigin).toBeGreaterThanOrEqual(1);
    // Ours: one request until the cache answers a range with 206 (without the probe: 12 requests,
    // each of the first ranges then a whole stream, each fetched from the origin).
    const coldAsks = front.requests.filter((r) => r.method === 'GET' && r.url.endsWith(weightsHex)).length;
    expect(coldAsks).toBeLessThanOrEqual(2);
    // Distribution's: a miss costs the origin one fetch for the client and, in the background, at
    // most one more to store it (4 seen once in a full run, 3 or fewer otherwise).
    expect(fromOrigin).toBeLessThanOrEqual(2 * coldAsks);

    // Warm: the first range comes back 206, then the others ask in parallel; the origin sees none.
    await cacheHolds([weightsHex]);
    const warmStart = origin.requests.length;
    const frontStart = front.requests.length;
    const warm = await run(front.url, [line]);
    expect(warm.code).toBe(0);
    const ranges = front.requests
      .slice(frontStart)
      .filter((r) => r.method === 'GET' && r.url.endsWith(weightsHex))
      .map((r) => r.headers.range);
    expect(ranges.length).toBeGreaterThan(1);
    expect(ranges.every((r) => typeof r === 'string' && r.startsWith('bytes='))).toBe(true);
    expect(originBlobGets(origin.requests.slice(warmStart)).size).toBe(0);
    const blob = join(warm.dir, 'ollama', 'blobs', `sha256-${weightsHex}`);
    expect(sha256(await readFile(blob))).toBe(weightsHex);
    process.stdout.write(
      `pull-through, 24 MiB weights: cold runner ${fromOrigin} origin GETs (${coldAsks} asks at the mirror), warm runner ${ranges.length} range requests at the mirror, 0 at the origin\n`,
    );
  } finally {
    await front.close();
  }
});

/** Prints what the origin served, for docs/scale-out.md. */
function report(what: string, runners: number, counts: Map<string, number>): void {
  const gets = [...counts.values()].reduce((a, b) => a + b, 0);
  const bytes = sumBytes(counts);
  process.stdout.write(
    `pull-through, ${what}: origin ${bytes} bytes in ${gets} blob GETs for ${runners} runners of ${allBlobs().length} blobs, ${modelBytes()} bytes each (${(bytes / modelBytes()).toFixed(2)}x one runner's models; per blob: ${allBlobs()
      .map((h) => counts.get(h) ?? 0)
      .join(' ')})\n`,
  );
}

test('a stopped mirror: one warning, then the origin, the same verified files', async () => {
  const stopped = await startRegistry({ proxyOf: origin.url });
  await stopped.close();
  const r = await run(stopped.url);
  expect(r.code).toBe(0);
  const warnings = r.stderr.split('\n').filter((l) => l.includes('registry-mirror'));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain(`registry-mirror ${stopped.url} cannot be reached (`);
  expect(warnings[0]).toContain(`pulling from ${originHost()} instead for the rest of this run`);
  await expectModels(r.dir);
});

test('a model the mirror lacks: one warning for it, then its origin', async () => {
  const plain = await startRegistry();
  try {
    const r = await run(`${plain.url}/hub`, [lines()[0]!]);
    expect(r.code).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('registry-mirror'));
    expect(warnings).toEqual([
      expect.stringContaining(
        `registry-mirror: ${new URL(plain.url).host}/hub/team/tiny:v1 is not on the mirror; pulling team/tiny from ${originHost()}`,
      ),
    ]);
    const blobs = await readdir(join(r.dir, 'ollama', 'blobs'));
    expect(blobs.sort()).toEqual(
      [ollamaModel.config, ...ollamaModel.layers].map((b) => `sha256-${sha256(b.bytes)}`).sort(),
    );
  } finally {
    await plain.close();
  }
});

/** A mirror that answers like the cache but swaps what `lie` returns for the request. */
async function lyingMirror(lie: (url: string) => Buffer | undefined): Promise<TestServer> {
  return startRecordingProxy(cache.url, {
    answer: (req, res) => {
      const bytes = req.method === 'GET' ? lie(req.url ?? '') : undefined;
      if (!bytes) return false;
      res.writeHead(200, {
        'content-length': String(bytes.length),
        'content-type': 'application/octet-stream',
      });
      res.end(bytes);
      return true;
    },
  });
}

/** The registry-mirror lines of a run's log. */
const mirrorWarnings = (stderr: string) => stderr.split('\n').filter((l) => l.includes('registry-mirror'));

test('a mirror serving other bytes for a blob is refused by digest: that blob from the origin, one warning, nothing of them kept', async () => {
  const weightsLayer = ollamaModel.layers[0]!.bytes;
  const hex = sha256(weightsLayer);
  const forged = randomBytes(weightsLayer.length);
  const mirror = await lyingMirror((url) => (url.endsWith(`/blobs/sha256:${hex}`) ? forged : undefined));
  try {
    const start = origin.requests.length;
    const r = await run(mirror.url, [lines()[0]!]);
    expect(r.code).toBe(0);
    const warnings = mirrorWarnings(r.stderr);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(
      `registry-mirror: ${new URL(mirror.url).host}/team/tiny@sha256:${hex} failed: ollama:${originHost()}/team/tiny:v1 model: sha256 mismatch from ${new URL(mirror.url).host}: expected ${hex}, got ${sha256(forged)}; pulling team/tiny from ${originHost()}`,
    );
    // The mirror was asked once; the origin then served the right bytes, verified the same way.
    expect(mirror.requests.filter((q) => q.method === 'GET' && q.url.endsWith(hex))).toHaveLength(1);
    expect(originBlobGets(origin.requests.slice(start)).get(hex)).toBe(1);
    await expectOllamaModel(r.dir);
    const staged = await readdir(join(r.dir, 'ollama', 'blobs')).catch(() => [] as string[]);
    expect(staged).not.toContain(`sha256-${sha256(forged)}`);
  } finally {
    await mirror.close();
  }
});

/** The Ollama model of `lines()[0]` in a run's store, byte for byte. */
async function expectOllamaModel(dir: string): Promise<void> {
  const blobs = join(dir, 'ollama', 'blobs');
  expect((await readdir(blobs)).sort()).toEqual(
    [ollamaModel.config, ...ollamaModel.layers].map((b) => `sha256-${sha256(b.bytes)}`).sort(),
  );
  for (const blob of [ollamaModel.config, ...ollamaModel.layers])
    expect((await readFile(join(blobs, `sha256-${sha256(blob.bytes)}`))).equals(blob.bytes)).toBe(true);
  const manifest = join(dir, 'ollama', 'manifests', originHost(), 'team', 'tiny', 'v1');
  expect((await readFile(manifest)).equals(ollamaModel.manifest)).toBe(true);
}

test('a mirror that serves the manifest but lost a blob (blob unknown): the origin serves it, one warning', async () => {
  // A plain registry holding the model under hub/, whose weights were then removed from its
  // storage: it still lists the manifest, and answers the blob 404 BLOB_UNKNOWN.
  const plain = await startRegistry();
  try {
    await pushModel(plain.url, 'hub/team/tiny', 'v1', ollamaModel);
    const hex = sha256(ollamaModel.layers[0]!.bytes);
    await rm(join(plain.storage, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex), {
      recursive: true,
    });
    const front = await startRecordingProxy(plain.url);
    try {
      const start = origin.requests.length;
      const r = await run(`${front.url}/hub`, [lines()[0]!]);
      expect(r.code).toBe(0);
      const mirrorHost = new URL(front.url).host;
      const warnings = mirrorWarnings(r.stderr);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`registry-mirror: ${mirrorHost}/hub/team/tiny@sha256:${hex} `);
      expect(warnings[0]).toContain(`; pulling team/tiny from ${originHost()}`);
      // The manifest came from the mirror; the lost blob from the origin, once.
      expect(front.requests.some((q) => q.url === '/v2/hub/team/tiny/manifests/v1')).toBe(true);
      expect(origin.requests.slice(start).filter((q) => q.url.includes('/manifests/'))).toEqual([]);
      expect(originBlobGets(origin.requests.slice(start)).get(hex)).toBe(1);
      await expectOllamaModel(r.dir);
    } finally {
      await front.close();
    }
  } finally {
    await plain.close();
  }
});

test('a mirror whose blobs redirect to storage that refuses connections: the origin serves them, one warning for the run', async () => {
  const plain = await startRegistry();
  const dead = await startServer((_req, res) => void res.writeHead(500).end());
  const deadUrl = dead.url;
  await dead.close();
  try {
    await pushModel(plain.url, 'hub/team/tiny', 'v1', ollamaModel);
    // Blob GETs are sent on to a storage host that is down, as a registry redirects to its CDN.
    const front = await startRecordingProxy(plain.url, {
      answer: (req, res) => {
        if (req.method !== 'GET' || !req.url?.includes('/blobs/sha256:')) return false;
        res.writeHead(307, { location: `${deadUrl}/storage${req.url}` }).end();
        return true;
      },
    });
    try {
      const r = await run(`${front.url}/hub`, [lines()[0]!]);
      expect(r.code).toBe(0);
      const warnings = mirrorWarnings(r.stderr);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`registry-mirror ${front.url}/hub cannot be reached (`);
      expect(warnings[0]).toContain(`pulling from ${originHost()} instead for the rest of this run`);
      await expectOllamaModel(r.dir);
    } finally {
      await front.close();
    }
  } finally {
    await plain.close();
  }
});

test('a mirror serving another manifest for a pinned digest is refused, and the origin serves it', async () => {
  const hex = ollamaDigest.slice('sha256:'.length);
  const other = generateModel(10 * KiB).manifest;
  const mirror = await lyingMirror((url) => (url.endsWith(`/manifests/sha256:${hex}`) ? other : undefined));
  try {
    const r = await run(mirror.url, [`ollama:${originHost()}/team/tiny@${ollamaDigest}`]);
    expect(r.code).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('registry-mirror'));
    expect(warnings).toEqual([
      expect.stringContaining(
        `has digest sha256:${sha256(other)}, not the requested sha256:${hex}; pulling team/tiny from ${originHost()}`,
      ),
    ]);
    const blobs = await readdir(join(r.dir, 'ollama', 'blobs'));
    expect(blobs).toContain(`sha256-${sha256(ollamaModel.layers[0]!.bytes)}`);
  } finally {
    await mirror.close();
  }
});

test('pinned lines through a warm mirror: nothing reaches the origin', async () => {
  const before = origin.requests.length;
  const r = await run(cache.url, [
    `ollama:${originHost()}/team/tiny@${ollamaDigest}`,
    `oci:${originHost()}/team/pack@sha256:${pack.hex}`,
  ]);
  expect(r.code).toBe(0);
  expect(r.stderr).not.toContain('registry-mirror');
  const weightsLayer = ollamaModel.layers[0]!.bytes;
  const blob = join(r.dir, 'ollama', 'blobs', `sha256-${sha256(weightsLayer)}`);
  expect((await readFile(blob)).equals(weightsLayer)).toBe(true);
  const folder = join(r.dir, 'oci', 'models', originHost(), 'team', 'pack', pack.hex);
  expect((await readFile(join(folder, 'tiny.gguf'))).equals(weights)).toBe(true);
  expect(origin.requests.slice(before)).toEqual([]);
});
