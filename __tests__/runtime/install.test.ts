import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import * as toolCache from '@actions/tool-cache';
import { createActionsCache } from '../../src/cache/actions-cache.js';
import type { CacheClient } from '../../src/cache/client.js';
import { HttpClient } from '../../src/http/client.js';
import { DEFAULT_RETRY_POLICY } from '../../src/http/retry.js';
import { MemoryLogger } from '../../src/report/logger.js';
import { type InstallOllamaOptions, installOllama, type RuntimeCache } from '../../src/runtime/install.js';
import { cacheService } from '../../src/settings/settings.js';
import { type Runner as CacheRunner, fakeRunner, recordStdout } from '../cache/env.js';
import { type CacheService, startCacheService } from '../helpers/cache-service.js';
import { startServer, type TestServer, tempDir } from '../helpers/http.js';
import {
  buildOllamaArchive,
  type ReleaseServer,
  sha256,
  standInOllama,
  startReleaseServer,
} from '../helpers/release-server.js';

const run = promisify(execFile);
const LINUX_ZST = 'ollama-linux-amd64.tar.zst';
const FAST_RETRY_POLICY = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 1, maxDelayMs: 2 };
const WRONG = 'f'.repeat(64);

let server: ReleaseServer;
let work: { path: string; remove(): Promise<void> };
let toolRoot: string;
let runnerTemp: string;
let http: HttpClient;
const saved = { tools: process.env['RUNNER_TOOL_CACHE'], temp: process.env['RUNNER_TEMP'] };
const archives: Record<string, Buffer> = {};

beforeAll(async () => {
  work = await tempDir('model-pull-runtime-');
  archives['0.14.2'] = await buildOllamaArchive('tar.zst', '0.14.2', 'linux');
  archives['0.13.5'] = await buildOllamaArchive('tgz', '0.13.5', 'linux');
  archives['0.14.3'] = await buildOllamaArchive('tar.zst', '0.14.3', 'linux');
  archives['win'] = await buildOllamaArchive('zip', '0.14.2', 'windows');
  archives['mac'] = await buildOllamaArchive('tgz', '0.14.2', 'darwin');
  server = await startReleaseServer(
    [
      {
        version: '0.14.2',
        assets: {
          [LINUX_ZST]: archives['0.14.2'],
          'ollama-windows-amd64.zip': archives['win'],
          'ollama-darwin.tgz': archives['mac'],
        },
      },
      { version: '0.13.5', assets: { 'ollama-linux-amd64.tgz': archives['0.13.5'] } },
      {
        version: '0.14.3',
        assets: { [LINUX_ZST]: archives['0.14.3'] },
        checksums: `${WRONG}  ./${LINUX_ZST}\n`,
      },
      {
        version: '0.14.4',
        assets: { [LINUX_ZST]: archives['0.14.3'] },
        checksums: `${WRONG}  ./other.tgz\n`,
      },
      { version: '0.14.5', assets: { [LINUX_ZST]: archives['0.14.3'] }, checksums: null },
      { version: '0.14.6', assets: {}, checksums: `${WRONG}  ./${LINUX_ZST}\n` },
    ],
    '0.14.2',
  );
  http = new HttpClient({ connections: 2, insecure: false, stallTimeoutMs: 5000, userAgent: 'test' });
});

afterAll(async () => {
  await http.close();
  await server.close();
  await work.remove();
  restoreEnv('RUNNER_TOOL_CACHE', saved.tools);
  restoreEnv('RUNNER_TEMP', saved.temp);
});

// @actions/tool-cache reads RUNNER_TOOL_CACHE / RUNNER_TEMP from process.env at call time.
beforeEach(async () => {
  const id = Math.random().toString(36).slice(2);
  toolRoot = join(work.path, `tools-${id}`);
  runnerTemp = join(work.path, `temp-${id}`);
  await mkdir(toolRoot, { recursive: true });
  await mkdir(runnerTemp, { recursive: true });
  process.env['RUNNER_TOOL_CACHE'] = toolRoot;
  process.env['RUNNER_TEMP'] = runnerTemp;
});

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

