import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashFile } from '../digest.js';
import { describeError, ModelPullError, redactUrl } from '../errors.js';
import { pathExists } from '../fs-dirs.js';
import { HttpClient } from '../http/client.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, withRetries } from '../http/retry.js';
import type { Logger } from '../report/logger.js';
import { type OllamaRelease, parseChecksums, resolveOllamaRelease } from './release.js';

/** The part of `@actions/tool-cache` used here; the module itself satisfies it. */
export interface ToolCache {
  downloadTool(url: string, dest?: string): Promise<string>;
  extractTar(file: string, dest?: string, flags?: string | string[]): Promise<string>;
  extractZip(file: string, dest?: string): Promise<string>;
  cacheDir(sourceDir: string, tool: string, version: string, arch?: string): Promise<string>;
  find(toolName: string, versionSpec: string, arch?: string): string;
}

/**
 * The Actions cache as far as the runtime needs it (restore → hit?, save); the pipeline's
 * CacheClient satisfies it. Either may throw: that only warns here.
 */
export interface RuntimeCache {
  restore(paths: readonly string[], key: string): Promise<boolean>;
  save(paths: readonly string[], key: string): Promise<unknown>;
}

export interface InstallOllamaOptions {
  /** `latest`, `0.14.2` or `v0.14.2`. */
  readonly version: string;
  /** Release page base; defaults to https://github.com/ollama/ollama/releases. */
  readonly baseUrl?: string;
  readonly platform: NodeJS.Platform;
  /** Node's `process.arch` (`x64`, `arm64`). */
  readonly arch: string;
  readonly toolCache: ToolCache;
  /** Hosted runners start with an empty tool cache; this carries the install between runs. */
  readonly actionsCache?: RuntimeCache;
  /** RUNNER_TOOL_CACHE (read by the settings module); needed with `actionsCache` to name the paths. */
  readonly toolCacheRoot?: string;
  /** First part of the Actions cache key (the `cache-key-prefix` input). */
  readonly cacheKeyPrefix?: string;
  /** Where the archive is downloaded and unpacked (RUNNER_TEMP); defaults to the OS temp folder. */
  readonly tempDir?: string;
  readonly log: Logger;
  readonly http?: HttpClient;
  readonly retry?: RetryPolicy;
  readonly signal?: AbortSignal;
}

export interface InstalledOllama {
  readonly version: string;
  /** The folder to put on PATH. */
  readonly binDir: string;
  readonly executable: string;
  /** Where it came from this time. */
  readonly source: 'tool-cache' | 'actions-cache' | 'download';
}

const TOOL = 'ollama';

/**
 * Installs the Ollama CLI for this runner: tool cache, then Actions cache, then the release
 * archive, verified against the release's `sha256sum.txt` before anything is extracted.
 * Adding `binDir` to PATH is the entry point's job.
 */
