import { appendFile, chmod, mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import * as toolCache from '@actions/tool-cache';
import { HttpClient } from '../../src/http/client.js';
import { isAlive } from '../../src/process-liveness.js';
import { MemoryLogger } from '../../src/report/logger.js';
import { installOllama } from '../../src/runtime/install.js';
import { parseHost, type ServeOptions, startOllamaServe, stopOllamaServe } from '../../src/runtime/serve.js';
import { startServer, tempDir } from '../helpers/http.js';
import { plant } from '../helpers/planted.js';
import { buildOllamaArchive, sha256, standInOllama, startReleaseServer } from '../helpers/release-server.js';

let work: { path: string; remove(): Promise<void> };
let standIn: string;
const started: number[] = [];

beforeAll(async () => {
  work = await tempDir('model-pull-serve-');
  standIn = join(work.path, 'standin', 'bin', 'ollama');
  await mkdir(join(standIn, '..'), { recursive: true });
  await writeFile(standIn, standInOllama('0.14.2'));
  await chmod(standIn, 0o755);
});

afterAll(async () => {
  for (const pid of started) await stopOllamaServe(pid);
  await work.remove();
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Writes a model into an Ollama store as a pull would: config + weights blobs, manifest last. */
async function writeModel(root: string, path: string, config: 'json' | 'missing' = 'json'): Promise<void> {
  const configBytes = Buffer.from(
    JSON.stringify({ model_format: 'gguf', model_family: 'llama', name: path }),
  );
  const weights = Buffer.from(`GGUF weights of ${path}`);
  await mkdir(join(root, 'blobs'), { recursive: true });
  if (config === 'json') await writeFile(join(root, 'blobs', `sha256-${sha256(configBytes)}`), configBytes);
  await writeFile(join(root, 'blobs', `sha256-${sha256(weights)}`), weights);
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: {
      mediaType: 'application/vnd.docker.container.image.v1+json',
      digest: `sha256:${sha256(configBytes)}`,
      size: configBytes.length,
    },
    layers: [
      {
        mediaType: 'application/vnd.ollama.image.model',
        digest: `sha256:${sha256(weights)}`,
        size: weights.length,
      },
    ],
  };
  await mkdir(join(root, 'manifests', path, '..'), { recursive: true });
  await writeFile(join(root, 'manifests', path), JSON.stringify(manifest));
}

async function options(extra: Partial<ServeOptions>): Promise<ServeOptions & { log: MemoryLogger }> {
  const logDir = join(work.path, `logs-${Math.random().toString(36).slice(2)}`);
  await mkdir(logDir);
  return {
    logDir,
    executable: standIn,
    modelsRoot: join(work.path, 'empty-store'),
    host: `127.0.0.1:${await freePort()}`,
    timeoutMs: 5000,
    expectedModels: [],
    log: new MemoryLogger(),
    env: process.env,
    pollIntervalMs: 50,
    ...extra,
  } as ServeOptions & { log: MemoryLogger };
}

describe('startOllamaServe', () => {
  test('an installed ollama serves the filled store and lists every pulled model', async () => {
    const archive = await buildOllamaArchive('tar.zst', '0.14.2', 'linux');
    const releases = await startReleaseServer([
      { version: '0.14.2', assets: { 'ollama-linux-amd64.tar.zst': archive } },
    ]);
    const saved = process.env['RUNNER_TOOL_CACHE'];
    process.env['RUNNER_TOOL_CACHE'] = join(work.path, 'tools');
    let installed: Awaited<ReturnType<typeof installOllama>>;
    const http = new HttpClient({ connections: 2, insecure: false, stallTimeoutMs: 5000, userAgent: 'test' });
    try {
      installed = await installOllama({
        version: '0.14.2',
        baseUrl: releases.baseUrl,
        platform: 'linux',
        arch: 'x64',
        toolCache,
        tempDir: work.path,
        log: new MemoryLogger(),
        http,
      });
    } finally {
      await http.close();
      if (saved === undefined) delete process.env['RUNNER_TOOL_CACHE'];
      else process.env['RUNNER_TOOL_CACHE'] = saved;
      await releases.close();
    }

    const store = join(work.path, 'store-full');
    await writeModel(store, 'registry.ollama.ai/library/tiny/1b');
    await writeModel(store, 'registry.ollama.ai/team/helper/latest');
    await writeModel(store, '127.0.0.1:5000/org/other/v1');
    const opts = await options({
      executable: installed.executable,
      modelsRoot: store,
      expectedModels: ['registry.ollama.ai/library/tiny:1b', 'team/helper', '127.0.0.1:5000/org/other:v1'],
    });
    const running = await startOllamaServe(opts);
    started.push(running.pid);
    expect(running.host).toBe(`http://${opts.host}`);
    expect(running.version).toBe('0.14.2');
    expect([...running.models].sort()).toEqual([
      '127.0.0.1:5000/org/other:v1',
      'team/helper:latest',
      'tiny:1b',
    ]);
    const tags = (await (await fetch(`${running.host}/api/tags`)).json()) as { models: { name: string }[] };
    expect(tags.models).toHaveLength(3);
    expect(opts.log.lines).toContain(
      `ollama serve 0.14.2 (pid ${running.pid}) answers at ${running.host}; log: ${running.logFile}`,
    );

    await stopOllamaServe(running.pid);
    expect(isAlive(running.pid)).toBe(false);
    await expect(fetch(`${running.host}/api/version`)).rejects.toThrow();
  });

  test('a missing model (or one whose config blob is missing) fails, naming it, and stops the server', async () => {
    const store = join(work.path, 'store-partial');
    await writeModel(store, 'registry.ollama.ai/library/tiny/1b');
    await writeModel(store, 'registry.ollama.ai/library/broken/1', 'missing');
    const opts = await options({
      modelsRoot: store,
      expectedModels: ['tiny:1b', 'registry.ollama.ai/library/broken:1', 'ollama.com/x/absent'],
    });
    await expect(startOllamaServe(opts)).rejects.toMatchObject({
      code: 'ERR_RUNTIME_SERVE',
      message:
        `ollama serve at http://${opts.host} does not list 2 pulled models: ` +
        `registry.ollama.ai/library/broken:1, ollama.com/x/absent; it lists tiny:1b from ${store}`,
    });
    await expect(fetch(`http://${opts.host}/api/version`)).rejects.toThrow();
  });

  /** startOllamaServe where something else holds the port (accepting and dropping connections). */
  async function startOnTakenPort(logDir: string): Promise<{ port: number; error: unknown }> {
    const blocker: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const opts = await options({ host: `127.0.0.1:${port}`, logDir });
      return { port, error: await startOllamaServe(opts).catch((e: unknown) => e) };
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  }

  test('a server that exits at start is reported with the tail of its log', async () => {
    const logDir = join(work.path, 'logs-exit');
    await mkdir(logDir);
    const { port, error } = await startOnTakenPort(logDir);
    expect(error).toMatchObject({
      code: 'ERR_RUNTIME_SERVE',
      message:
        `ollama serve exited with code 1 before answering at http://127.0.0.1:${port}; ` +
        `last lines of ${logDir}/ollama-serve.log: Error: listen tcp 127.0.0.1:${port}: EADDRINUSE`,
    });
  });

  test('a log kept from earlier runs is quoted from its end, never read whole', async () => {
    const logDir = join(work.path, 'logs-kept');
    // 1 GiB (sparse) of earlier runs, then their last line: more than a string can hold, so a
    // whole read could not quote it at all. The window's first, cut line is left out.
    const log = join(logDir, 'ollama-serve.log');
    await plant(log, 'huge', 1024 ** 3);
    await appendFile(log, '\nan earlier run ended\n');
    const { port, error } = await startOnTakenPort(logDir);
    expect(error).toMatchObject({
      code: 'ERR_RUNTIME_SERVE',
      message:
        `ollama serve exited with code 1 before answering at http://127.0.0.1:${port}; ` +
        `last lines of ${log}: an earlier run ended | Error: listen tcp 127.0.0.1:${port}: EADDRINUSE`,
    });
  });

  test('a server that never answers times out, bounded, with its log, and is stopped', async () => {
    const logDir = join(work.path, 'logs-hang');
    await mkdir(logDir);
    const opts = await options({ env: { ...process.env, STANDIN_OLLAMA_HANG: '1' }, timeoutMs: 800, logDir });
    const began = Date.now();
    const error = (await startOllamaServe(opts).catch((e: unknown) => e)) as Error & { code: string };
    expect(Date.now() - began).toBeLessThan(5000);
    expect(error.code).toBe('ERR_RUNTIME_SERVE');
    const pid = Number(/\(pid (\d+)\)$/.exec(error.message)?.[1]);
    expect(error.message).toBe(
      `ollama serve did not answer GET http://${opts.host}/api/version within 800 ms; ` +
        `last lines of ${logDir}/ollama-serve.log: stand-in ollama: starting very slowly (pid ${pid})`,
    );
    expect(isAlive(pid)).toBe(false);
  });

  test('refuses to start when something already answers at the address', async () => {
    const other = await startServer((_req, res) => {
      res.end('{"version":"9.9.9"}');
    });
    try {
      const opts = await options({ host: other.url });
      await expect(startOllamaServe(opts)).rejects.toMatchObject({
        code: 'ERR_RUNTIME_SERVE',
        message: `something already answers at ${other.url}; stop it or choose another address for ollama serve`,
      });
    } finally {
      await other.close();
    }
  });

  test('an executable that cannot run is reported', async () => {
    const missing = join(work.path, 'nowhere', 'ollama');
    const opts = await options({ executable: missing });
    await expect(startOllamaServe(opts)).rejects.toMatchObject({
      code: 'ERR_RUNTIME_SERVE',
      message: `${missing} serve could not be started (spawn ${missing} ENOENT)`,
    });
  });
});

describe('parseHost', () => {
  test.each([
    ['127.0.0.1:5000', '127.0.0.1:5000', 'http://127.0.0.1:5000'],
    ['http://127.0.0.1:5000', '127.0.0.1:5000', 'http://127.0.0.1:5000'],
    ['localhost', 'localhost:11434', 'http://localhost:11434'],
    ['0.0.0.0:7000', '0.0.0.0:7000', 'http://127.0.0.1:7000'],
    ['[::1]:9000', '[::1]:9000', 'http://[::1]:9000'],
  ])('%s listens on %s, reached at %s', (text, listen, url) => {
    expect(parseHost(text)).toEqual({ listen, url });
  });

  test('refuses what is not a host', () => {
    expect(() => parseHost('http://exa mple:1')).toThrow(
      '"http://exa mple:1" is not a host:port for ollama serve',
    );
  });
});
