import { ModelPullError, redactUrl } from '../errors.js';
import type { HttpClient } from '../http/client.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, withRetries } from '../http/retry.js';

/** Where Ollama publishes its releases; a mirror with the same paths can replace it. */
export const DEFAULT_OLLAMA_RELEASES = 'https://github.com/ollama/ollama/releases';

/**
 * Releases before 0.3.7 shipped a bare executable per OS instead of an archive with
 * `bin/ollama` + `lib/ollama` (the packaging changed with the CUDA v12 work, ollama #5049).
 */
const OLDEST_ARCHIVE = [0, 3, 7] as const;
/** Linux archives are `.tar.zst` from 0.14.0 on, `.tgz` before (ollama #13651). */
const FIRST_ZSTD = [0, 14, 0] as const;

export type ArchiveFormat = 'tar.zst' | 'tgz' | 'zip';

/** One release asset for one runner, with everything needed to fetch, verify and cache it. */
export interface OllamaRelease {
  /** Version without the `v`, e.g. `0.14.2`. */
  readonly version: string;
  /** The git tag, e.g. `v0.14.2`. */
  readonly tag: string;
  /** Asset file name, e.g. `ollama-linux-amd64.tar.zst`. */
  readonly asset: string;
  readonly format: ArchiveFormat;
  /** Download URL of the asset (pinned to the tag, also when `latest` was asked for). */
  readonly url: string;
  /** The release's `sha256sum.txt`. */
  readonly checksumsUrl: string;
  /** The executable inside the extracted archive, relative, with `/`. */
  readonly executable: string;
  /** Node's name for the architecture (`x64`, `arm64`), as the tool cache files it. */
  readonly toolArch: 'x64' | 'arm64';
}

export interface ResolveReleaseOptions {
  /** Defaults to DEFAULT_OLLAMA_RELEASES. */
  readonly baseUrl?: string;
  /** Needed only for `latest`. */
  readonly http?: HttpClient;
  readonly retry?: RetryPolicy;
  readonly signal?: AbortSignal;
}

/**
 * Turns `latest` or a version into the release asset for this OS and architecture. `latest`
 * costs one request: the releases page answers `/latest` with a redirect to `/tag/vX.Y.Z`
 * (GitHub does; so does the test server), and the version it names is then pinned, so the
 * archive and its `sha256sum.txt` come from the same release even if a new one appears meanwhile.
 */
export async function resolveOllamaRelease(
  version: string,
  platform: NodeJS.Platform,
  arch: string,
  options: ResolveReleaseOptions = {},
): Promise<OllamaRelease> {
  const baseUrl = (options.baseUrl ?? DEFAULT_OLLAMA_RELEASES).replace(/\/+$/, '');
  const wanted = version.trim();
  // Refuse an unsupported runner before any request, and a malformed version too.
  const target = runnerTarget(platform, arch);
  let exact: string;
  if (wanted.toLowerCase() === 'latest') {
    if (!options.http)
      throw new ModelPullError('ERR_BAD_INPUT', 'resolving ollama-version latest needs an HTTP client');
    exact = await latestVersion(baseUrl, options.http, options.retry ?? DEFAULT_RETRY_POLICY, options.signal);
  } else {
    exact = normalizeVersion(wanted);
  }
  return releaseFor(exact, target, baseUrl);
}

/** `0.14.2` or `v0.14.2` (a pre-release suffix such as `-rc1` is allowed) → `0.14.2`. */
export function normalizeVersion(text: string): string {
  const m = /^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$/.exec(text.trim());
  if (!m) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `ollama-version "${text.slice(0, 60)}" is not a version: use latest or a release number such as 0.14.2`,
    );
  }
  return m[1]!;
}

interface RunnerTarget {
  readonly platform: 'linux' | 'darwin' | 'win32';
  readonly ollamaArch: 'amd64' | 'arm64';
  readonly toolArch: 'x64' | 'arm64';
}