function options(extra: Partial<InstallOllamaOptions> = {}): InstallOllamaOptions & { log: MemoryLogger } {
  return {
    version: '0.14.2',
    baseUrl: server.baseUrl,
    platform: 'linux',
    arch: 'x64',
    toolCache,
    tempDir: runnerTemp,
    http,
    log: new MemoryLogger(),
    ...extra,
  } as InstallOllamaOptions & { log: MemoryLogger };
}

describe('installOllama', () => {
  test('downloads, verifies and extracts the .tar.zst; the second call is a tool cache hit with no request', async () => {
    const before = server.requests.length;
    const first = await installOllama(options());
    const dir = join(toolRoot, 'ollama', '0.14.2', 'x64');
    expect(first).toEqual({
      version: '0.14.2',
      binDir: join(dir, 'bin'),
      executable: join(dir, 'bin', 'ollama'),
      source: 'download',
    });
    expect(sha256(await readFile(first.executable))).toBe(sha256(standInOllama('0.14.2')));
    expect((await run(first.executable, ['--version'])).stdout).toBe('ollama version is 0.14.2\n');
    expect(await readFile(join(dir, 'lib', 'ollama', 'libggml-base.so'), 'utf8')).toBe('library of 0.14.2\n');
    expect(server.requests.slice(before).map((r) => r.url)).toEqual([
      '/releases/download/v0.14.2/sha256sum.txt',
      '/cdn/v0.14.2/sha256sum.txt?signature=abc',
      `/releases/download/v0.14.2/${LINUX_ZST}`,
      `/cdn/v0.14.2/${LINUX_ZST}?signature=abc`,
    ]);
    // The archive comes through the engine and this client (User-Agent), not a client of its own.
    expect(server.requests.at(-1)?.headers['user-agent']).toBe('test');
    expect(await readdir(runnerTemp)).toEqual([]);

    const after = server.requests.length;
    const second = await installOllama(options());
    expect(second).toEqual({ ...first, source: 'tool-cache' });
    expect(server.requests.length).toBe(after);
  });

  test('latest follows the release redirect, then installs that version', async () => {
    const before = server.requests.length;
    const result = await installOllama(options({ version: 'latest' }));
    expect(result.version).toBe('0.14.2');
    expect(server.requests[before]?.url).toBe('/releases/latest');
    expect((await run(result.executable, ['--version'])).stdout).toBe('ollama version is 0.14.2\n');
  });

  test('an old version comes as .tgz', async () => {
    const result = await installOllama(options({ version: 'v0.13.5', arch: 'x64' }));
    expect(result.executable).toBe(join(toolRoot, 'ollama', '0.13.5', 'x64', 'bin', 'ollama'));
    expect((await run(result.executable, ['--version'])).stdout).toBe('ollama version is 0.13.5\n');
  });

  test.each([
    ['win32', 'ollama.exe'],
    ['darwin', 'ollama'],
  ] as const)('the %s archive puts %s at its root', async (platform, name) => {
    const result = await installOllama(options({ platform }));
    expect(result.executable).toBe(join(toolRoot, 'ollama', '0.14.2', 'x64', name));
    expect(result.binDir).toBe(join(toolRoot, 'ollama', '0.14.2', 'x64'));
    expect(sha256(await readFile(result.executable))).toBe(sha256(standInOllama('0.14.2')));
  });

  test('a pinned sha256 replaces sha256sum.txt; a wrong pin is refused', async () => {
    const before = server.requests.length;
    const pinned = await installOllama(options({ sha256: `sha256:${sha256(archives['0.14.2']!)}` }));
    expect(pinned.source).toBe('download');
    expect(server.requests.slice(before).some((r) => r.url.includes('sha256sum.txt'))).toBe(false);
    await rm(toolRoot, { recursive: true, force: true });
    await expect(installOllama(options({ sha256: WRONG }))).rejects.toMatchObject({
      code: 'ERR_DIGEST_MISMATCH',
    });
    await expect(installOllama(options({ sha256: 'abc' }))).rejects.toMatchObject({
      code: 'ERR_BAD_INPUT',
      message: 'ollama-sha256 "abc" is not a sha256 hex digest',
    });
  });

  test('the release download goes through the configured client: its proxy and its retries', async () => {
    const { proxy, seen } = await startForwardProxy();
    let failures = 1;
    const flaky = await startServer(async (req, res) => {
      // The CDN fails once with 503; the run's retry policy (not another client's) gets past it.
      if (req.url?.includes(LINUX_ZST) && failures-- > 0) return void res.writeHead(503).end('busy');
      const upstream = await fetch(`${server.url}${req.url}`, { redirect: 'manual' });
      const location = upstream.headers.get('location');
      const headers: Record<string, string> = {};
      if (location) headers['location'] = location.replace(server.url, flaky.url);
      res.writeHead(upstream.status, headers).end(Buffer.from(await upstream.arrayBuffer()));
    });
    const proxied = new HttpClient({
      connections: 2,
      insecure: false,
      stallTimeoutMs: 5000,
      userAgent: 'test',
      proxy: { httpProxy: proxy.url },
    });
    try {
      const fast = { retries: 3, baseDelayMs: 1, maxDelayMs: 2 };
      const result = await installOllama(
        options({
          baseUrl: `${flaky.url}/releases`,
          http: proxied,
          retry: { ...DEFAULT_RETRY_POLICY, ...fast },
        }),
      );
      expect((await run(result.executable, ['--version'])).stdout).toBe('ollama version is 0.14.2\n');
      expect(seen.filter((url) => url.includes(LINUX_ZST))).toEqual([
        `${flaky.url}/releases/download/v0.14.2/${LINUX_ZST}`,
        `${flaky.url}/releases/download/v0.14.2/${LINUX_ZST}`,
        `${flaky.url}/cdn/v0.14.2/${LINUX_ZST}?signature=abc`,
      ]);
      expect(seen).toContain(`${flaky.url}/releases/download/v0.14.2/sha256sum.txt`);
    } finally {
      await proxied.close();
      await flaky.close();
      await proxy.close();
    }
  });

  test('a checksum mismatch is refused and leaves nothing in the tool cache', async () => {
    await expect(installOllama(options({ version: '0.14.3' }))).rejects.toMatchObject({
      code: 'ERR_DIGEST_MISMATCH',
      message:
        `${LINUX_ZST} of Ollama 0.14.3 does not match the release's sha256sum.txt: ` +
        `expected sha256:${WRONG}, got sha256:${sha256(archives['0.14.3']!)}; refusing to install it`,
    });
    expect(toolCache.find('ollama', '0.14.3', 'x64')).toBe('');
    expect(await readdir(toolRoot)).toEqual([]);
    expect(await readdir(runnerTemp)).toEqual([]);
  });

  test.each([
    [
      '0.14.4',
      'Ollama release v0.14.4 lists no checksum for ollama-linux-amd64.tar.zst; refusing to install it',
    ],
    ['0.14.5', 'Ollama release v0.14.5 publishes no sha256sum.txt; refusing to install it'],
  ])('%s: an archive without a checksum is never downloaded', async (version, message) => {
    const before = server.requests.length;
    await expect(installOllama(options({ version }))).rejects.toMatchObject({
      code: 'ERR_RUNTIME_INSTALL',
      message,
    });
    expect(server.requests.slice(before).some((r) => r.url.includes(LINUX_ZST))).toBe(false);
    expect(await readdir(toolRoot)).toEqual([]);
  });

  test('a missing asset names the release and the asset', async () => {
    await expect(installOllama(options({ version: '0.14.6' }))).rejects.toMatchObject({
      code: 'ERR_RUNTIME_INSTALL',
      message:
        `could not download Ollama 0.14.6 from ${server.baseUrl}/download/v0.14.6/${LINUX_ZST}: ` +
        `release v0.14.6 has no asset ${LINUX_ZST}`,
    });
  });

  test('an unsupported platform is refused before any request', async () => {
    const before = server.requests.length;
    await expect(installOllama(options({ platform: 'freebsd', version: 'latest' }))).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED_PLATFORM',
      message:
        'Ollama publishes no release archive for freebsd/x64; ollama-version works on Linux and Windows ' +
        '(x64, arm64) and macOS runners',
    });
    expect(server.requests.length).toBe(before);
  });
});

