import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { isKeyPrefix, KEY_PREFIX_RULE } from '../cache/key.js';
import type { CacheServiceConfig } from '../cache/service.js';
import { Inputs, USER_AGENT } from '../constants.js';
import { isSha256Hex } from '../digest.js';
import { readBoundedSync } from '../download/safe-fs.js';
import { ModelPullError } from '../errors.js';
import { type HttpOptions, isLoopbackHost } from '../http/client.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../http/retry.js';
import { modelLines } from '../refs/line.js';
import type { SourceOption } from '../sources/descriptor.js';
import { type MirrorSettings, mirrorSettings } from './mirrors.js';

/**
 * Everything a run needs, read once from action inputs or CLI flags and the environment.
 * Nothing else in model-pull reads inputs or `process.env`.
 */
export interface Settings extends MirrorSettings {
  /** Model lines, blank lines and comments removed. */
  readonly lines: readonly string[];
  /** Ollama store root (`$OLLAMA_MODELS` or `~/.ollama/models`). */
  readonly ollamaModels: string;
  /** Hugging Face hub cache root. */
  readonly hfCache: string;
  /** Where `https:` references land. */
  readonly filesDir: string;
  /** The Hub or a mirror, without a trailing `/` and without any `user:pass@` (see hfEndpointAuth). */
  readonly hfEndpoint: string;
  /**
   * Credentials written into hf-endpoint as `user:pass@` (a mirror behind Basic auth): taken out of
   * the URL so it can be printed, sent as Basic auth to that origin only, the password masked.
   */
  readonly hfEndpointAuth: { readonly username: string; readonly password: string } | undefined;
  /** Sent only to the hub's origin; masked by the entry point. */
  readonly hfToken: string | undefined;
  readonly cache: boolean;
  /** False: restore only, never save an entry (`save: false`). */
  readonly save: boolean;
  /** Stop before any download or restore when a model has no cache entry. */
  readonly failOnCacheMiss: boolean;
  readonly cacheKeyPrefix: string;
  /** Files downloaded at once. */
  readonly concurrency: number;
  /** Parallel range requests per large file. */
  readonly connections: number;
  readonly verify: 'full' | 'size';
  readonly lockfile: LockfileSetting | undefined;
  readonly exportEnv: boolean;
  readonly hfOffline: boolean;
  /** Ollama version to install (`latest` allowed); undefined: no install. */
  readonly ollamaVersion: string | undefined;
  readonly ollamaServe: boolean;
  /** Release page the Ollama archive comes from (a mirror of GitHub's releases). */
  readonly ollamaDownloadUrl: string;
  /** The release archive's sha256, pinned by the user; else the release's sha256sum.txt decides. */
  readonly ollamaSha256: string | undefined;
  /** The runner's tool cache and temp folders (RUNNER_TOOL_CACHE, RUNNER_TEMP). */
  readonly runner: {
    readonly toolCache: string | undefined;
    readonly temp: string | undefined;
    /** The job's Actions cache service; undefined when it has none. */
    readonly cacheService?: CacheServiceConfig;
  };
  /** Basic credentials for one private OCI registry (`host`), sent only to its token realm. */
  readonly registryAuth:
    | { readonly host: string; readonly username: string; readonly password: string }
    | undefined;
  /** Hosts other than the registry itself that may act as its token realm (https only). */
  readonly allowedRealmHosts: readonly string[];
  /**
   * The values of the options that sources declare (`SourceDescriptor.options`), by name:
   * input or flag, else environment, else default; paths resolved. Absent when none applies.
   */
  readonly sourceOptions: Readonly<Record<string, string | undefined>>;
  readonly http: HttpOptions;
  readonly retry: RetryPolicy;
  /** Secrets the entry point must mask in every log line. */
  readonly secrets: readonly string[];
  /** Upload URLs of interrupted pushes, kept for the next run (`~/.cache/model-pull/uploads`). */
  readonly uploadsDir: string;
  /** How this run names an option in messages: `input "lock-mode"` or `--lock-mode`. */
  readonly nameOf: (input: string) => string;
  /** How a user sets an option to a value, for fixes in messages: `lock-mode: update`, `--lock-mode update`. */
  readonly settingText: (input: string, value: string) => string;
}

