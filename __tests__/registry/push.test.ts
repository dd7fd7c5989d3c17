import { randomBytes } from 'node:crypto';
import { stat, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { systemClock } from '../../src/clock.js';
import type { ModelPullError } from '../../src/errors.js';
import { type RegistryCall, RegistryClient } from '../../src/registry/client.js';
import { MediaTypes } from '../../src/registry/manifest.js';
import { type LocalBlob, type PushTuning, pushBlob, putManifest } from '../../src/registry/push.js';
import type { RegistrySession } from '../../src/registry/session.js';
import { noUploadRecords, uploadRecords } from '../../src/registry/uploads.js';
import { MemoryLogger } from '../../src/report/logger.js';
import { FAST_RETRY, testClient } from '../helpers/engine.js';
import { forward, relay, startServer, type TestServer, tempDir } from '../helpers/http.js';
import {
  type RealRegistry,
  send,
  sha256,
  startRecordingProxy,
  startRegistry,
  storedBlobs,
} from '../helpers/registry.js';
import { startTokenFront } from '../helpers/token-front.js';

// OCI distribution push against the real CNCF registry: HEAD first, one PUT for small blobs,
// PATCH chunks for large ones (resumed after a cut connection and after a killed run, from the
// registry's own count), cross-repository mounts, the manifest last; credentials only where
// they belong (htpasswd Basic at the registry, Basic at a token realm for push scopes).

const USER = { username: 'pusher', password: 'pw-s3cret' };
const KiB = 1024;
const CHUNKED: PushTuning = { monolithicMax: 64 * KiB, chunkSize: 256 * KiB, uploads: noUploadRecords };

let http: ReturnType<typeof testClient>;
let dir: { path: string; remove(): Promise<void> };
beforeAll(async () => {
  http = testClient();
  dir = await tempDir('model-pull-push-');
});
afterAll(async () => {
  await http.close();
  await dir.remove();
});

const call = (log = new MemoryLogger(), signal?: AbortSignal): RegistryCall => ({
  http,
  retry: FAST_RETRY,
  log,
  clock: systemClock,
  ...(signal ? { signal } : {}),
});

async function localBlob(size: number, label: string): Promise<LocalBlob & { bytes: Buffer }> {
  const bytes = randomBytes(size);
  const path = join(dir.path, `${label}-${sha256(bytes).slice(0, 8)}`);
  await writeFile(path, bytes);
  return { hex: sha256(bytes), size, path, label, bytes };
}

function pushSession(origin: string, repository: string, basic = true): RegistrySession {
  const host = new URL(origin).host;
  const client = new RegistryClient(basic ? { basicAuth: { host, ...USER } } : {});
  return client.session({ origin, host, repository }, ['pull', 'push']);
}

const basicHeader = `Basic ${Buffer.from(`${USER.username}:${USER.password}`).toString('base64')}`;
const asked = (server: TestServer) =>
  server.requests.map(
    (r) => `${r.method} ${new URL(r.url, 'http://x').pathname.replace(/uploads\/[^/]+$/, 'uploads/<id>')}`,
  );

describe('against a registry with htpasswd Basic auth', () => {
  let registry: RealRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ htpasswd: USER });
  });
  afterAll(() => registry.close());

  test('a small blob in one PUT, a large one in PATCH chunks, the manifest last; pushed again, nothing is sent', async () => {
    const proxy = await startRecordingProxy(registry.url);
    try {
      const config = await localBlob(300, 'config');
      const weights = await localBlob(1024 * KiB + 123, 'weights');
      const session = pushSession(proxy.url, 'team/model');
      const results = [];
      for (const blob of [config, weights]) results.push(await pushBlob(session, call(), blob, CHUNKED));
      expect(results).toEqual([
        { hex: config.hex, outcome: 'uploaded', sentBytes: 300 },
        { hex: weights.hex, outcome: 'uploaded', sentBytes: weights.size },
      ]);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaTypes.OciManifest,
          config: { mediaType: 'application/vnd.test.config', digest: `sha256:${config.hex}`, size: 300 },
          layers: [
            { mediaType: 'application/vnd.test.layer', digest: `sha256:${weights.hex}`, size: weights.size },
          ],
        }),
      );
      const reported = await putManifest(
        session,
        call(),
        'v1',
        { bytes: manifest, mediaType: MediaTypes.OciManifest },
        'team/model:v1',
      );
      expect(reported).toBe(sha256(manifest));

      // The registry holds the bytes: blobs and the manifest read back verbatim.
      const auth = { authorization: basicHeader };
      const back = await send('GET', `${registry.url}/v2/team/model/blobs/sha256:${weights.hex}`, auth);
      expect(sha256(back.body)).toBe(weights.hex);
      const m = await send('GET', `${registry.url}/v2/team/model/manifests/v1`, {
        ...auth,
        accept: MediaTypes.OciManifest,
      });
      expect(m.body.equals(manifest)).toBe(true);

      // 1 MiB + 123 in 256 KiB chunks: five PATCHes, then the closing PUT with no body.
      const chunks = proxy.requests.filter((r) => r.method === 'PATCH');
      expect(chunks.map((r) => r.headers['content-range'])).toEqual([
        '0-262143',
        '262144-524287',
        '524288-786431',
        '786432-1048575',
        `1048576-${weights.size - 1}`,
      ]);
      expect(asked(proxy).filter((a) => !a.startsWith('PATCH'))).toEqual([
        'HEAD /v2/team/model/blobs/sha256:' + config.hex,
        'HEAD /v2/team/model/blobs/sha256:' + config.hex,
        'POST /v2/team/model/blobs/uploads/',
        'PUT /v2/team/model/blobs/uploads/<id>',
        'HEAD /v2/team/model/blobs/sha256:' + weights.hex,
        'POST /v2/team/model/blobs/uploads/',
        'PUT /v2/team/model/blobs/uploads/<id>',
        'PUT /v2/team/model/manifests/v1',
      ]);
      // The first HEAD learned that the registry wants Basic; nothing went out anonymously after.
      expect(proxy.requests[0]!.headers.authorization).toBeUndefined();
      expect(proxy.requests.slice(1).every((r) => r.headers.authorization === basicHeader)).toBe(true);

      proxy.requests.length = 0;
      const again = [];
      for (const blob of [config, weights]) again.push(await pushBlob(session, call(), blob, CHUNKED));
      expect(again.map((r) => [r.outcome, r.sentBytes])).toEqual([
        ['present', 0],
        ['present', 0],
      ]);
      expect(proxy.requests.map((r) => r.method)).toEqual(['HEAD', 'HEAD']);
      const stored = await storedBlobs(registry);
      expect(stored.uploads).toEqual([]);
      expect(stored.blobs).toEqual([config.hex, weights.hex, sha256(manifest)].sort());
    } finally {
      await proxy.close();
    }
  });

  test('wrong credentials fail with a clear message and send no bytes', async () => {
    const blob = await localBlob(100, 'nope');
    const host = new URL(registry.url).host;
    const session = new RegistryClient({
      basicAuth: { host, username: USER.username, password: 'wrong' },
    }).session({ origin: registry.url, host, repository: 'team/model' }, ['pull', 'push']);
    await expect(pushBlob(session, call(), blob, CHUNKED)).rejects.toMatchObject({
      code: 'ERR_AUTH',
      message: `registry ${host} refused access to team/model after authenticating (HTTP 401)`,
    });
  });

  test('bytes that are not the digest are refused by the registry and named', async () => {
    // The file changes after it was hashed; the push reads the file (not the helper's copy in memory).
    const { bytes: _hashed, ...blob } = await localBlob(5000, 'changed');
    await writeFile(blob.path, randomBytes(5000));
    const session = pushSession(registry.url, 'team/changed');
    const error = (await pushBlob(session, call(), blob, CHUNKED).catch((e: unknown) => e)) as ModelPullError;
    expect(error.code).toBe('ERR_DIGEST_MISMATCH');
    expect(error.message).toBe(
      `${new URL(registry.url).host} refused changed (sha256:${blob.hex}): the bytes it received hash to another digest; was ${blob.path} changed?`,
    );
  });
});