describe('installOllama with the Actions cache (the real client against a local cache service)', () => {
  const KEY = (prefix: string) => `${prefix}-ollama-0.14.2-linux-x64-sha256-${sha256(archives['0.14.2']!)}`;
  let service: CacheService;
  let runner: CacheRunner;
  let stdout: ReturnType<typeof recordStdout>;
  let cache: CacheClient;
  let log: MemoryLogger;
  beforeAll(async () => {
    service = await startCacheService();
  });
  afterAll(() => service.close());
  beforeEach(async () => {
    service.calls.length = 0;
    runner = await fakeRunner(service);
    stdout = recordStdout();
    log = new MemoryLogger();
    cache = createActionsCache({
      log,
      service: cacheService(process.env).cacheService,
      http,
      retry: FAST_RETRY_POLICY,
      connections: 4,
    });
  });
  afterEach(async () => {
    stdout.restore();
    await runner.dispose();
  });
  const archivePath = () => join(toolRoot, '.model-pull', 'ollama-0.14.2-x64', LINUX_ZST);
  const warnings = (...logs: MemoryLogger[]) =>
    logs.flatMap((l) => l.lines.filter((x) => x.startsWith('warning:')));

  test('saves the verified archive; a runner with an empty tool cache restores it, checked against sha256sum.txt', async () => {
    const extra = { actionsCache: cache, toolCacheRoot: toolRoot, cacheKeyPrefix: 'ci' };
    const first = await installOllama(options(extra));
    expect(first.source).toBe('download');
    expect(service.entry(KEY('ci'))).toBeDefined();

    // A fresh hosted runner: empty tool cache.
    await rm(toolRoot, { recursive: true, force: true });
    await mkdir(toolRoot);
    const before = server.requests.length;
    const mark = service.calls.length;
    const opts = options(extra);
    const second = await installOllama(opts);
    expect(second).toEqual({ ...first, source: 'actions-cache' });
    // Only the checksums: the digest the restored bytes are checked against never comes from the cache.
    expect(server.requests.slice(before).map((r) => r.url)).toEqual([
      '/releases/download/v0.14.2/sha256sum.txt',
      '/cdn/v0.14.2/sha256sum.txt?signature=abc',
    ]);
    expect(service.calls.slice(mark).map((c) => c.call)).toEqual([
      'GetCacheEntryDownloadURL',
      'HEAD archive',
      'GET archive',
    ]);
    expect(warnings(opts.log, log)).toEqual([]);
    expect((await run(second.executable, ['--version'])).stdout).toBe('ollama version is 0.14.2\n');
    expect(toolCache.find('ollama', '0.14.2', 'x64')).toBe(join(toolRoot, 'ollama', '0.14.2', 'x64'));
  });

  test('a poisoned entry under the key is never executed: reinstalled from the release with one warning', async () => {
    const marker = join(work.path, `poisoned-${Math.random().toString(36).slice(2)}`);
    // An attacker with write access to the cache scope computes the key and version (both
    // public) and saves their own archive under them, with the same client.
    const evil = await buildEvilArchive(marker);
    await mkdir(join(archivePath(), '..'), { recursive: true });
    await writeFile(archivePath(), evil);
    expect(await cache.save([archivePath()], KEY('model-pull'))).toBe('saved');
    await rm(toolRoot, { recursive: true, force: true });
    await mkdir(toolRoot);

    const fresh = createActionsCache({
      log,
      service: cacheService(process.env).cacheService,
      http,
      retry: FAST_RETRY_POLICY,
      connections: 4,
    });
    const opts = options({ actionsCache: fresh, toolCacheRoot: toolRoot });
    const result = await installOllama(opts);
    expect(result.source).toBe('download');
    expect(warnings(opts.log, log)).toEqual([
      `warning: Cache entry ${KEY('model-pull')}: refused 1 archive member: 1 × not the planned bytes ` +
        `(${JSON.stringify(relative(runner.workspace, archivePath()))}); 1 of 1 files are downloaded from the origin instead.`,
    ]);
    // The installed executable is the release's; running it (as ollama-serve does) runs no planted code.
    expect(sha256(await readFile(result.executable))).toBe(sha256(standInOllama('0.14.2')));
    expect((await run(result.executable, ['--version'])).stdout).toBe('ollama version is 0.14.2\n');
    await expect(readFile(marker)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(sha256(await readFile(archivePath()))).toBe(sha256(archives['0.14.2']!));
  });

  test('a failing cache service only warns', async () => {
    const broken: RuntimeCache = {
      restore: async () => {
        throw new Error('cache service unavailable');
      },
      save: async () => {
        throw new Error('reserve failed');
      },
    };
    const opts = options({ actionsCache: broken, toolCacheRoot: toolRoot });
    const result = await installOllama(opts);
    expect(result.source).toBe('download');
    expect(opts.log.lines.filter((l) => l.startsWith('warning:'))).toEqual([
      `warning: Actions cache restore of ${KEY('model-pull')} failed: cache service unavailable`,
      `warning: Actions cache save of ${KEY('model-pull')} failed: reserve failed`,
    ]);
  });

  test('without the tool cache folder the Actions cache is skipped with a warning', async () => {
    const opts = options({ actionsCache: cache });
    expect((await installOllama(opts)).source).toBe('download');
    expect(service.calls).toEqual([]);
    expect(opts.log.lines).toContain(
      'warning: the tool cache folder is unknown, so the Ollama install is not kept in the Actions cache',
    );
  });

  test('an entry without the archive falls back to the download with a warning', async () => {
    const empty: RuntimeCache = {
      restore: async () => ({ state: 'partial', found: true, restored: new Map(), fetched: 0, missing: 1 }),
      save: async () => 'exists',
    };
    const opts = options({ actionsCache: empty, toolCacheRoot: toolRoot });
    const result = await installOllama(opts);
    expect(result.source).toBe('download');
    expect(opts.log.lines).toContain(
      `warning: Actions cache entry ${KEY('model-pull')} did not hold the Ollama 0.14.2 release archive ` +
        `with sha256:${sha256(archives['0.14.2']!)}; reinstalling from the release`,
    );
  });
});

/** A .tar.zst laid out like the release, whose `bin/ollama` writes `marker` when run. */
async function buildEvilArchive(marker: string): Promise<Buffer> {
  const dir = await tempDir('model-pull-evil-');
  try {
    await mkdir(join(dir.path, 'bin'));
    const script = `#!/bin/sh\necho pwned > ${JSON.stringify(marker)}\necho 'ollama version is 0.14.2'\n`;
    await writeFile(join(dir.path, 'bin', 'ollama'), script, { mode: 0o755 });
    const out = join(dir.path, 'evil.tar.zst');
    await run('tar', ['--use-compress-program=zstd', '-cf', out, '-C', dir.path, 'bin']);
    return await readFile(out);
  } finally {
    await dir.remove();
  }
}

/** A plain-http forward proxy (absolute-URI requests), recording every URL it forwarded. */
async function startForwardProxy(): Promise<{ proxy: TestServer; seen: string[] }> {
  const seen: string[] = [];
  const proxy = await startServer(async (req, res) => {
    const url = req.url ?? '';
    seen.push(url);
    const upstream = await fetch(url, { redirect: 'manual', headers: { range: req.headers.range ?? '' } });
    const headers: Record<string, string> = {};
    for (const name of ['location', 'content-range', 'content-type']) {
      const value = upstream.headers.get(name);
      if (value) headers[name] = value;
    }
    res.writeHead(upstream.status, headers).end(Buffer.from(await upstream.arrayBuffer()));
  });
  return { proxy, seen };
}