export async function installOllama(options: InstallOllamaOptions): Promise<InstalledOllama> {
  const ownHttp = options.http === undefined;
  const http = options.http ?? defaultHttpClient();
  try {
    const release = await resolveOllamaRelease(options.version, options.platform, options.arch, {
      http,
      ...(options.baseUrl ? { baseUrl: options.baseUrl } : {}),
      ...(options.retry ? { retry: options.retry } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const cached = options.toolCache.find(TOOL, release.version, release.toolArch);
    if (cached && (await pathExists(join(cached, release.executable)))) {
      options.log.info(`Ollama ${release.version}: found in the tool cache at ${cached}`);
      return installed(release, cached, 'tool-cache');
    }
    const entry = actionsCacheEntry(options, release);
    if (entry && (await restoreEntry(options, release, entry))) {
      return installed(release, entry.dir, 'actions-cache');
    }
    const dir = await downloadAndCache(options, release, http);
    if (entry) await saveEntry(options, entry, dir);
    return installed(release, dir, 'download');
  } finally {
    if (ownHttp) await http.close();
  }
}

function installed(release: OllamaRelease, dir: string, source: InstalledOllama['source']): InstalledOllama {
  const executable = join(dir, release.executable);
  return { version: release.version, binDir: join(executable, '..'), executable, source };
}

function defaultHttpClient(): HttpClient {
  return new HttpClient({ connections: 2, insecure: false, stallTimeoutMs: 30_000, userAgent: 'model-pull' });
}

interface CacheEntry {
  readonly cache: RuntimeCache;
  readonly key: string;
  /** The tool cache folder and its `.complete` marker: restoring both makes `find` hit again. */
  readonly paths: string[];
  readonly dir: string;
}

function actionsCacheEntry(options: InstallOllamaOptions, release: OllamaRelease): CacheEntry | undefined {
  if (!options.actionsCache) return undefined;
  if (!options.toolCacheRoot) {
    // The cache is an optimisation: without the folder's name there is no path to save.
    options.log.warning(
      'the tool cache folder is unknown, so the Ollama install is not kept in the Actions cache',
    );
    return undefined;
  }
  // The tool cache files a tool under <root>/<tool>/<version>/<arch> with a sibling
  // `<arch>.complete`; the same two paths are used on save and restore, as the cache requires.
  const dir = join(options.toolCacheRoot, TOOL, release.version, release.toolArch);
  const prefix = options.cacheKeyPrefix ?? 'model-pull';
  const key = `${prefix}-ollama-${release.version}-${options.platform}-${release.toolArch}`;
  return { cache: options.actionsCache, key, paths: [dir, `${dir}.complete`], dir };
}

async function restoreEntry(options: InstallOllamaOptions, release: OllamaRelease, entry: CacheEntry) {
  let hit = false;
  try {
    hit = await entry.cache.restore([...entry.paths], entry.key);
  } catch (error) {
    // A missing or failing cache service only warns (interface.md): download instead.
    options.log.warning(`Actions cache restore of ${entry.key} failed: ${describeError(error)}`);
    return false;
  }
  if (!hit) return false;
  const found = options.toolCache.find(TOOL, release.version, release.toolArch);
  if (found && (await pathExists(join(found, release.executable)))) {
    options.log.info(`Ollama ${release.version}: restored from the Actions cache (${entry.key})`);
    return true;
  }
  options.log.warning(`Actions cache entry ${entry.key} did not hold a complete Ollama install; downloading`);
  return false;
}

async function saveEntry(options: InstallOllamaOptions, entry: CacheEntry, dir: string): Promise<void> {
  if (dir !== entry.dir) {
    options.log.warning(
      `the tool cache put Ollama at ${dir}, not ${entry.dir}; not saving it to the Actions cache`,
    );
    return;
  }
  try {
    await entry.cache.save([...entry.paths], entry.key);
    options.log.info(`Ollama saved to the Actions cache as ${entry.key}`);
  } catch (error) {
    options.log.warning(`Actions cache save of ${entry.key} failed: ${describeError(error)}`);
  }
}

/** Checksum first (fail before a large download), then archive, verify, extract, cache. */
async function downloadAndCache(options: InstallOllamaOptions, release: OllamaRelease, http: HttpClient) {
  const expected = await expectedSha256(release, http, options);
  const work = await mkdtemp(join(options.tempDir ?? tmpdir(), 'model-pull-ollama-'));
  try {
    options.log.info(`Ollama ${release.version}: downloading ${redactUrl(release.url)}`);
    const archive = await download(options.toolCache, release, join(work, release.asset));
    const actual = await hashFile(archive, 'sha256');
    if (actual !== expected) {
      throw new ModelPullError(
        'ERR_DIGEST_MISMATCH',
        `${release.asset} of Ollama ${release.version} does not match the release's sha256sum.txt: ` +
          `expected sha256:${expected}, got sha256:${actual}; refusing to install it`,
      );
    }
    const extracted = await extract(options.toolCache, release, archive, join(work, 'extracted'));
    if (!(await pathExists(join(extracted, release.executable)))) {
      throw new ModelPullError('ERR_RUNTIME_INSTALL', `${release.asset} has no ${release.executable} inside`);
    }
    const dir = await options.toolCache.cacheDir(extracted, TOOL, release.version, release.toolArch);
    options.log.info(`Ollama ${release.version}: verified sha256:${actual}, installed at ${dir}`);
    return dir;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function expectedSha256(release: OllamaRelease, http: HttpClient, options: InstallOllamaOptions) {
  const text = await withRetries(
    async () => {
      const response = await http.request(
        release.checksumsUrl,
        options.signal ? { signal: options.signal } : {},
      );
      if (response.status === 404) {
        await response.body.dump().catch(() => undefined);
        return undefined;
      }
      if (response.status < 200 || response.status >= 300) {
        await response.body.dump().catch(() => undefined);
        throw new ModelPullError(
          'ERR_HTTP_STATUS',
          `HTTP ${response.status} from ${redactUrl(release.checksumsUrl)}`,
          {
            status: response.status,
          },
        );
      }
      return response.body.text();
    },
    options.retry ?? DEFAULT_RETRY_POLICY,
    options.signal ? { signal: options.signal } : {},
  );
  const hex = text === undefined ? undefined : parseChecksums(text).get(release.asset);
  if (!hex) {
    // An archive we cannot check is never installed.
    const why = text === undefined ? 'publishes no sha256sum.txt' : `lists no checksum for ${release.asset}`;
    throw new ModelPullError(
      'ERR_RUNTIME_INSTALL',
      `Ollama release ${release.tag} ${why}; refusing to install it`,
    );
  }
  return hex;
}

async function download(toolCache: ToolCache, release: OllamaRelease, dest: string): Promise<string> {
  try {
    return await toolCache.downloadTool(release.url, dest);
  } catch (error) {
    const status = (error as { httpStatusCode?: number }).httpStatusCode;
    const detail =
      status === 404 ? `release ${release.tag} has no asset ${release.asset}` : describeError(error);
    throw new ModelPullError(
      'ERR_RUNTIME_INSTALL',
      `could not download Ollama ${release.version} from ${redactUrl(release.url)}: ${detail}`,
      status === undefined ? { cause: error } : { cause: error, status },
    );
  }
}

async function extract(toolCache: ToolCache, release: OllamaRelease, archive: string, dest: string) {
  try {
    if (release.format === 'zip') return await toolCache.extractZip(archive, dest);
    // GNU tar hands `-d` to the program when reading, so `zstd` alone is the right program.
    if (release.format === 'tar.zst')
      return await toolCache.extractTar(archive, dest, ['x', '--use-compress-program=zstd']);
    return await toolCache.extractTar(archive, dest, 'xz');
  } catch (error) {
    const hint = release.format === 'tar.zst' ? ' (a .tar.zst archive needs zstd on PATH)' : '';
    throw new ModelPullError(
      'ERR_RUNTIME_INSTALL',
      `could not extract ${release.asset}: ${describeError(error)}${hint}`,
      {
        cause: error,
      },
    );
  }
}