/**
 * Passes everything to the registry, except that the `cutAt`-th PATCH gets only `keep` bytes of
 * its body through before both connections are cut (a network fault mid-upload). Given the real
 * registry, the cut is over once it holds those bytes: later requests wait for that, so the
 * client's status request never races the registry's write of them (see startLateCutProxy).
 */
async function startCuttingProxy(
  upstreamOf: string | RealRegistry,
  cutAt: number,
  keep: number,
): Promise<TestServer> {
  const target = typeof upstreamOf === 'string' ? upstreamOf : upstreamOf.url;
  let patches = 0;
  let cutOver: Promise<void> | undefined;
  return startServer(async (req, res) => {
    await cutOver;
    return new Promise<void>((resolve) => {
      const cut = req.method === 'PATCH' && ++patches === cutAt;
      const upstream = forward(target, req, res, resolve);
      if (!cut) return void req.pipe(upstream);
      let sent = 0;
      req.on('data', (chunk: Buffer) => {
        if (sent >= keep) return;
        const part = chunk.subarray(0, keep - sent);
        sent += part.length;
        // Cut once these bytes are handed to the kernel, which still delivers them.
        upstream.write(part, () => {
          if (sent < keep) return;
          if (typeof upstreamOf !== 'string') cutOver = untilHeld(upstreamOf, req, keep);
          upstream.destroy();
          req.socket.destroy();
          resolve();
        });
      });
    });
  });
}

