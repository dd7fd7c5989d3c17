import { createCipheriv, createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gitBlobSha1Hex, sha256Hex } from '../digest.js';

/**
 * A tiny OCI registry and Hugging Face hub on loopback, serving one generated model each, so
 * `model-pull demo` shows the real pipeline working with no internet. They speak just enough
 * of each protocol (docs/registries.md) for a pull: manifests, blobs with ranges, revision, tree,
 * resolve with a redirect to a "CDN" path.
 */
export interface DemoServers {
  readonly registry: string;
  readonly hub: string;
  readonly ollamaLine: string;
  readonly hfLine: string;
  close(): Promise<void>;
}

interface Blob {
  readonly data: Buffer;
  readonly mediaType: string;
}

export interface DemoOptions {
  /** Size of each model's weights (default 8 MiB). */
  readonly weightsBytes?: number;
  /**
   * Bytes per second each server sends at most, over all its connections (default: no cap).
   * On a terminal the demo slows down so that its bars and phases can be seen, and stopped.
   */
  readonly bytesPerSecond?: number;
}

export async function startDemoServers(options: DemoOptions = {}): Promise<DemoServers> {
  const weightsBytes = options.weightsBytes ?? 8 * 1024 * 1024;
  // The same bytes every run, so an interrupted demo resumes where it stopped.
  const weights = Buffer.concat([Buffer.from('GGUF'), demoBytes('ollama weights', weightsBytes - 4)]);
  const ollamaBlobs: Blob[] = [
    { data: weights, mediaType: 'application/vnd.ollama.image.model' },
    { data: Buffer.from('{{ .Prompt }}'), mediaType: 'application/vnd.ollama.image.template' },
    { data: Buffer.from('{"temperature":0}'), mediaType: 'application/vnd.ollama.image.params' },
  ];
  const config = Buffer.from(
    JSON.stringify({ model_format: 'gguf', model_family: 'demo', file_type: 'Q4_0' }),
  );
  const descriptor = (b: Blob) => ({
    mediaType: b.mediaType,
    digest: `sha256:${sha256Hex(b.data)}`,
    size: b.data.length,
  });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: descriptor({ data: config, mediaType: 'application/vnd.docker.container.image.v1+json' }),
      layers: ollamaBlobs.map(descriptor),
    }),
  );
  const byDigest = new Map(
    [config, ...ollamaBlobs.map((b) => b.data)].map((d) => [`sha256:${sha256Hex(d)}`, d]),
  );

  const commit = createHash('sha1').update('demo commit').digest('hex');
  const hfFiles = new Map<string, { data: Buffer; lfs: boolean }>([
    ['config.json', { data: Buffer.from('{"architectures":["Demo"],"hidden_size":64}\n'), lfs: false }],
    ['model.safetensors', { data: demoBytes('hf weights', weightsBytes), lfs: true }],
  ]);
  const send =
    (pacer: Pacer) =>
    (req: IncomingMessage, res: ServerResponse, data: Buffer, extra?: Record<string, string>) =>
      sendRange(req, res, data, extra, pacer);

  const registryPacer = new Pacer(options.bytesPerSecond);
  const hubPacer = new Pacer(options.bytesPerSecond);
  const sendBlob = send(registryPacer);
  const sendFile = send(hubPacer);
  const registry = await listen((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/v2\/demo\/tiny\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
    if (url.pathname === '/v2/') return void res.writeHead(200).end('{}');
    if (m?.[1] === 'manifests') {
      return void res
        .writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' })
        .end(manifest);
    }
    const blob = m?.[1] === 'blobs' ? byDigest.get(m[2]!) : undefined;
    if (!blob) return void res.writeHead(404).end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
    sendBlob(req, res, blob);
  });
  const hub = await listen((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    if (path === '/api/models/demo/tiny/revision/main')
      return void json(res, { id: 'demo/tiny', sha: commit });
    if (path === `/api/models/demo/tiny/tree/${commit}`) {
      return void json(
        res,
        [...hfFiles].map(([name, f]) => ({
          type: 'file',
          path: name,
          size: f.data.length,
          oid: gitBlobSha1Hex(f.data),
          ...(f.lfs ? { lfs: { oid: sha256Hex(f.data), size: f.data.length } } : {}),
        })),
      );
    }
    const resolve = new RegExp(`^/demo/tiny/resolve/${commit}/(.+)$`).exec(path);
    const file = resolve ? hfFiles.get(decodeURIComponent(resolve[1]!)) : undefined;
    if (resolve && file) {
      if (!file.lfs) return void sendFile(req, res, file.data, { etag: `"${gitBlobSha1Hex(file.data)}"` });
      const location = `/cdn/${sha256Hex(file.data)}?expires=${Date.now() + 3_600_000}`;
      return void res
        .writeHead(302, { location, 'x-linked-etag': `"${sha256Hex(file.data)}"`, 'x-repo-commit': commit })
        .end();
    }
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    const lfs = cdn ? [...hfFiles.values()].find((f) => f.lfs && sha256Hex(f.data) === cdn[1]) : undefined;
    if (lfs) return void sendFile(req, res, lfs.data);
    res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
  });
  return {
    registry: registry.url,
    hub: hub.url,
    ollamaLine: `ollama:${registry.url}/demo/tiny:latest`,
    hfLine: 'hf:demo/tiny',
    close: async () => {
      await Promise.all([registry.close(), hub.close()]);
    },
  };
}

function json(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** Bytes that look random and are the same every run (AES-CTR over zeros, keyed by `seed`). */
function demoBytes(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

/** Spaces out chunks so that a server sends at most `bytesPerSecond` over all its connections. */
class Pacer {
  private nextFree = 0;
  constructor(private readonly bytesPerSecond: number | undefined) {}

  /** Resolves when `bytes` more may be sent. */
  async turn(bytes: number): Promise<void> {
    if (!this.bytesPerSecond) return;
    const now = Date.now();
    const start = Math.max(now, this.nextFree);
    this.nextFree = start + (bytes * 1000) / this.bytesPerSecond;
    if (start > now) await new Promise((resolve) => setTimeout(resolve, start - now));
  }
}

const CHUNK = 64 * 1024;

function sendRange(
  req: IncomingMessage,
  res: ServerResponse,
  data: Buffer,
  extra: Record<string, string> = {},
  pacer = new Pacer(undefined),
): void {
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  const start = m ? Number(m[1]) : 0;
  const end = m?.[2] ? Math.min(Number(m[2]), data.length - 1) : data.length - 1;
  if (m && start >= data.length)
    return void res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
  res.writeHead(m ? 206 : 200, {
    ...extra,
    'accept-ranges': 'bytes',
    'content-length': end - start + 1,
    ...(m ? { 'content-range': `bytes ${start}-${end}/${data.length}` } : {}),
  });
  void (async () => {
    for (let at = start; at <= end && !res.destroyed; at += CHUNK) {
      const chunk = data.subarray(at, Math.min(at + CHUNK, end + 1));
      await pacer.turn(chunk.length);
      if (!res.write(chunk)) await drained(res);
    }
    res.end();
  })();
}

/** Resolves when the response can take more, or is gone. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
