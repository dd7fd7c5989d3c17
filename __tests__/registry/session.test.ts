import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock } from '../../src/clock.js';
import { fetchBlobs } from '../../src/download/engine.js';
import { type RegistryCall, RegistryClient } from '../../src/registry/client.js';
import { MANIFEST_OR_INDEX_ACCEPT, MediaTypes, parseManifestOrIndex } from '../../src/registry/manifest.js';
import { MemoryLogger } from '../../src/report/logger.js';
import { FAST_RETRY, testClient } from '../helpers/engine.js';
import { startServer, tempDir } from '../helpers/http.js';
import {
  pushBlob,
  type RealRegistry,
  send,
  sha256,
  startRecordingProxy,
  startRegistry,
} from '../helpers/registry.js';

// The OCI distribution client on its own, against the real CNCF registry, with an artifact that
// is not Ollama's: a CNCF ModelPack-style manifest (its own config and layer media types, file
// names in annotations) behind an image index, as a second OCI source will meet them.

const ARTIFACT = 'application/vnd.cncf.model.manifest.v1+json';
const CONFIG = 'application/vnd.cncf.model.config.v1+json';
const WEIGHT = 'application/vnd.cncf.model.weight.v1.raw';
const FILEPATH = 'org.cncf.model.filepath';
const REPO = 'models/tiny';

let registry: RealRegistry;
let http: ReturnType<typeof testClient>;
const config = Buffer.from(JSON.stringify({ descriptor: { name: 'tiny' }, modelfs: { type: 'layers' } }));
const weights = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) % 251));
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaTypes.OciManifest,
    artifactType: ARTIFACT,
    config: { mediaType: CONFIG, digest: `sha256:${sha256(config)}`, size: config.length },
    layers: [
      {
        mediaType: WEIGHT,
        digest: `sha256:${sha256(weights)}`,
        size: weights.length,
        annotations: { [FILEPATH]: 'model.safetensors' },
      },
    ],
  }),
);
const index = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaTypes.OciIndex,
    manifests: [
      {
        mediaType: MediaTypes.OciManifest,
        artifactType: ARTIFACT,
        digest: `sha256:${sha256(manifest)}`,
        size: manifest.length,
      },
    ],
  }),
);

async function put(path: string, type: string, body: Buffer): Promise<void> {
  const answer = await send('PUT', `${registry.url}/v2/${REPO}/${path}`, { 'content-type': type }, body);
  if (answer.status !== 201) throw new Error(`PUT ${path}: ${answer.status} ${answer.body.toString()}`);
}

beforeAll(async () => {
  registry = await startRegistry();
  http = testClient();
  for (const blob of [config, weights]) await pushBlob(registry.url, REPO, blob);
  await put(`manifests/sha256:${sha256(manifest)}`, MediaTypes.OciManifest, manifest);
  await put('manifests/v1', MediaTypes.OciIndex, index);
});
afterAll(async () => {
  await http?.close();
  await registry?.close();
});

const call = (): RegistryCall => ({ http, retry: FAST_RETRY, log: new MemoryLogger(), clock: systemClock });

test('an index, then its manifest by digest, then a blob through the engine', async () => {
  const proxy = await startRecordingProxy(registry.url);
  const dir = await tempDir();
  try {
    const host = new URL(proxy.url).host;
    const session = new RegistryClient().session({ origin: proxy.url, host, repository: REPO });
    const top = await session.getManifest(call(), 'v1', {
      name: `${host}/${REPO}:v1`,
      accept: MANIFEST_OR_INDEX_ACCEPT,
    });
    expect(top.equals(index)).toBe(true);
    const parsed = parseManifestOrIndex(top, REPO);
    if (parsed.kind !== 'index') throw new Error('expected an index');
    expect(parsed.manifests.map((m) => [m.artifactType, m.hex])).toEqual([[ARTIFACT, sha256(manifest)]]);

    const chosen = parsed.manifests[0]!.hex;
    const bytes = await session.getManifest(call(), `sha256:${chosen}`, { name: REPO, expectHex: chosen });
    const image = parseManifestOrIndex(bytes, REPO);
    if (image.kind !== 'manifest') throw new Error('expected a manifest');
    expect(image.artifactType).toBe(ARTIFACT);
    expect(image.config).toEqual({ mediaType: CONFIG, hex: sha256(config), size: config.length });
    expect(image.layers).toEqual([
      {
        mediaType: WEIGHT,
        hex: sha256(weights),
        size: weights.length,
        annotations: { [FILEPATH]: 'model.safetensors' },
      },
    ]);

    const hex = sha256(weights);
    const head = await session.request(call(), `blobs/sha256:${hex}`, { method: 'HEAD' });
    await head.body.dump();
    expect([head.status, Number(head.headers['content-length'])]).toEqual([200, weights.length]);

    const target = join(dir.path, 'weights');
    const [result] = await fetchBlobs(
      [
        {
          digest: { algorithm: 'sha256', hex },
          size: weights.length,
          label: 'weights',
          target,
          ingestDir: join(dir.path, 'ingest'),
          locate: async () => (await session.blobLocation(call(), hex, undefined)).location,
        },
      ],
      { http, concurrency: 1, connections: 2, verify: 'full', retry: FAST_RETRY },
    );
    expect(result!.downloadedBytes).toBe(weights.length);
    expect(sha256(await readFile(target))).toBe(hex);
    // What went over the wire: the two manifests asked for with the right Accept, no token dance
    // (the registry is open), the HEAD probe, then the blob.
    const asked = proxy.requests.map((r) => `${r.method} ${r.url}`);
    expect(asked.slice(0, 2)).toEqual([
      `GET /v2/${REPO}/manifests/v1`,
      `GET /v2/${REPO}/manifests/sha256:${chosen}`,
    ]);
    expect(proxy.requests[0]!.headers.accept).toBe(MANIFEST_OR_INDEX_ACCEPT);
    expect(asked).toContain(`HEAD /v2/${REPO}/blobs/sha256:${hex}`);
    expect(asked.filter((a) => a.startsWith('GET /v2/models/tiny/blobs/')).length).toBeGreaterThanOrEqual(1);
  } finally {
    await proxy.close();
    await dir.remove();
  }
});

test('a session for pushing asks for pull,push here and pull where it mounts from; sessions are shared', async () => {
  const server = await startServer((req, res) => {
    if (req.url?.startsWith('/token')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ token: 't1', expires_in: 300 }));
    }
    if (req.headers.authorization !== 'Bearer t1') {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${server.url}/token",service="reg"` });
      return void res.end();
    }
    res.writeHead(200, { 'content-length': '0' }).end();
  });
  try {
    const client = new RegistryClient();
    const address = { origin: server.url, host: new URL(server.url).host, repository: REPO };
    expect(client.session(address)).toBe(client.session(address));
    const pusher = client.session(address, ['pull', 'push'], ['models/base']);
    expect(pusher).not.toBe(client.session(address));
    const answer = await pusher.request(call(), 'blobs/uploads/', { method: 'HEAD' });
    await answer.body.dump();
    expect(answer.status).toBe(200);
    expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      `HEAD /v2/${REPO}/blobs/uploads/`,
      `GET /token?service=reg&scope=${encodeURIComponent(`repository:${REPO}:pull,push`)}&scope=${encodeURIComponent('repository:models/base:pull')}`,
      `HEAD /v2/${REPO}/blobs/uploads/`,
    ]);
  } finally {
    await server.close();
  }
});