/** Resolves once the registry's upload that `req` (a PATCH) wrote to holds its first `keep` bytes. */
async function untilHeld(
  registry: RealRegistry,
  req: { url?: string; headers: IncomingMessage['headers'] },
  keep: number,
): Promise<void> {
  const url = req.url ?? '/';
  const id = /\/uploads\/([^/?]+)/.exec(url)![1]!;
  const repository = /^\/v2\/(.+)\/blobs\/uploads\//.exec(url)![1]!;
  const data = join(registry.storage, 'docker/registry/v2/repositories', repository, '_uploads', id, 'data');
  const want = Number(String(req.headers['content-range']).split('-')[0]) + keep;
  for (let tries = 0; tries < 400; tries++) {
    if ((await stat(data).catch(() => undefined))?.size === want) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the registry never held the cut chunk's bytes (${data})`);
}

/**
 * A chunk cut mid-way whose bytes reach the registry late, after the client asked how much the
 * upload holds (a slow network, or a registry that writes them after answering): the `cutAt`-th
 * PATCH's client connection is cut once `keep` bytes arrived; those bytes go on to the registry
 * only once it has answered the next status request (with the count from before them), and the
 * PATCH after that waits until the registry holds them. docker-registry then finds its upload
 * longer than the client's URL says, answers 404 BLOB_UPLOAD_INVALID and cancels the upload.
 */
async function startLateCutProxy(registry: RealRegistry, cutAt: number, keep: number): Promise<TestServer> {
  let patches = 0;
  let late: { url: string; headers: IncomingMessage['headers']; bytes: Buffer } | undefined;
  let held: Promise<void> | undefined;
  const sendLate = (cut: NonNullable<typeof late>) => {
    const upstream = httpRequest(new URL(cut.url, registry.url), {
      method: 'PATCH',
      headers: cut.headers,
      agent: false,
    });
    upstream.on('error', () => {});
    upstream.write(cut.bytes, () => upstream.destroy());
    return untilHeld(registry, cut, cut.bytes.length);
  };
  return startServer(async (req, res) => {
    if (req.method === 'PATCH' && ++patches === cutAt) {
      const chunks: Buffer[] = [];
      let got = 0;
      for await (const chunk of req as AsyncIterable<Buffer>) {
        chunks.push(chunk);
        got += chunk.length;
        if (got >= keep) break;
      }
      late = { url: req.url ?? '/', headers: req.headers, bytes: Buffer.concat(chunks).subarray(0, keep) };
      req.socket.destroy();
      return;
    }
    if (req.method === 'PATCH' && held) await held;
    await relay(registry.url, req, res);
    if (req.method === 'GET' && late) {
      held = sendLate(late);
      late = undefined;
    }
  });
}

/**
 * Uploads as the distribution spec describes them, in memory: PATCH appends (bytes of a cut
 * request are kept), a Content-Range that does not start at the held size is 416, `GET` on an
 * upload says `Range: 0-<last held byte>`, `PUT ?digest=` checks the sha256.
 */
async function startSpecUploads(
  /** Says whether this request finds its upload gone (404, the upload forgotten), as a registry may. */
  drops: (method: string) => boolean = () => false,
): Promise<TestServer & { blobs: Map<string, Buffer> }> {
  const uploads = new Map<string, Buffer[]>();
  const blobs = new Map<string, Buffer>();
  let next = 0;
  const held = (id: string) => uploads.get(id)!.reduce((n, b) => n + b.length, 0);
  const server = await startServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://spec');
    const blob = /^\/v2\/.+\/blobs\/sha256:([0-9a-f]{64})$/.exec(url.pathname);
    if (blob) return void res.writeHead(blobs.has(blob[1]!) ? 200 : 404).end();
    if (req.method === 'POST') {
      const id = `u${++next}`;
      uploads.set(id, []);
      return void res.writeHead(202, { location: `/v2/r/blobs/uploads/${id}` }).end();
    }
    const id = url.pathname.split('/').pop()!;
    if (uploads.has(id) && drops(req.method ?? '')) uploads.delete(id);
    if (!uploads.has(id)) return void res.writeHead(404).end('{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}');
    const range = () => ({ range: `0-${Math.max(0, held(id) - 1)}`, location: `/v2/r/blobs/uploads/${id}` });
    if (req.method === 'GET') return void res.writeHead(204, range()).end();
    if (req.method === 'PATCH') {
      const start = Number(String(req.headers['content-range']).split('-')[0]);
      if (start !== held(id)) return void res.writeHead(416, range()).end();
      await new Promise<void>((resolve) => {
        req.on('data', (c: Buffer) => uploads.get(id)!.push(c));
        req.on('end', resolve);
        req.on('close', resolve);
      });
      return void res.writeHead(202, range()).end();
    }
    if (req.method === 'PUT') {
      for await (const c of req) uploads.get(id)!.push(c as Buffer);
      const bytes = Buffer.concat(uploads.get(id)!);
      const hex = url.searchParams.get('digest')!.slice(7);
      if (sha256(bytes) !== hex) return void res.writeHead(400).end('{"errors":[{"code":"DIGEST_INVALID"}]}');
      blobs.set(hex, bytes);
      uploads.delete(id);
      return void res.writeHead(201, { 'docker-content-digest': `sha256:${hex}` }).end();
    }
    res.writeHead(405).end();
  });
  return Object.assign(server, { blobs });
}

