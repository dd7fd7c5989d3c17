import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Clock, systemClock } from '../../../src/clock.js';
import { fetchBlobs } from '../../../src/download/engine.js';
import { isModelPullError } from '../../../src/errors.js';
import type { HttpClient } from '../../../src/http/client.js';
import type { SourceContext } from '../../../src/plan.js';
import { splitLine } from '../../../src/refs/line.js';
import { MemoryLogger } from '../../../src/report/logger.js';
import { parseOllamaRef } from '../../../src/sources/ollama/ref.js';
import { createOllamaSource, type OllamaSourceOptions } from '../../../src/sources/ollama/source.js';
import { FAST_RETRY, testClient } from '../../helpers/engine.js';
import { startServer, tempDir } from '../../helpers/http.js';
import {
  descriptor,
  type GeneratedModel,
  generateModel,
  manifestOf,
  sha256,
} from '../../helpers/registry.js';
import { type Front, type FrontOptions, startFront } from '../../helpers/registry-front.js';

// A front that behaves like registry.ollama.ai: anonymous 401 with a Bearer challenge, a token
// realm, and blob GETs answered 307 to presigned URLs on another origin (the "CDN").
const REPO = 'team/m';
let http: HttpClient;
let model: GeneratedModel;
let store: { path: string; remove(): Promise<void> };
const fronts: Front[] = [];
const logs: MemoryLogger[] = [];

beforeAll(async () => {
  http = testClient();
  model = generateModel(200 * 1024);
  store = await tempDir('model-pull-ollama-front-');
});

afterEach(async () => {
  for (const f of fronts.splice(0)) await f.close();
});

afterAll(async () => {
  await http?.close();
  await store?.remove();
});

async function front(options: Partial<FrontOptions> = {}): Promise<Front> {
  const f = await startFront({ repo: REPO, tag: 'v1', model, ...options });
  fronts.push(f);
  return f;
}

function ctx(clock: Clock = systemClock): SourceContext {
  const log = new MemoryLogger();
  logs.push(log);
  return { http, retry: FAST_RETRY, log, clock };
}

const refOn = (f: Front, suffix = ':v1') =>
  parseOllamaRef(splitLine(`ollama:${f.registry.url}/${REPO}${suffix}`));
const hostOf = (f: Front) => new URL(f.registry.url).host;
const source = (extra: Partial<OllamaSourceOptions> = {}) =>
  createOllamaSource({ modelsRoot: store.path, ...extra });

async function failure(promise: Promise<unknown>, code: string): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isModelPullError(error)).toBe(true);
  expect((error as { code: string }).code).toBe(code);
  return (error as Error).message;
}