/**
 * `frozen`: the lock file must exist and cover every line (like `npm ci`); `update`: it is
 * written when absent, and lines it lacks are resolved and added.
 */
export type LockMode = 'frozen' | 'update';

export interface LockfileSetting {
  /** Absolute. */
  readonly path: string;
  /** As the user wrote it (relative to the workspace or working folder): for commands in messages. */
  readonly shown: string;
  readonly mode: LockMode;
}

/** Raw values by input name (`undefined` or '' = not given): the shared inputs and the sources' own. */
export type RawInputs = Readonly<Partial<Record<(typeof Inputs)[keyof typeof Inputs], string>>> &
  Readonly<Record<string, string | undefined>>;

export type Env = Readonly<Record<string, string | undefined>>;

export interface SettingsContext {
  readonly env: Env;
  readonly home?: string;
  readonly cwd?: string;
  /** How an option is named in errors: `input "concurrency"` or `--concurrency`. */
  readonly nameOf: (input: string) => string;
  /** How a user sets an option (`lock-mode: update`); `<nameOf> <value>` when absent. */
  readonly settingText?: (input: string, value: string) => string;
  /** Whether `models` must be non-empty (the `verify` command takes none). */
  readonly requireModels?: boolean;
  /** Options the run's sources declare, read from `raw` like the shared inputs. */
  readonly sourceOptions?: readonly SourceOption[];
}

