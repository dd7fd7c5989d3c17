import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { ModelPullError, redactUrl } from '../errors.js';
import { readText } from '../http/body.js';
import type { HttpClient } from '../http/client.js';
import { type RetryPolicy, withRetries } from '../http/retry.js';

/** The runner's cache service, as the settings module read it from the job's environment. */
export interface CacheServiceConfig {
  /** `v2` (Twirp, github.com) or `v1` (the legacy REST service of GitHub Enterprise Server). */
  readonly protocol: 'v1' | 'v2';
  /** ACTIONS_RESULTS_URL (v2) or ACTIONS_CACHE_URL (v1). */
  readonly url: string;
  readonly token: string | undefined;
  /** False when ACTIONS_CACHE_MODE forbids reads (`none`, `write-only`). */
  readonly readable: boolean;
  /** The effective ACTIONS_CACHE_MODE, for messages. */
  readonly mode: string;
}

/** Where an entry's archive can be fetched, as the service answered a lookup. */
export interface FoundEntry {
  readonly url: string;
  readonly key: string;
}

/**
 * @actions/cache 6.3's compression method: `zstd-without-long` when a `zstd` binary answers
 * `zstd --quiet --version`, else `gzip` (lib/internal/cacheUtils.js getCompressionMethod). It
 * is part of the entry's version, so restore must name the one the saving job used, and that
 * job ran the same library on the same kind of runner.
 */
let compression: Promise<'zstd-without-long' | 'gzip'> | undefined;
export function compressionMethod(): Promise<'zstd-without-long' | 'gzip'> {
  compression ??= new Promise((resolve) => {
    // The environment is named so the PATH searched is this realm's (a test's own, under jest).
    const options = { timeout: 10_000, env: process.env };
    execFile('zstd', ['--quiet', '--version'], options, (_error, stdout, stderr) => {
      resolve(`${stdout}${stderr}`.trim() === '' ? 'gzip' : 'zstd-without-long');
    });
  });
  return compression;
}

/**
 * The `version` an entry is filed under, computed exactly as @actions/cache 6.3 does
 * (cacheUtils.getCacheVersion): sha256 of the path strings as given to saveCache, then the
 * compression method, then `windows-only` on Windows (no cross-OS archives), then the salt
 * `1.0`, joined with `|`.
 */
export function cacheVersion(
  paths: readonly string[],
  method: string,
  platform: NodeJS.Platform = process.platform,
): string {
  const parts = [...paths, method];
  if (platform === 'win32') parts.push('windows-only');
  parts.push('1.0');
  return createHash('sha256').update(parts.join('|')).digest('hex');
}

/**
 * The path list as handed to saveCache, which files the entry under a version hashing it:
 * @actions/cache treats each path as a glob (@actions/glob), so `\`, `[`, `?` and `*` are escaped
 * and a file named `model[1].bin` is taken literally; sorted and deduplicated so the version
 * does not depend on the caller's order.
 */
export function savedPathList(paths: readonly string[]): string[] {
  const escaped = paths.map((p) =>
    p.replace(/\\/g, '\\\\').replace(/\[/g, '[[]').replace(/\?/g, '[?]').replace(/\*/g, '[*]'),
  );
  return [...new Set(escaped)].sort();
}

const TWIRP = '/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL';
/** A lookup answer is a few hundred bytes; anything far larger is not the service. */
const MAX_ANSWER = 64 * 1024;

/**
 * Asks the service for the entry with exactly this key and version (no restore keys: a model's
 * entry is named by its content, another key could only hold other bytes). Undefined on a miss.
 * Throws a ModelPullError when the service cannot be used (the caller turns it into a warning).
 */
export async function lookupEntry(
  http: HttpClient,
  retry: RetryPolicy,
  service: CacheServiceConfig,
  key: string,
  version: string,
  signal?: AbortSignal,
): Promise<FoundEntry | undefined> {
  if (!service.token) {
    throw new ModelPullError('ERR_CACHE_SERVICE', 'ACTIONS_RUNTIME_TOKEN is not set');
  }
  const credentials = {
    origin: new URL(service.url).origin,
    headers: { authorization: `Bearer ${service.token}` },
  };
  const call = async (
    url: string,
    init: { name: string; method: 'GET' | 'POST'; body?: string; accept: string },
  ) =>
    withRetries(
      async () => {
        const response = await http.request(url, {
          method: init.method,
          headers: { accept: init.accept, ...(init.body ? { 'content-type': 'application/json' } : {}) },
          credentials,
          maxRedirects: 0,
          ...(init.body !== undefined ? { body: init.body } : {}),
          ...(signal ? { signal } : {}),
        });
        const text = await readText(response, MAX_ANSWER, `the cache service's ${init.name} answer`);
        // 500, 502, 503, 504 are retried (briefly, by the caller's policy), as @actions/cache
        // does; any other failure, 429 above all, is not: the service is left alone.
        if ([500, 502, 503, 504].includes(response.status)) {
          throw new ModelPullError('ERR_HTTP_STATUS', failed(init.name, response.status, text), {
            status: response.status,
          });
        }
        return { status: response.status, text };
      },
      retry,
      signal ? { signal } : {},
    );
  if (service.protocol === 'v2') {
    const url = new URL(TWIRP, service.url).toString();
    const { status, text } = await call(url, {
      name: 'GetCacheEntryDownloadURL',
      method: 'POST',
      body: JSON.stringify({ key, restore_keys: [], version }),
      accept: 'application/json',
    });
    const answer = parseAnswer(status, text, 'GetCacheEntryDownloadURL');
    if (answer.ok !== true) return undefined;
    return entryOf(answer.signed_download_url, answer.matched_key, key);
  }
  // v1: GET {ACTIONS_CACHE_URL}_apis/artifactcache/cache?keys=…&version=… → 204 (miss) or the entry.
  const url = `${service.url}_apis/artifactcache/cache?keys=${encodeURIComponent(key)}&version=${version}`;
  const { status, text } = await call(url, {
    name: 'artifactcache',
    method: 'GET',
    accept: 'application/json;api-version=6.0-preview.1',
  });
  if (status === 204) return undefined;
  const answer = parseAnswer(status, text, 'artifactcache');
  return entryOf(answer.archiveLocation, answer.cacheKey, key);
}

function failed(call: string, status: number, text: string): string {
  const detail = text
    .replace(/[\p{Cc}\s]+/gu, ' ')
    .trim()
    .slice(0, 200);
  return `${call} answered HTTP ${status}${detail ? `: ${detail.replace(/https?:\/\/\S+/g, (u) => redactUrl(u))}` : ''}`;
}

function parseAnswer(status: number, text: string, call: string): Record<string, unknown> {
  if (status < 200 || status >= 300) {
    throw new ModelPullError('ERR_CACHE_SERVICE', failed(call, status, text), { status });
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new ModelPullError('ERR_CACHE_SERVICE', `${call} answered with something other than a JSON object`);
}

function entryOf(url: unknown, matched: unknown, key: string): FoundEntry | undefined {
  // Only the exact key is ever asked for; an answer naming another is not ours to use.
  if (typeof url !== 'string' || url === '' || (matched !== undefined && matched !== key)) return undefined;
  return { url, key };
}