describe('ollama source behind a Bearer challenge and a redirecting CDN', () => {
  test('pulls through the challenge; no credential reaches the CDN; expired URLs are re-located', async () => {
    const f = await front({ expireFirstUrl: true, expiresIn: 300 });
    const s = source();
    const entry = await s.plan(refOn(f), await s.identify(refOn(f), ctx()), ctx());
    const results = await fetchBlobs(entry.blobs, {
      http,
      concurrency: 4,
      connections: 2,
      verify: 'full',
      retry: FAST_RETRY,
    });
    await entry.commit();

    const all = [model.config, ...model.layers];
    for (const b of all) {
      expect(sha256(await readFile(join(store.path, 'blobs', `sha256-${sha256(b.bytes)}`)))).toBe(
        sha256(b.bytes),
      );
    }
    const manifestFile = join(store.path, 'manifests', hostOf(f), 'team', 'm', 'v1');
    expect((await readFile(manifestFile)).equals(model.manifest)).toBe(true);
    expect(results.reduce((n, r) => n + r.downloadedBytes, 0)).toBe(entry.size);

    // The CDN saw every blob, twice (the first signature "expired"), and never an Authorization.
    expect(f.cdn.requests.length).toBeGreaterThanOrEqual(2 * all.length);
    expect(f.cdn.requests.filter((r) => r.headers.authorization !== undefined)).toEqual([]);
    // One token for the first round, then at most one renewal per re-located blob (blobs that
    // re-locate at the same moment share one; how many do depends on timing).
    expect(f.tokens.length).toBeGreaterThanOrEqual(2);
    expect(f.tokens.length).toBeLessThanOrEqual(1 + all.length);
    const blobGets = f.registry.requests.filter((r) => r.url.includes('/blobs/'));
    const renewed = f.tokens.slice(1).map((t) => `Bearer ${t}`);
    for (const b of all) {
      const asked = blobGets.filter((r) => r.url.endsWith(sha256(b.bytes)));
      expect(asked.length).toBeGreaterThanOrEqual(2);
      expect(renewed).toContain(asked.at(-1)!.headers.authorization);
    }
    // The token request itself is anonymous, and tokens never reach a log line.
    const tokenRequests = f.registry.requests.filter((r) => r.url.startsWith('/token'));
    expect(tokenRequests.map((r) => r.headers.authorization)).toEqual(f.tokens.map(() => undefined));
    expect(tokenRequests[0]!.url).toBe(
      `/token?service=front&scope=${encodeURIComponent(`repository:${REPO}:pull`)}`,
    );
    const lines = logs.flatMap((l) => l.lines).join('\n');
    for (const token of f.tokens) expect(lines).not.toContain(token);
  });

  test('basic credentials go to the realm only; access_token is accepted', async () => {
    const f = await front({ accessTokenField: true });
    const s = source({ basicAuth: { host: hostOf(f), username: 'ci', password: 's3cret' } });
    const identity = await s.identify(refOn(f), ctx());
    const entry = await s.plan(refOn(f), identity, ctx());
    const location = await entry.blobs[0]!.locate();
    const basic = `Basic ${Buffer.from('ci:s3cret').toString('base64')}`;
    const withBasic = f.registry.requests.filter((r) => r.headers.authorization === basic).map((r) => r.url);
    expect(withBasic).toHaveLength(1);
    expect(withBasic[0]).toMatch(/^\/token\?/);
    expect(location).toEqual({
      url: `${f.registry.url}/v2/${REPO}/blobs/sha256:${sha256(model.config.bytes)}`,
      credentials: { origin: f.registry.url, headers: { authorization: `Bearer ${f.tokens[0]}` } },
    });
  });

  test('a plan from a lock file learns the auth with one HEAD that stops before the CDN', async () => {
    const f = await front();
    const identity = await source().identify(refOn(f), ctx());
    const fresh = source(); // a new process: the identity carries the manifest, no session yet
    const count = f.registry.requests.length;
    const entry = await fresh.plan(refOn(f), identity, ctx());
    expect(f.registry.requests.length).toBe(count);
    const location = await entry.blobs[2]!.locate();
    const hex = sha256(model.layers[1]!.bytes);
    expect(f.registry.requests.slice(count).map((r) => `${r.method} ${r.url.split('?')[0]}`)).toEqual([
      `HEAD /v2/${REPO}/blobs/sha256:${hex}`,
      'GET /token',
      `HEAD /v2/${REPO}/blobs/sha256:${hex}`,
    ]);
    expect(location.credentials?.headers.authorization).toBe(`Bearer ${f.tokens[1]}`);
    expect(f.cdn.requests).toEqual([]);
  });

  test('an expired token is renewed before locate() hands it out', async () => {
    let now = 1_000_000;
    const f = await front({ expiresIn: 60 });
    const s = source();
    const clock = { now: () => now, sleep: systemClock.sleep };
    const entry = await s.plan(refOn(f), await s.identify(refOn(f), ctx(clock)), ctx(clock));
    const first = await entry.blobs[1]!.locate();
    expect(first.credentials?.headers.authorization).toBe(`Bearer ${f.tokens[0]}`);
    now += 61_000;
    const second = await entry.blobs[1]!.locate();
    expect(f.tokens).toHaveLength(2);
    expect(second.credentials?.headers.authorization).toBe(`Bearer ${f.tokens[1]}`);
  });

  test('a token the registry stops accepting is replaced after the 401, once', async () => {
    const f = await front();
    const s = source();
    await s.identify(refOn(f), ctx());
    f.revokeTokens();
    const identity = await s.identify(refOn(f), ctx());
    expect(identity.pin).toBe(`sha256:${sha256(model.manifest)}`);
    expect(f.tokens).toHaveLength(2);
  });

  test('a registry that refuses its own tokens fails with ERR_AUTH, without a loop', async () => {
    const f = await front({ acceptTokens: false });
    const message = await failure(source().identify(refOn(f), ctx()), 'ERR_AUTH');
    expect(message).toBe(`registry ${hostOf(f)} refused access to ${REPO} after authenticating (HTTP 401)`);
    expect(f.tokens).toHaveLength(1);
    for (const token of f.tokens) expect(message).not.toContain(token);
  });

  test('a registry asking for Basic gets the credentials on its own origin, or a clear refusal', async () => {
    const basic = `Basic ${Buffer.from('ci:pw').toString('base64')}`;
    const server = await startServer((req, res) => {
      if (req.headers.authorization !== basic) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="Registry Realm"' });
        return void res.end();
      }
      res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' });
      res.end(model.manifest);
    });
    try {
      const ref = parseOllamaRef(splitLine(`ollama:${server.url}/${REPO}:v1`));
      const basicAuth = { host: new URL(server.url).host, username: 'ci', password: 'pw' };
      const identity = await source({ basicAuth }).identify(ref, ctx());
      expect(identity.pin).toBe(`sha256:${sha256(model.manifest)}`);
      expect(server.requests.map((r) => r.headers.authorization)).toEqual([undefined, basic]);
      const message = await failure(source().identify(ref, ctx()), 'ERR_AUTH');
      expect(message).toBe(
        `registry ${new URL(server.url).host} requires authentication for ${REPO} (offered: basic)`,
      );
    } finally {
      await server.close();
    }
  });

  test('credentials for one registry never reach another registry or its realm', async () => {
    const f = await front();
    const s = source({ basicAuth: { host: 'ghcr.example:443', username: 'ci', password: 's3cret' } });
    await s.identify(refOn(f), ctx());
    const sent = f.registry.requests.map((r) => r.headers.authorization ?? '');
    expect(sent.filter((a) => a.startsWith('Basic '))).toEqual([]);
    expect(f.tokens.length).toBeGreaterThanOrEqual(1);
  });

  test('a realm on another host is refused before anything is sent there', async () => {
    const other = await front();
    const f = await front({ realm: () => `${other.registry.url}/token` });
    const message = await failure(source().identify(refOn(f), ctx()), 'ERR_AUTH');
    expect(message).toBe(
      `registry ${hostOf(f)} sent a token realm on another host (${hostOf(other)}); refused: add that host to allowed-realm-hosts if you trust it`,
    );
    expect(other.registry.requests).toEqual([]);
  });

  test('an allowed realm host must still be https', async () => {
    const other = await front();
    const f = await front({ realm: () => `http://localhost:${new URL(other.registry.url).port}/token` });
    const s = source({
      allowedRealmHosts: ['localhost'],
      basicAuth: { host: hostOf(f), username: 'u', password: 'p' },
    });
    const message = await failure(s.identify(refOn(f), ctx()), 'ERR_AUTH');
    expect(message).toBe(
      `registry ${hostOf(f)} sent a token realm on another host (localhost:${new URL(other.registry.url).port}); refused: it is listed in allowed-realm-hosts but is not https`,
    );
    expect(other.registry.requests).toEqual([]);
  });

  test('a manifest that does not hash to the pinned digest is refused', async () => {
    const f = await front({ anyDigest: true });
    const pin = 'e'.repeat(64);
    const message = await failure(
      source().identify(refOn(f, `@sha256:${pin}`), ctx()),
      'ERR_DIGEST_MISMATCH',
    );
    expect(message).toBe(
      `the manifest served for ${hostOf(f)}/${REPO}:latest has digest sha256:${sha256(model.manifest)}, not the requested sha256:${pin}`,
    );
  });

  test('a recorded manifest that does not match its digest is refused by plan()', async () => {
    const f = await front();
    const s = source();
    const identity = await s.identify(refOn(f), ctx());
    const forged = { ...identity, detail: { manifest: `${identity.detail!.manifest as string} ` } };
    const message = await failure(s.plan(refOn(f), forged, ctx()), 'ERR_DIGEST_MISMATCH');
    expect(message).toBe(
      `the recorded manifest of ${hostOf(f)}/${REPO}:v1 hashes to sha256:${sha256(`${model.manifest.toString()} `)}, not its recorded digest ${identity.pin}`,
    );
  });

  const bad = (edit: (doc: Record<string, unknown>) => void): Buffer => {
    const doc = JSON.parse(manifestOf(model.config, model.layers).toString()) as Record<string, unknown>;
    edit(doc);
    return Buffer.from(JSON.stringify(doc));
  };
  const layers = (doc: Record<string, unknown>) => doc.layers as Record<string, unknown>[];

  test.each<[string, () => Buffer, (f: Front) => string]>([
    [
      'a bad digest',
      () =>
        bad((d) => {
          layers(d)[1]!.digest = 'sha256:../../../etc/passwd';
        }),
      (f) =>
        `manifest of ${hostOf(f)}/${REPO}:v1 is invalid: layer 2 has an invalid digest "sha256:../../../etc/passwd" (expected sha256: and 64 lowercase hex)`,
    ],
    [
      'a duplicate layer',
      () => bad((d) => void layers(d).push(descriptor(model.layers[0]!))),
      (f) =>
        `manifest of ${hostOf(f)}/${REPO}:v1 is invalid: layer 4 repeats the digest of layer 1 (sha256:${sha256(model.layers[0]!.bytes)})`,
    ],
    [
      'an absurd size',
      () =>
        bad((d) => {
          layers(d)[0]!.size = 2 ** 50 + 1;
        }),
      (f) =>
        `manifest of ${hostOf(f)}/${REPO}:v1 is invalid: layer 1 has an absurd size ${2 ** 50 + 1} (over 2^50 bytes)`,
    ],
  ])('a manifest with %s is refused', async (_what, make, expected) => {
    const f = await front({ manifest: make() });
    const message = await failure(source().identify(refOn(f), ctx()), 'ERR_BAD_MANIFEST');
    expect(message).toBe(expected(f));
    expect(f.registry.requests.filter((r) => r.url.includes('/blobs/'))).toEqual([]);
  });
});