export function buildSettings(raw: RawInputs, ctx: SettingsContext): Settings {
  const env = ctx.env;
  const home = ctx.home ?? homedir();
  const cwd = ctx.cwd ?? process.cwd();
  const value = (name: keyof RawInputs): string | undefined => {
    const v = raw[name]?.trim();
    return v ? v : undefined;
  };
  const path = (p: string) => resolve(cwd, p.startsWith('~/') ? join(home, p.slice(2)) : p);
  const flag = (name: keyof RawInputs, fallback: boolean) =>
    parseBoolean(value(name), fallback, ctx.nameOf(name));
  const int = (name: keyof RawInputs, fallback: number, min: number, max: number) =>
    parseInteger(value(name), fallback, min, max, ctx.nameOf(name));

  const lines = modelLines(raw.models ?? '');
  if (ctx.requireModels !== false && lines.length === 0) {
    throw new ModelPullError('ERR_BAD_INPUT', `${ctx.nameOf(Inputs.Models)} names no model`);
  }
  const verify = value(Inputs.Verify) ?? 'full';
  if (verify !== 'full' && verify !== 'size') {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `${ctx.nameOf(Inputs.Verify)} must be full or size, got "${verify}"`,
    );
  }
  const {
    url: hfEndpoint,
    auth: hfEndpointAuth,
    secrets: endpointSecrets,
  } = hubEndpointSetting(
    value(Inputs.HfEndpoint) ?? nonEmpty(env.HF_ENDPOINT) ?? 'https://huggingface.co',
    ctx.nameOf(Inputs.HfEndpoint),
  );
  const insecure = flag(Inputs.Insecure, false);
  if (!insecure) refusePlainHttp(lines, hfEndpoint, ctx.nameOf);
  const hfToken = value(Inputs.HfToken) ?? nonEmpty(env.HF_TOKEN) ?? nonEmpty(env.HUGGING_FACE_HUB_TOKEN);
  const username = value(Inputs.RegistryUsername);
  const password = value(Inputs.RegistryPassword);
  const registryHost = value(Inputs.RegistryHost);
  // A credential goes into a header: a line break inside it (a secret pasted with its newline)
  // would fail every request, so it fails here, before any, without quoting the secret.
  for (const [name, secret] of [
    [`${ctx.nameOf(Inputs.HfToken)} (or HF_TOKEN)`, hfToken],
    [ctx.nameOf(Inputs.RegistryUsername), username],
    [ctx.nameOf(Inputs.RegistryPassword), password],
  ] as const) {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: exactly what is refused
    if (secret !== undefined && /[\u0000-\u001f\u007f]/.test(secret)) {
      throw new ModelPullError('ERR_BAD_INPUT', `${name} contains a line break or control character`);
    }
  }
  if (username !== undefined && registryHost === undefined) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `${ctx.nameOf(Inputs.RegistryUsername)} needs ${ctx.nameOf(Inputs.RegistryHost)}: the registry (host[:port]) the credentials belong to`,
    );
  }
  if ((username === undefined) !== (password === undefined)) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `${ctx.nameOf(Inputs.RegistryUsername)} and ${ctx.nameOf(Inputs.RegistryPassword)} go together`,
    );
  }
  const prefix = value(Inputs.CacheKeyPrefix) ?? 'model-pull';
  if (!isKeyPrefix(prefix)) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `${ctx.nameOf(Inputs.CacheKeyPrefix)} must be ${KEY_PREFIX_RULE}`,
    );
  }
  const cache = flag(Inputs.Cache, true);
  const failOnCacheMiss = flag(Inputs.FailOnCacheMiss, false);
  if (failOnCacheMiss && !cache) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `${ctx.nameOf(Inputs.FailOnCacheMiss)} needs the cache: it cannot be true with ${ctx.nameOf(Inputs.Cache)} false`,
    );
  }
  const lockMode = value(Inputs.LockMode) ?? 'frozen';
  if (lockMode !== 'frozen' && lockMode !== 'update') {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `${ctx.nameOf(Inputs.LockMode)} must be frozen or update, got "${lockMode}"`,
    );
  }
  const lockfile = value(Inputs.Lockfile);
  const concurrency = int(Inputs.Concurrency, 4, 1, 64);
  const connections = int(Inputs.Connections, 16, 1, 64);
  const caFile = value(Inputs.CaCert);
  const ollamaServe = flag(Inputs.OllamaServe, false);
  const ollamaVersion = value(Inputs.OllamaVersion);
  if (ollamaServe && !ollamaVersion) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `${ctx.nameOf(Inputs.OllamaServe)} needs ${ctx.nameOf(Inputs.OllamaVersion)} (the version to install, or latest)`,
    );
  }
  const ollamaSha256 = value(Inputs.OllamaSha256)
    ?.toLowerCase()
    .replace(/^sha256:/, '');
  if (ollamaSha256 !== undefined && !isSha256Hex(ollamaSha256)) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `${ctx.nameOf(Inputs.OllamaSha256)} must be a sha256 hex digest (64 hex characters), not "${ollamaSha256.slice(0, 80)}"`,
    );
  }
  const sourceOptions: Record<string, string | undefined> = {};
  for (const option of ctx.sourceOptions ?? []) {
    const given =
      nonEmpty(raw[option.name]) ??
      (option.env ?? []).map((name) => nonEmpty(env[name])).find((v) => v !== undefined) ??
      option.default;
    sourceOptions[option.name] = given !== undefined && option.type === 'path' ? path(given) : given;
  }
  const secrets = [
    hfToken,
    password,
    ...endpointSecrets,
    ...(ctx.sourceOptions ?? []).filter((o) => o.type === 'secret').map((o) => sourceOptions[o.name]),
  ].filter((s): s is string => s !== undefined);
  return {
    lines,
    ollamaModels: path(value(Inputs.OllamaModels) ?? nonEmpty(env.OLLAMA_MODELS) ?? '~/.ollama/models'),
    hfCache: path(value(Inputs.HfCache) ?? defaultHfCache(env)),
    filesDir: path(value(Inputs.FilesDir) ?? '~/.cache/model-pull/files'),
    hfEndpoint,
    hfEndpointAuth,
    hfToken,
    cache,
    save: flag(Inputs.Save, true),
    failOnCacheMiss,
    cacheKeyPrefix: prefix,
    concurrency,
    connections,
    verify,
    lockfile: lockfile ? { path: path(lockfile), shown: lockfile, mode: lockMode } : undefined,
    exportEnv: flag(Inputs.ExportEnv, true),
    hfOffline: flag(Inputs.HfOffline, false),
    ollamaVersion,
    ollamaServe,
    ollamaDownloadUrl: (
      value(Inputs.OllamaDownloadUrl) ?? 'https://github.com/ollama/ollama/releases'
    ).replace(/\/+$/, ''),
    ollamaSha256,
    runner: {
      toolCache: nonEmpty(env.RUNNER_TOOL_CACHE),
      temp: nonEmpty(env.RUNNER_TEMP),
      ...cacheService(env),
    },
    registryAuth:
      username && password && registryHost ? { host: registryHost, username, password } : undefined,
    allowedRealmHosts: (value(Inputs.AllowedRealmHosts) ?? '').split(/[\s,]+/).filter(Boolean),
    sourceOptions,
    http: {
      // The engine's budget: `concurrency` files of `connections` ranges each (small files share it).
      connections: connections * concurrency,
      insecure,
      extraCa: caFile ? readCa(path(caFile), ctx.nameOf(Inputs.CaCert)) : undefined,
      proxy: proxyFrom(env),
      stallTimeoutMs: int(Inputs.StallTimeout, 30, 1, 3600) * 1000,
      userAgent: USER_AGENT,
    },
    retry: { ...DEFAULT_RETRY_POLICY, retries: int(Inputs.Retries, DEFAULT_RETRY_POLICY.retries, 0, 50) },
    secrets,
    ...mirrorSettings(value, ctx.nameOf),
    uploadsDir: path('~/.cache/model-pull/uploads'),
    nameOf: ctx.nameOf,
    settingText: ctx.settingText ?? ((input, v) => `${ctx.nameOf(input)} ${v}`),
  };
}

