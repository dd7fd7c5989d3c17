import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createNoCache } from '../../../src/cache/client.js';
import { pull } from '../../../src/pull.js';
import { MemoryLogger } from '../../../src/report/logger.js';
import { buildSettings } from '../../../src/settings/settings.js';
import { sourceOptions } from '../../../src/sources/descriptor.js';
import { DEFAULT_SOURCES } from '../../../src/sources/index.js';
import { type TestServer, tempDir } from '../../helpers/http.js';
import { FILEPATH, gguf, modelPack, pushArtifact } from '../../helpers/oci-artifacts.js';
import { type RealRegistry, sha256, startRecordingProxy, startRegistry } from '../../helpers/registry.js';
import { type Front, startFront } from '../../helpers/registry-front.js';

// Private registries: Bearer tokens from the registry's realm and Basic credentials bound to
// `registry-host`; blobs redirected to storage on another origin get neither.

const weights = gguf(256 * 1024);
const artifact = modelPack([
  {
    mediaType: 'application/vnd.cncf.model.weight.v1.raw',
    bytes: weights,
    annotations: { [FILEPATH]: 'model.gguf' },
  },
]);
const USER = 'ci-bot';
const PASSWORD = 's3cret-registry-password';
const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  dir = await tempDir('model-pull-oci-auth-');
});
afterAll(async () => dir?.remove());

async function pullLine(line: string, inputs: Record<string, string> = {}) {
  const ociDir = join(dir.path, `oci-${sha256(line).slice(0, 8)}`);
  const settings = buildSettings(
    { models: line, 'oci-dir': ociDir, cache: 'false', retries: '1', ...inputs },
    { env: {}, home: dir.path, nameOf: (n) => n, sourceOptions: sourceOptions(DEFAULT_SOURCES) },
  );
  const log = new MemoryLogger();
  const report = await pull(settings, { sources: DEFAULT_SOURCES, log, cache: createNoCache() });
  return { report, log, ociDir };
}

describe('Bearer: a token from the realm, none to the CDN', () => {
  let front: Front;
  beforeAll(async () => {
    front = await startFront({ repo: 'org/private', tag: 'v1', model: artifact });
  });
  afterAll(async () => front?.close());

  test('the token goes to the registry only; the presigned CDN URL gets no Authorization', async () => {
    const host = new URL(front.registry.url).host;
    const { report } = await pullLine(`oci:${host}/org/private:v1`);
    const model = report.models[0]!;
    expect(model.error).toBeUndefined();
    expect(sha256(await readFile(model.output!.path))).toBe(sha256(weights));
    expect(front.tokens.length).toBeGreaterThan(0);
    const blobGets = front.cdn.requests.filter((r) => r.method === 'GET');
    expect(blobGets.length).toBeGreaterThanOrEqual(2); // config and weights, through the CDN
    expect(blobGets.filter((r) => r.headers.authorization !== undefined)).toEqual([]);
    const withToken = front.registry.requests.filter((r) => r.headers.authorization?.startsWith('Bearer '));
    expect(withToken.length).toBeGreaterThan(0);
  });
});

/**
 * A registry that wants Basic credentials (as `htpasswd` auth does) in front of the real one, and
 * that sends blob GETs to storage on another origin (as S3-backed registries do).
 */
async function startBasicFront(target: string): Promise<{ front: TestServer; storage: TestServer }> {
  const storage = await startRecordingProxy(target, {
    path: (url) => `/v2/org/basic/blobs/${new URL(url, 'http://storage').pathname.split('/').pop()}`,
  });
  const front = await startRecordingProxy(target, {
    answer(req, res) {
      if (req.headers.authorization !== basic) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="registry"' }).end();
        return true;
      }
      const blob = /^\/v2\/org\/basic\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '');
      if (!blob || req.method !== 'GET') return false;
      res.writeHead(307, { location: `${storage.url}/storage/${blob[1]}?X-Amz-Signature=abc` }).end();
      return true;
    },
  });
  return { front, storage };
}

describe('Basic: credentials bound to registry-host', () => {
  let registry: RealRegistry;
  let front: TestServer;
  let storage: TestServer;
  beforeAll(async () => {
    registry = await startRegistry();
    await pushArtifact(registry.url, 'org/basic', 'v1', artifact);
    ({ front, storage } = await startBasicFront(registry.url));
  });
  afterAll(async () => {
    await front?.close();
    await storage?.close();
    await registry?.close();
  });

  test('sent to that registry after its challenge, never to the storage it redirects to', async () => {
    const host = new URL(front.url).host;
    const { report, log } = await pullLine(`oci:${host}/org/basic:v1`, {
      'registry-host': host,
      'registry-username': USER,
      'registry-password': PASSWORD,
    });
    const model = report.models[0]!;
    expect(model.error).toBeUndefined();
    expect(sha256(await readFile(model.output!.path))).toBe(sha256(weights));
    expect(storage.requests.length).toBeGreaterThanOrEqual(2);
    expect(storage.requests.filter((r) => r.headers.authorization !== undefined)).toEqual([]);
    expect(front.requests.filter((r) => r.headers.authorization === basic).length).toBeGreaterThan(0);
    expect(log.lines.join('\n')).not.toContain(PASSWORD);
  });

  test('without credentials for that host, the challenge fails the model with a clear error', async () => {
    const host = new URL(front.url).host;
    const mark = front.requests.length;
    const { report } = await pullLine(`oci:${host}/org/basic:v1`, {
      'registry-host': 'other.example',
      'registry-username': USER,
      'registry-password': PASSWORD,
    });
    expect(report.models[0]!.error?.message).toBe(
      `registry ${host} requires authentication for org/basic (offered: basic)`,
    );
    expect(front.requests.length).toBeGreaterThan(mark);
    expect(front.requests.slice(mark).filter((r) => r.headers.authorization !== undefined)).toEqual([]);
  });
});
