import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import {
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { spawnDaemon } from './daemon.js';
import { startServer, type TestServer, tempDir } from './http.js';

/** The CNCF distribution registry from the Debian package `docker-registry`. */
export const REGISTRY_BINARY = '/usr/bin/docker-registry';

export const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

/** A small HTTP exchange over node:http, one socket per call (nothing lingers after a test). */
export function send(
  method: string,
  url: string,
  headers: Record<string, string> = {},
  body?: Uint8Array,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A loopback port nothing listens on now, for a server that cannot be started on port 0. */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface RealRegistry {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** The storage root (`docker/registry/v2/…` below it), to count what the registry holds. */
  readonly storage: string;
  close(): Promise<void>;
}

export interface RegistryOptions {
  /** Basic auth from an htpasswd file (bcrypt, written with apache2-utils' htpasswd). */
  readonly htpasswd?: { readonly username: string; readonly password: string };
  /** Pull-through cache of this upstream (`proxy.remoteurl`): the registry is then read-only. */
  readonly proxyOf?: string;
}

/**
 * Starts the real registry on loopback with filesystem storage in a temp folder (no auth unless
 * asked), waits until `/v2/` answers, and returns it with a close() that stops the process and
 * removes the folder.
 */
export async function startRegistry(options: RegistryOptions = {}): Promise<RealRegistry> {
  const dir = await tempDir('model-pull-registry-');
  const port = await freePort();
  const storage = join(dir.path, 'data');
  const config = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  if (options.htpasswd) {
    const file = join(dir.path, 'htpasswd');
    const { username, password } = options.htpasswd;
    execFileSync('htpasswd', ['-Bbc', file, username, password], { stdio: 'ignore' });
    config.push('auth:', '  htpasswd:', '    realm: model-pull-test', `    path: ${file}`);
  }
  if (options.proxyOf) config.push('proxy:', `  remoteurl: ${options.proxyOf}`);
  await writeFile(join(dir.path, 'config.yml'), `${config.join('\n')}\n`);
  const { child, stderr, close } = spawnDaemon(REGISTRY_BINARY, ['serve', join(dir.path, 'config.yml')], dir);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const status = (await send('GET', `${url}/v2/`)).status;
      if (status === 200 || (status === 401 && options.htpasswd)) return { url, storage, close };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      await close();
      throw new Error(`docker-registry did not start: ${stderr().slice(0, 500)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Blob files the registry stores (one per digest) and uploads it still holds open (`repo:id`). */
export async function storedBlobs(registry: RealRegistry): Promise<{ blobs: string[]; uploads: string[] }> {
  const root = join(registry.storage, 'docker', 'registry', 'v2');
  const list = async (dir: string) => readdir(dir).catch(() => [] as string[]);
  const blobs: string[] = [];
  for (const prefix of await list(join(root, 'blobs', 'sha256')))
    for (const hex of await list(join(root, 'blobs', 'sha256', prefix))) blobs.push(hex);
  const uploads: string[] = [];
  const walk = async (dir: string, repository: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (!entry.isDirectory()) continue;
      if (entry.name === '_uploads')
        uploads.push(...(await list(join(dir, entry.name))).map((id) => `${repository}:${id}`));
      else if (!entry.name.startsWith('_'))
        await walk(join(dir, entry.name), repository ? `${repository}/${entry.name}` : entry.name);
    }
  };
  await walk(join(root, 'repositories'), '');
  return { blobs: blobs.sort(), uploads };
}

export interface Blob {
  readonly mediaType: string;
  readonly bytes: Buffer;
}

export interface GeneratedModel {
  readonly config: Blob;
  readonly layers: readonly Blob[];
  /** The manifest bytes as pushed (compact JSON, as Ollama writes them). */
  readonly manifest: Buffer;
}

export const MANIFEST_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';

export function descriptor(blob: Blob): { mediaType: string; digest: string; size: number } {
  return { mediaType: blob.mediaType, digest: `sha256:${sha256(blob.bytes)}`, size: blob.bytes.length };
}

/** A small model with Ollama's media types: GGUF-ish random weights, template, params, config. */
export function generateModel(weightsSize = 256 * 1024): GeneratedModel {
  const weights = Buffer.concat([Buffer.from('GGUF'), randomBytes(weightsSize - 4)]);
  const layers: Blob[] = [
    { mediaType: 'application/vnd.ollama.image.model', bytes: weights },
    { mediaType: 'application/vnd.ollama.image.template', bytes: Buffer.from('{{ .System }} {{ .Prompt }}') },
    { mediaType: 'application/vnd.ollama.image.params', bytes: Buffer.from('{"stop":["<|end|>"]}') },
  ];
  const config: Blob = {
    mediaType: 'application/vnd.docker.container.image.v1+json',
    bytes: Buffer.from(
      JSON.stringify({ model_format: 'gguf', model_family: 'test', file_type: 'F16', nonce: randomHex(8) }),
    ),
  };
  return { config, layers, manifest: manifestOf(config, layers) };
}

export function manifestOf(config: Blob, layers: readonly Blob[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: descriptor(config),
      layers: layers.map(descriptor),
    }),
  );
}

export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

/** OCI push: POST an upload session, PUT the bytes with `?digest=` (monolithic upload). */
export async function pushBlob(base: string, repo: string, bytes: Buffer): Promise<void> {
  const start = await send('POST', `${base}/v2/${repo}/blobs/uploads/`, { 'content-length': '0' });
  if (start.status !== 202) throw new Error(`upload start answered ${start.status}`);
  const location = new URL(String(start.headers.location), base);
  location.searchParams.set('digest', `sha256:${sha256(bytes)}`);
  const put = await send(
    'PUT',
    location.toString(),
    { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
    bytes,
  );
  if (put.status !== 201) throw new Error(`blob upload answered ${put.status}: ${put.body.toString()}`);
}

/** Pushes every blob, then the manifest under `tag` with the docker v2 manifest media type. */
export async function pushModel(
  base: string,
  repo: string,
  tag: string,
  model: GeneratedModel,
): Promise<string> {
  for (const blob of [model.config, ...model.layers]) await pushBlob(base, repo, blob.bytes);
  const put = await send(
    'PUT',
    `${base}/v2/${repo}/manifests/${tag}`,
    { 'content-type': MANIFEST_TYPE, 'content-length': String(model.manifest.length) },
    model.manifest,
  );
  if (put.status !== 201) throw new Error(`manifest upload answered ${put.status}: ${put.body.toString()}`);
  return String(put.headers['docker-content-digest']);
}

/** What a recording proxy may do instead of passing a request on unchanged. */
export interface ProxyHooks {
  /** Answers the request itself (a challenge, a redirect) and returns true; false passes it on. */
  readonly answer?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** The upstream path for a request path (storage URLs that map onto registry paths). */
  readonly path?: (url: string) => string;
}

/** A recording reverse proxy: every request is kept in `.requests`, then passed on (see ProxyHooks). */
export async function startRecordingProxy(target: string, hooks: ProxyHooks = {}): Promise<TestServer> {
  return startServer(
    (req, res) =>
      new Promise<void>((resolve, reject) => {
        if (hooks.answer?.(req, res)) return resolve();
        const path = hooks.path ? hooks.path(req.url ?? '/') : (req.url ?? '/');
        const upstream = httpRequest(
          new URL(path, target),
          { method: req.method, headers: req.headers, agent: false },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
            answer.on('end', resolve);
            answer.on('error', reject);
          },
        );
        upstream.on('error', reject);
        req.pipe(upstream);
      }),
  );
}

/** GETs of blobs in a recorded request list (what a second, cached run must not make). */
export function blobGets(server: TestServer): number {
  return server.requests.filter((r) => r.method === 'GET' && r.url.includes('/blobs/sha256:')).length;
}

/**
 * For a whole test file: a real registry filled by `fill` (given its URL), behind a recording
 * proxy that counts what the code under test asks for; both stopped after the file.
 */
export function registryForFile(
  fill: (url: string) => Promise<void>,
  use: (proxy: TestServer, registry: RealRegistry) => void,
): void {
  let registry: RealRegistry | undefined;
  let proxy: TestServer | undefined;
  beforeAll(async () => {
    registry = await startRegistry();
    await fill(registry.url);
    proxy = await startRecordingProxy(registry.url);
    use(proxy, registry);
  });
  afterAll(async () => {
    await proxy?.close();
    await registry?.close();
  });
}