/**
 * hf-endpoint split into a printable URL and the `user:pass@` it may carry (issue 10: the password
 * reached the error annotation, the `models` output and the summary). Errors never echo userinfo.
 */
function hubEndpointSetting(
  given: string,
  name: string,
): { url: string; auth: Settings['hfEndpointAuth']; secrets: string[] } {
  const bad = () =>
    new ModelPullError('ERR_BAD_INPUT', `${name} is not a URL: "${given.replace(/\/\/[^/]*@/, '//***@')}"`);
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw bad();
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || !/^https?:\/\/[^/]+/i.test(given))
    throw bad();
  if (!url.username && !url.password)
    return { url: url.toString().replace(/\/+$/, ''), auth: undefined, secrets: [] };
  let auth: NonNullable<Settings['hfEndpointAuth']>;
  try {
    auth = { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
  } catch {
    throw bad();
  }
  // Masked as decoded, as written (percent-encoded) and as sent (the Basic header's base64).
  const header = Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
  const secrets = auth.password ? [...new Set([auth.password, url.password, header])] : [];
  url.username = '';
  url.password = '';
  return { url: url.toString().replace(/\/+$/, ''), auth, secrets };
}

/**
 * Plain http to a host other than loopback needs `insecure` (docs/security.md, Network): said before any
 * request, naming the option, instead of as a download failure. A reference may carry its
 * source's prefix before the URL (`ollama:http://…`).
 */
function refusePlainHttp(lines: readonly string[], hfEndpoint: string, nameOf: (input: string) => string) {
  const plainHost = (text: string) => {
    const host = /^(?:[a-z][a-z0-9-]*:)?http:\/\/([^/\s?#]+)/i.exec(text)?.[1];
    if (host === undefined) return undefined;
    let hostname: string;
    try {
      hostname = new URL(`http://${host}`).hostname;
    } catch {
      return undefined; // the line's own parser says what is wrong with it
    }
    return isLoopbackHost(hostname) ? undefined : hostname;
  };
  const fix = `needs ${nameOf(Inputs.Insecure)} (or use https)`;
  for (const line of lines) {
    const host = plainHost(line);
    if (host) throw new ModelPullError('ERR_BAD_INPUT', `model line "${line}": plain http to ${host} ${fix}`);
  }
  const hub = plainHost(hfEndpoint);
  if (hub) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `${nameOf(Inputs.HfEndpoint)} ${hfEndpoint}: plain http to ${hub} ${fix}`,
    );
  }
}