describe('resuming an upload', () => {
  let registry: RealRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(() => registry.close());

  test('a connection cut mid-chunk: the registry says what it holds, the next chunk starts there', async () => {
    const spec = await startSpecUploads();
    const proxy = await startCuttingProxy(spec.url, 2, 100 * KiB);
    try {
      const blob = await localBlob(1024 * KiB, 'cut');
      const result = await pushBlob(pushSession(proxy.url, 'r', false), call(), blob, CHUNKED);
      expect(result).toEqual({ hex: blob.hex, outcome: 'uploaded', sentBytes: blob.size });
      expect(sha256(spec.blobs.get(blob.hex)!)).toBe(blob.hex);
      // One upload; after the cut its status, then the next chunk from the byte the server named.
      expect(proxy.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
      const patches = proxy.requests
        .filter((r) => r.method === 'PATCH')
        .map((r) => r.headers['content-range']);
      expect(patches.slice(0, 3)).toEqual([
        '0-262143',
        '262144-524287',
        `${(256 + 100) * KiB}-${(512 + 100) * KiB - 1}`,
      ]);
      expect(proxy.requests.map((r) => r.method)).toContain('GET');
    } finally {
      await proxy.close();
      await spec.close();
    }
  });

  test('docker-registry drops an upload cut mid-chunk: the blob is sent again in a new one', async () => {
    const proxy = await startCuttingProxy(registry, 2, 100 * KiB);
    try {
      const blob = await localBlob(1024 * KiB, 'dropped');
      const log = new MemoryLogger();
      const result = await pushBlob(pushSession(proxy.url, 'team/cut', false), call(log), blob, CHUNKED);
      expect(result.outcome).toBe('uploaded');
      // Its `_state` no longer matches the bytes it holds: the status answers 404, a new upload starts.
      expect(log.lines).toContain('dropped: the registry dropped the upload; starting it again');
      expect(proxy.requests.filter((r) => r.method === 'POST')).toHaveLength(2);
      const back = await send('GET', `${registry.url}/v2/team/cut/blobs/sha256:${blob.hex}`);
      expect(sha256(back.body)).toBe(blob.hex);
    } finally {
      await proxy.close();
    }
  });

  test('a cut chunk that reaches docker-registry after the status: the PATCH is refused, a new upload starts', async () => {
    const proxy = await startLateCutProxy(registry, 2, 100 * KiB);
    try {
      const blob = await localBlob(1024 * KiB, 'late');
      const log = new MemoryLogger();
      const result = await pushBlob(pushSession(proxy.url, 'team/late', false), call(log), blob, CHUNKED);
      expect(result.outcome).toBe('uploaded');
      // The status still said 256 KiB; the next chunk from there was refused (404), not retried.
      const asked = proxy.requests.map((r) => `${r.method} ${r.headers['content-range'] ?? ''}`.trim());
      expect(asked.slice(0, 7)).toEqual([
        'HEAD',
        'POST',
        'PATCH 0-262143',
        'PATCH 262144-524287',
        'GET',
        'PATCH 262144-524287',
        'POST',
      ]);
      expect(log.lines).toContain('late: the registry dropped the upload; starting it again');
      const back = await send('GET', `${registry.url}/v2/team/late/blobs/sha256:${blob.hex}`);
      expect(sha256(back.body)).toBe(blob.hex);
    } finally {
      await proxy.close();
    }
  });

  test('an upload dropped at the closing PUT is sent again in a new one; dropped at every chunk, the push fails', async () => {
    let puts = 0;
    const spec = await startSpecUploads((method) => method === 'PUT' && ++puts === 1);
    try {
      const blob = await localBlob(600 * KiB, 'closed');
      const log = new MemoryLogger();
      const result = await pushBlob(pushSession(spec.url, 'r', false), call(log), blob, CHUNKED);
      expect(result).toEqual({ hex: blob.hex, outcome: 'uploaded', sentBytes: 2 * blob.size });
      expect(log.lines).toContain('closed: the registry dropped the upload; starting it again');
      expect(spec.requests.map((r) => r.method)).toEqual([
        ...['HEAD', 'POST', 'PATCH', 'PATCH', 'PATCH', 'PUT'],
        ...['POST', 'PATCH', 'PATCH', 'PATCH', 'PUT'],
      ]);
      expect(sha256(spec.blobs.get(blob.hex)!)).toBe(blob.hex);
    } finally {
      await spec.close();
    }
    const refusing = await startSpecUploads((method) => method === 'PATCH');
    try {
      const blob = await localBlob(600 * KiB, 'refused');
      await expect(pushBlob(pushSession(refusing.url, 'r', false), call(), blob, CHUNKED)).rejects.toThrow(
        `HTTP 404 from ${new URL(refusing.url).host} for refused: {"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}`,
      );
      // The first upload and one more per retry of the policy, then its answer.
      expect(refusing.requests.filter((r) => r.method === 'POST')).toHaveLength(1 + FAST_RETRY.retries);
    } finally {
      await refusing.close();
    }
  });

  test('a run stopped between chunks: the next run finds the recorded upload and sends only the rest', async () => {
    const proxy = await startRecordingProxy(registry.url);
    const state = await tempDir('model-pull-uploads-');
    try {
      const blob = await localBlob(1024 * KiB, 'stopped');
      const tuning = { ...CHUNKED, uploads: uploadRecords(state.path) };
      const stop = new AbortController();
      const first = pushBlob(
        pushSession(proxy.url, 'team/stopped', false),
        call(new MemoryLogger(), stop.signal),
        blob,
        {
          ...tuning,
          onBytes: () => stop.abort(new Error('stopped by the test')),
        },
      );
      await expect(first).rejects.toThrow();
      const open = (await storedBlobs(registry)).uploads.filter((u) => u.startsWith('team/stopped:'));
      expect(open).toHaveLength(1);

      const log = new MemoryLogger();
      const second = await pushBlob(pushSession(proxy.url, 'team/stopped', false), call(log), blob, tuning);
      expect(log.lines).toContain(
        `stopped: resuming the upload to ${new URL(proxy.url).host} at byte ${256 * KiB} of ${blob.size}`,
      );
      expect(second).toEqual({ hex: blob.hex, outcome: 'uploaded', sentBytes: blob.size - 256 * KiB });
      expect(proxy.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
      const back = await send('GET', `${registry.url}/v2/team/stopped/blobs/sha256:${blob.hex}`);
      expect(sha256(back.body)).toBe(blob.hex);
      const stored = await storedBlobs(registry);
      expect(stored.uploads.filter((u) => u.startsWith('team/stopped:'))).toEqual([]);
      expect(stored.blobs.filter((h) => h === blob.hex)).toHaveLength(1);
    } finally {
      await proxy.close();
      await state.remove();
    }
  });
});

describe('behind a Bearer token front', () => {
  let registry: RealRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(() => registry.close());

  test('push scopes from the realm with Basic credentials, none at the registry; a mount reads its source', async () => {
    const front = await startTokenFront(registry.url, USER);
    try {
      const blob = await localBlob(200 * KiB, 'shared');
      const first = await pushBlob(pushSession(front.url, 'org/one'), call(), blob, CHUNKED);
      expect(first.outcome).toBe('uploaded');
      const second = await pushBlob(pushSession(front.url, 'org/two'), call(), blob, CHUNKED, 'org/one');
      expect(second).toEqual({ hex: blob.hex, outcome: 'mounted', sentBytes: 0 });
      const back = await send('GET', `${registry.url}/v2/org/two/blobs/sha256:${blob.hex}`);
      expect(sha256(back.body)).toBe(blob.hex);

      expect(front.tokenRequests.every((t) => t.basic)).toBe(true);
      // Push scopes were asked for each repository, and the mount's challenge named its source.
      const scopes = front.tokenRequests.flatMap((t) => t.scopes);
      for (const wanted of [/^repository:org\/one:(pull,)?push$/, /^repository:org\/two:(pull,)?push$/])
        expect(scopes.some((s) => wanted.test(s))).toBe(true);
      expect(scopes).toContain('repository:org/one:pull');
      const mount = front.server.requests.find((r) => r.method === 'POST' && r.url.includes('mount='));
      expect(mount?.url).toBe(`/v2/org/two/blobs/uploads/?mount=sha256:${blob.hex}&from=org%2Fone`);
      // The password went to the realm only; the registry calls carried tokens.
      for (const r of front.server.requests) {
        if (r.url.startsWith('/token')) continue;
        expect(r.headers.authorization ?? 'Bearer (anonymous first)').toMatch(/^Bearer /);
      }
    } finally {
      await front.close();
    }
  });
});
