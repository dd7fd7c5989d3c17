import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CacheClient } from '../cache/client.js';
import { isSha256Hex } from '../digest.js';
import { fetchBlobs } from '../download/engine.js';
import type { BlobSpec } from '../download/types.js';
import { describeError, ModelPullError, redactUrl } from '../errors.js';
import { pathExists } from '../fs-dirs.js';
import { BODY_LIMITS, readText } from '../http/body.js';
import type { HttpClient } from '../http/client.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, withRetries } from '../http/retry.js';
import type { Logger } from '../report/logger.js';
import { type OllamaRelease, parseChecksums, resolveOllamaRelease } from './release.js';

/** The part of `@actions/tool-cache` used here; the module itself satisfies it. */
export interface ToolCache {
  extractTar(file: string, dest?: string, flags?: string | string[]): Promise<string>;
  extractZip(file: string, dest?: string): Promise<string>;
  cacheDir(sourceDir: string, tool: string, version: string, arch?: string): Promise<string>;
  find(toolName: string, versionSpec: string, arch?: string): string;
}

/**
 * The Actions cache as far as the runtime needs it; the pipeline's CacheClient is one. Restore
 * places a planned file only once its bytes match the planned digest. Either may throw: that
 * only warns here.
 */
export type RuntimeCache = Pick<CacheClient, 'restore' | 'save'>;

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
  /** The sha256 hex of the release archive, when the user pins it (else sha256sum.txt decides). */
  readonly sha256?: string;
  readonly log: Logger;
  /** The run's one configured client (proxy, ca-cert), so the release download honours them. */
  readonly http: HttpClient;
  readonly retry?: RetryPolicy;
  /** Parallel range requests for the archive (the `connections` input). */
  readonly connections?: number;
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
 * Installs the Ollama CLI for this runner: the tool cache (this machine's own disk), else the
 * release archive, from the Actions cache or from the release, and verified against the
 * release's `sha256sum.txt` (or a pinned digest) before anything is extracted. The Actions
 * cache holds the archive itself, never an extracted install: what is restored is untrusted
 * until its digest matches one that did not come from the cache, and nothing unverified is
 * ever executed. Adding `binDir` to PATH is the entry point's job.
 */
export async function installOllama(options: InstallOllamaOptions): Promise<InstalledOllama> {
  const http = options.http;
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
  const expected =
    options.sha256 !== undefined
      ? pinnedSha256(options.sha256)
      : await expectedSha256(release, http, options);
  const work = await mkdtemp(join(options.tempDir ?? tmpdir(), 'model-pull-ollama-'));
  try {
    const entry = actionsCacheEntry(options, release, expected);
    const archive = entry?.archive ?? join(work, release.asset);
    let source: InstalledOllama['source'] = 'download';
    if (entry && (await restoreEntry(options, release, entry, expected))) source = 'actions-cache';
    else await downloadArchive(options, release, archive, expected);
    const extracted = await extract(options.toolCache, release, archive, join(work, 'extracted'));
    if (!(await pathExists(join(extracted, release.executable)))) {
      throw new ModelPullError('ERR_RUNTIME_INSTALL', `${release.asset} has no ${release.executable} inside`);
    }
    const dir = await options.toolCache.cacheDir(extracted, TOOL, release.version, release.toolArch);
    options.log.info(`Ollama ${release.version}: verified sha256:${expected}, installed at ${dir}`);
    if (entry && source === 'download') await saveEntry(options, entry);
    return installed(release, dir, source);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function installed(release: OllamaRelease, dir: string, source: InstalledOllama['source']): InstalledOllama {
  const executable = join(dir, release.executable);
  return { version: release.version, binDir: join(executable, '..'), executable, source };
}

function pinnedSha256(text: string): string {
  const hex = text
    .trim()
    .toLowerCase()
    .replace(/^sha256:/, '');
  if (!isSha256Hex(hex)) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `ollama-sha256 "${text.slice(0, 80)}" is not a sha256 hex digest`,
    );
  }
  return hex;
}

interface CacheEntry {
  readonly cache: RuntimeCache;
  readonly key: string;
  /** The verified release archive: the entry's only path, the same on save and restore. */
  readonly archive: string;
}

function actionsCacheEntry(
  options: InstallOllamaOptions,
  release: OllamaRelease,
  sha256: string,
): CacheEntry | undefined {
  if (!options.actionsCache) return undefined;
  if (!options.toolCacheRoot) {
    // The cache is an optimisation: without a stable folder there is no path to save.
    options.log.warning(
      'the tool cache folder is unknown, so the Ollama install is not kept in the Actions cache',
    );
    return undefined;
  }
  // The key names the archive's digest: an entry under it can only ever be used if its bytes
  // hash to that digest, and a new release build (another digest) never meets an old entry.
  const archive = join(
    options.toolCacheRoot,
    '.model-pull',
    `ollama-${release.version}-${release.toolArch}`,
    release.asset,
  );
  const prefix = options.cacheKeyPrefix ?? 'model-pull';
  const key = `${prefix}-ollama-${release.version}-${options.platform}-${release.toolArch}-sha256-${sha256}`;
  return { cache: options.actionsCache, key, archive };
}

/**
 * True when the entry put the release archive at its path; the restore verified it against
 * `sha256` (which did not come from the cache) while writing it, so nothing else ever lands there.
 */
async function restoreEntry(
  options: InstallOllamaOptions,
  release: OllamaRelease,
  entry: CacheEntry,
  sha256: string,
): Promise<boolean> {
  const blob = archiveBlob(release, entry.archive, sha256);
  let result: Awaited<ReturnType<RuntimeCache['restore']>>;
  try {
    result = await entry.cache.restore({ key: entry.key, paths: [entry.archive], blobs: [blob] });
  } catch (error) {
    // A missing or failing cache service only warns (docs/actions-cache.md, "The client's behaviour"): download instead.
    options.log.warning(`Actions cache restore of ${entry.key} failed: ${describeError(error)}`);
    return false;
  }
  if (result.restored.has(entry.archive)) {
    options.log.info(
      `Ollama ${release.version}: restored from the Actions cache (${entry.key}), sha256 verified`,
    );
    return true;
  }
  if (result.state !== 'miss' && result.state !== 'off') {
    // What it held instead was refused (and said so); a plain absence is worth its own warning.
    const said = result.refused !== undefined || result.failure !== undefined;
    const message = `Actions cache entry ${entry.key} did not hold the Ollama ${release.version} release archive with sha256:${sha256}; reinstalling from the release`;
    if (said) options.log.info(message);
    else options.log.warning(message);
  }
  return false;
}

/** The release archive as the engine places it: at `target`, only once it hashes to `sha256`. */
function archiveBlob(release: OllamaRelease, target: string, sha256: string): BlobSpec {
  return {
    digest: { algorithm: 'sha256', hex: sha256 },
    label: `Ollama ${release.version} ${release.asset}`,
    target,
    ingestDir: join(target, '..', '.ingest'),
    locate: async () => ({ url: release.url }),
  };
}

async function saveEntry(options: InstallOllamaOptions, entry: CacheEntry): Promise<void> {
  try {
    await entry.cache.save([entry.archive], entry.key);
    options.log.info(`Ollama saved to the Actions cache as ${entry.key}`);
  } catch (error) {
    options.log.warning(`Actions cache save of ${entry.key} failed: ${describeError(error)}`);
  }
}

/**
 * The archive through the download engine and the run's HTTP client: proxy, ca-cert and retries
 * apply, ranges run in parallel, and the bytes reach `archive` only once their sha256 matches.
 */
async function downloadArchive(
  options: InstallOllamaOptions,
  release: OllamaRelease,
  archive: string,
  sha256: string,
): Promise<void> {
  options.log.info(`Ollama ${release.version}: downloading ${redactUrl(release.url)}`);
  try {
    await fetchBlobs([archiveBlob(release, archive, sha256)], {
      http: options.http,
      concurrency: 1,
      connections: options.connections ?? 4,
      verify: 'full',
      retry: options.retry ?? DEFAULT_RETRY_POLICY,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (error instanceof ModelPullError && error.code === 'ERR_DIGEST_MISMATCH') {
      const got = /got ([0-9a-f]{64})/.exec(error.message)?.[1];
      throw new ModelPullError(
        'ERR_DIGEST_MISMATCH',
        `${release.asset} of Ollama ${release.version} does not match the release's sha256sum.txt: ` +
          `expected sha256:${sha256}, got ${got ? `sha256:${got}` : 'other bytes'}; refusing to install it`,
        { cause: error },
      );
    }
    const status = error instanceof ModelPullError ? error.status : undefined;
    const detail =
      status === 404 ? `release ${release.tag} has no asset ${release.asset}` : describeError(error);
    throw new ModelPullError(
      'ERR_RUNTIME_INSTALL',
      `could not download Ollama ${release.version} from ${redactUrl(release.url)}: ${detail}`,
      status === undefined ? { cause: error } : { cause: error, status },
    );
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
      return readText(response, BODY_LIMITS.checksums, 'sha256sum.txt');
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
