import { execFile } from 'node:child_process';
import { cp, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as toolCache from '@actions/tool-cache';
import { HttpClient } from '../../src/http/client.js';
import { MemoryLogger } from '../../src/report/logger.js';
import { type InstallOllamaOptions, installOllama, type RuntimeCache } from '../../src/runtime/install.js';
import { tempDir } from '../helpers/http.js';
import {
  buildOllamaArchive,
  type ReleaseServer,
  sha256,
  standInOllama,
  startReleaseServer,
} from '../helpers/release-server.js';

const run = promisify(execFile);
const LINUX_ZST = 'ollama-linux-amd64.tar.zst';
const WRONG = 'f'.repeat(64);

/** A stand-in for the Actions cache that copies the paths into a folder per key. */
class FolderCache implements RuntimeCache {
  readonly calls: string[] = [];
  private readonly entries = new Map<string, string>();
  constructor(private readonly root: string) {}
  async restore(paths: string[], key: string): Promise<boolean> {
    this.calls.push(`restore ${key} ${paths.length}`);
    const dir = this.entries.get(key);
    if (!dir) return false;
    for (const [i, path] of paths.entries()) await cp(join(dir, String(i)), path, { recursive: true });
    return true;
  }
  async save(paths: string[], key: string): Promise<number> {
    this.calls.push(`save ${key} ${paths.length}`);
    const dir = join(this.root, key);
    for (const [i, path] of paths.entries()) await cp(path, join(dir, String(i)), { recursive: true });
    this.entries.set(key, dir);
    return 1;
  }
}

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

describe('installOllama with the Actions cache', () => {
  test('saves after a download; a runner with an empty tool cache restores it with no request', async () => {
    const cache = new FolderCache(join(work.path, 'actions-cache'));
    const extra = { actionsCache: cache, toolCacheRoot: toolRoot, cacheKeyPrefix: 'ci' };
    const first = await installOllama(options(extra));
    expect(first.source).toBe('download');
    expect(cache.calls).toEqual([
      'restore ci-ollama-0.14.2-linux-x64 2',
      'save ci-ollama-0.14.2-linux-x64 2',
    ]);

    // A fresh hosted runner: empty tool cache.
    await rm(toolRoot, { recursive: true, force: true });
    await mkdir(toolRoot);
    const before = server.requests.length;
    const second = await installOllama(options(extra));
    expect(second).toEqual({ ...first, source: 'actions-cache' });
    expect(server.requests.length).toBe(before);
    expect(cache.calls.slice(2)).toEqual(['restore ci-ollama-0.14.2-linux-x64 2']);
    expect((await run(second.executable, ['--version'])).stdout).toBe('ollama version is 0.14.2\n');
    expect(toolCache.find('ollama', '0.14.2', 'x64')).toBe(join(toolRoot, 'ollama', '0.14.2', 'x64'));
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
      'warning: Actions cache restore of model-pull-ollama-0.14.2-linux-x64 failed: cache service unavailable',
      'warning: Actions cache save of model-pull-ollama-0.14.2-linux-x64 failed: reserve failed',
    ]);
  });

  test('without the tool cache folder the Actions cache is skipped with a warning', async () => {
    const cache = new FolderCache(join(work.path, 'unused-cache'));
    const opts = options({ actionsCache: cache });
    expect((await installOllama(opts)).source).toBe('download');
    expect(cache.calls).toEqual([]);
    expect(opts.log.lines).toContain(
      'warning: the tool cache folder is unknown, so the Ollama install is not kept in the Actions cache',
    );
  });

  test('a hit that restored nothing usable falls back to the download', async () => {
    const empty: RuntimeCache = { restore: async () => true, save: async () => 0 };
    const opts = options({ actionsCache: empty, toolCacheRoot: toolRoot });
    const result = await installOllama(opts);
    expect(result.source).toBe('download');
    expect(opts.log.lines).toContain(
      'warning: Actions cache entry model-pull-ollama-0.14.2-linux-x64 did not hold a complete Ollama install; downloading',
    );
  });
});