/** Ollama publishes archives for Linux and Windows on amd64/arm64 and one universal macOS archive. */
function runnerTarget(platform: NodeJS.Platform, arch: string): RunnerTarget {
  const ollamaArch =
    arch === 'x64' || arch === 'amd64' ? 'amd64' : arch === 'arm64' || arch === 'aarch64' ? 'arm64' : '';
  if ((platform !== 'linux' && platform !== 'darwin' && platform !== 'win32') || ollamaArch === '') {
    throw new ModelPullError(
      'ERR_UNSUPPORTED_PLATFORM',
      `Ollama publishes no release archive for ${platform}/${arch}; ollama-version works on Linux and Windows ` +
        '(x64, arm64) and macOS runners',
    );
  }
  return { platform, ollamaArch, toolArch: ollamaArch === 'amd64' ? 'x64' : 'arm64' };
}

function releaseFor(version: string, target: RunnerTarget, baseUrl: string): OllamaRelease {
  const triple = versionTriple(version);
  if (compareTriples(triple, OLDEST_ARCHIVE) < 0) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `ollama-version ${version} is too old: releases before ${OLDEST_ARCHIVE.join('.')} ship no archive to install`,
    );
  }
  let asset: string;
  let format: ArchiveFormat;
  let executable: string;
  if (target.platform === 'linux') {
    format = compareTriples(triple, FIRST_ZSTD) >= 0 ? 'tar.zst' : 'tgz';
    asset = `ollama-linux-${target.ollamaArch}.${format}`;
    executable = 'bin/ollama';
  } else if (target.platform === 'darwin') {
    // One universal archive for both Mac architectures, the executable at its root.
    format = 'tgz';
    asset = 'ollama-darwin.tgz';
    executable = 'ollama';
  } else {
    format = 'zip';
    asset = `ollama-windows-${target.ollamaArch}.zip`;
    executable = 'ollama.exe';
  }
  const tag = `v${version}`;
  const download = `${baseUrl}/download/${encodeURIComponent(tag)}`;
  return {
    version,
    tag,
    asset,
    format,
    url: `${download}/${asset}`,
    checksumsUrl: `${download}/sha256sum.txt`,
    executable,
    toolArch: target.toolArch,
  };
}

async function latestVersion(
  baseUrl: string,
  http: HttpClient,
  retry: RetryPolicy,
  signal: AbortSignal | undefined,
): Promise<string> {
  const url = `${baseUrl}/latest`;
  const location = await withRetries(
    async () => {
      const response = await http.request(url, { maxRedirects: 0, ...(signal ? { signal } : {}) });
      await response.body.dump().catch(() => undefined);
      if (response.status >= 500 || response.status === 429) {
        throw new ModelPullError('ERR_HTTP_STATUS', `HTTP ${response.status} from ${redactUrl(url)}`, {
          status: response.status,
        });
      }
      const header = response.headers.location;
      return response.status >= 300 && response.status < 400 && header ? String(header) : undefined;
    },
    retry,
    signal ? { signal } : {},
  );
  const tag = location ? /\/tag\/([^/?#]+)\/?$/.exec(new URL(location, url).pathname)?.[1] : undefined;
  if (!tag) {
    throw new ModelPullError(
      'ERR_RUNTIME_INSTALL',
      `could not learn the latest Ollama version: ${redactUrl(url)} did not redirect to a release tag`,
    );
  }
  return normalizeVersion(decodeURIComponent(tag));
}

function versionTriple(version: string): [number, number, number] {
  const [major, minor, patch] = version.split(/[.-]/, 3).map(Number);
  return [major ?? 0, minor ?? 0, patch ?? 0];
}

function compareTriples(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < 3; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Reads `sha256sum.txt` as coreutils writes it: `<64 hex>␠␠<name>` (or `␠*<name>` in binary
 * mode). Ollama's release job runs it over `find .`, so names carry a `./` prefix; matching is
 * on the bare file name.
 */
export function parseChecksums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(line.trim());
    if (!m) continue;
    const name = m[2]!.trim().replace(/^\.\//, '');
    sums.set(name.slice(name.lastIndexOf('/') + 1), m[1]!.toLowerCase());
  }
  return sums;
}