/** huggingface_hub's order: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME, ~/.cache. */
function defaultHfCache(env: Env): string {
  return (
    nonEmpty(env.HF_HUB_CACHE) ??
    nonEmpty(env.HUGGINGFACE_HUB_CACHE) ??
    (nonEmpty(env.HF_HOME) ? join(env.HF_HOME!, 'hub') : undefined) ??
    (nonEmpty(env.XDG_CACHE_HOME) ? join(env.XDG_CACHE_HOME!, 'huggingface', 'hub') : undefined) ??
    '~/.cache/huggingface/hub'
  );
}

function proxyFrom(env: Env): HttpOptions['proxy'] {
  const httpsProxy = nonEmpty(env.HTTPS_PROXY) ?? nonEmpty(env.https_proxy);
  const httpProxy = nonEmpty(env.HTTP_PROXY) ?? nonEmpty(env.http_proxy);
  if (!httpsProxy && !httpProxy) return undefined;
  return { httpsProxy, httpProxy, noProxy: nonEmpty(env.NO_PROXY) ?? nonEmpty(env.no_proxy) };
}

/** A system bundle of every public CA is about 200 KiB; a private one is a few certificates. */
export const MAX_CA_BYTES = 4 * 1024 * 1024;

function readCa(file: string, name: string): string {
  const read = readBoundedSync(file, MAX_CA_BYTES);
  if (read.kind !== 'read') {
    const reason = read.kind === 'missing' ? 'no such file' : read.reason;
    throw new ModelPullError('ERR_BAD_INPUT', `${name}: cannot read ${file}: ${reason}`);
  }
  const pem = read.bytes.toString('utf8');
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ModelPullError('ERR_BAD_INPUT', `${name}: ${file} holds no PEM certificate`);
  }
  return pem;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v?.trim() ? v.trim() : undefined;
}

export function parseBoolean(v: string | undefined, fallback: boolean, name: string): boolean {
  if (v === undefined) return fallback;
  if (/^(true|yes|1|on)$/i.test(v)) return true;
  if (/^(false|no|0|off)$/i.test(v)) return false;
  throw new ModelPullError('ERR_BAD_INPUT', `${name} must be true or false, got "${v}"`);
}

export function parseInteger(
  v: string | undefined,
  fallback: number,
  min: number,
  max: number,
  name: string,
): number {
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `${name} must be a whole number from ${min} to ${max}, got "${v}"`,
    );
  }
  return Number(v);
}

/**
 * The runner's cache service, read the way @actions/cache 6.3 reads it (internal/config.js): v2
 * when ACTIONS_CACHE_SERVICE_V2 is set on github.com or GHE.com (ACTIONS_RESULTS_URL), else the
 * legacy v1 service (ACTIONS_CACHE_URL), which GitHub Enterprise Server always uses. An unset or
 * unknown ACTIONS_CACHE_MODE permits reads, as there.
 */
export function cacheService(env: Env): { cacheService?: CacheServiceConfig } {
  let ghes = true;
  try {
    const host = new URL(nonEmpty(env.GITHUB_SERVER_URL) ?? 'https://github.com').hostname.toUpperCase();
    ghes = !(host === 'GITHUB.COM' || host.endsWith('.GHE.COM') || host.endsWith('.LOCALHOST'));
  } catch {
    // an unparsable server URL is treated as GHES, which is what the library's URL() would throw on
  }
  const protocol = !ghes && nonEmpty(env.ACTIONS_CACHE_SERVICE_V2) ? 'v2' : 'v1';
  const url =
    protocol === 'v2'
      ? nonEmpty(env.ACTIONS_RESULTS_URL)
      : (nonEmpty(env.ACTIONS_CACHE_URL) ?? nonEmpty(env.ACTIONS_RESULTS_URL));
  if (!url) return {};
  const mode = (env.ACTIONS_CACHE_MODE ?? '').trim().toLowerCase();
  const readable =
    !['none', 'read', 'write', 'write-only'].includes(mode) || mode === 'read' || mode === 'write';
  return { cacheService: { protocol, url, token: nonEmpty(env.ACTIONS_RUNTIME_TOKEN), readable, mode } };
}
