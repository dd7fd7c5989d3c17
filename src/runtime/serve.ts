import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Clock, systemClock } from '../clock.js';
import { ModelPullError } from '../errors.js';
import { HttpClient } from '../http/client.js';
import { isAlive } from '../process-liveness.js';
import type { Logger } from '../report/logger.js';
import { readLogTail } from './log-tail.js';
import { missingModels } from './names.js';

/** Ollama's own default listen address. */
export const DEFAULT_OLLAMA_HOST = '127.0.0.1:11434';

export interface ServeOptions {
  /** The `ollama` executable (from installOllama). */
  readonly executable: string;
  /** The store the action filled; becomes OLLAMA_MODELS. */
  readonly modelsRoot: string;
  /** `host:port` (scheme optional) to listen on; becomes OLLAMA_HOST. Default 127.0.0.1:11434. */
  readonly host?: string;
  /** Upper bound for the server to answer GET /api/version. */
  readonly timeoutMs: number;
  /** Names that GET /api/tags must list: full (`registry.ollama.ai/library/x:tag`) or short (`x:tag`). */
  readonly expectedModels: readonly string[];
  readonly log: Logger;
  /** The environment the server inherits (the entry point passes its own); OLLAMA_* are set on top. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Folder for `ollama-serve.log`; a fresh temporary folder by default. */
  readonly logDir?: string;
  readonly pollIntervalMs?: number;
  /** Deadlines and poll waits; the wall clock by default. */
  readonly clock?: Clock;
}

export interface RunningOllama {
  /** `http://127.0.0.1:<port>`: the `ollama-host` output. */
  readonly host: string;
  readonly pid: number;
  readonly logFile: string;
  /** What GET /api/version reported. */
  readonly version: string;
  /** Names GET /api/tags listed. */
  readonly models: string[];
}

interface Bind {
  /** OLLAMA_HOST value. */
  readonly listen: string;
  /** Where clients reach it. */
  readonly url: string;
}

/**
 * Starts `ollama serve` detached on the filled store, waits (bounded) until GET /api/version
 * answers, then checks that GET /api/tags lists every pulled model: the end-to-end proof that
 * the store is laid out the way Ollama reads it. On any failure the server is stopped again.
 */
export async function startOllamaServe(options: ServeOptions): Promise<RunningOllama> {
  const bind = parseHost(options.host ?? DEFAULT_OLLAMA_HOST);
  const http = new HttpClient({
    connections: 1,
    insecure: false,
    stallTimeoutMs: 2000,
    userAgent: 'model-pull',
  });
  try {
    await refuseBusyPort(http, bind);
    const logDir = options.logDir ?? (await mkdtemp(join(tmpdir(), 'model-pull-ollama-serve-')));
    const logFile = join(logDir, 'ollama-serve.log');
    const server = await spawnServe(options, bind, logFile);
    try {
      const version = await waitUntilReady(server, http, bind, options, logFile);
      const models = await listedModels(http, bind);
      const missing = missingModels(options.expectedModels, models);
      if (missing.length > 0) {
        const what = missing.length === 1 ? 'the pulled model' : `${missing.length} pulled models:`;
        throw new ModelPullError(
          'ERR_RUNTIME_SERVE',
          `ollama serve at ${bind.url} does not list ${what} ${missing.join(', ')}; ` +
            `it lists ${listing(models)} from ${options.modelsRoot}`,
        );
      }
      options.log.info(`ollama serve ${version} (pid ${server.pid}) answers at ${bind.url}; log: ${logFile}`);
      return { host: bind.url, pid: server.pid, logFile, version, models };
    } catch (error) {
      await stopOllamaServe(server.pid, undefined, options.clock);
      throw error;
    } finally {
      server.detach();
    }
  } finally {
    await http.close();
  }
}

function listing(models: readonly string[]): string {
  if (models.length === 0) return 'no models';
  const shown = models.slice(0, 20).join(', ');
  return models.length > 20 ? `${shown} and ${models.length - 20} more` : shown;
}

/** Accepts `host:port`, `http://host:port` or a bare host (port 11434), as OLLAMA_HOST does. */
export function parseHost(text: string): Bind {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ModelPullError('ERR_BAD_INPUT', `"${text.slice(0, 80)}" is not a host:port for ollama serve`);
  }
  const port = url.port || '11434';
  const listen = `${url.hostname}:${port}`;
  // A server bound to every interface is reached through loopback.
  const reach = url.hostname === '0.0.0.0' ? '127.0.0.1' : url.hostname === '[::]' ? '[::1]' : url.hostname;
  return { listen, url: `http://${reach}:${port}` };
}

/** If something already answers there, a new server would fail to bind and we would test the wrong one. */
async function refuseBusyPort(http: HttpClient, bind: Bind): Promise<void> {
  let answered = false;
  try {
    const response = await http.request(`${bind.url}/api/version`);
    await response.body.dump().catch(() => undefined);
    answered = true;
  } catch {
    // nothing listening: the expected case
  }
  if (answered) {
    throw new ModelPullError(
      'ERR_RUNTIME_SERVE',
      `something already answers at ${bind.url}; stop it or choose another address for ollama serve`,
    );
  }
}

interface ServeProcess {
  readonly pid: number;
  /** Set once the process has exited or failed to start. */
  ended(): string | undefined;
  /** Drops our listeners so the detached server outlives this process cleanly. */
  detach(): void;
}

async function spawnServe(options: ServeOptions, bind: Bind, logFile: string): Promise<ServeProcess> {
  let ended: string | undefined;
  const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
    ended = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  };
  const onError = (error: Error) => {
    ended = `could not be started (${error.message})`;
  };
  const out = await open(logFile, 'a');
  let child: ChildProcess;
  try {
    // Detached with its own process group and output in a file, so it keeps running after the
    // step ends (the runner cleans up orphans when the job ends).
    child = spawn(options.executable, ['serve'], {
      env: { ...options.env, OLLAMA_MODELS: options.modelsRoot, OLLAMA_HOST: bind.listen },
      detached: true,
      stdio: ['ignore', out.fd, out.fd],
      windowsHide: true,
    });
    // Listen before any await: a failed spawn reports through 'error' on the next tick.
    child.on('exit', onExit);
    child.on('error', onError);
  } finally {
    await out.close();
  }
  child.unref();
  if (child.pid === undefined) {
    await new Promise((resolve) => setImmediate(resolve));
    throw new ModelPullError(
      'ERR_RUNTIME_SERVE',
      `${options.executable} serve ${ended ?? 'could not be started'}`,
    );
  }
  return {
    pid: child.pid,
    ended: () => ended,
    detach: () => {
      child.off('exit', onExit);
      child.off('error', onError);
    },
  };
}

async function waitUntilReady(
  server: ServeProcess,
  http: HttpClient,
  bind: Bind,
  options: ServeOptions,
  logFile: string,
): Promise<string> {
  const clock = options.clock ?? systemClock;
  const deadline = clock.now() + options.timeoutMs;
  const interval = options.pollIntervalMs ?? 250;
  for (;;) {
    const ended = server.ended();
    if (ended) throw await serveError(`ollama serve ${ended} before answering at ${bind.url}`, logFile);
    try {
      const { json } = await http.getJson(`${bind.url}/api/version`);
      const version = (json as { version?: unknown } | null)?.version;
      return typeof version === 'string' ? version : '';
    } catch {
      // not listening yet
    }
    const left = deadline - clock.now();
    if (left <= 0) {
      throw await serveError(
        `ollama serve did not answer GET ${bind.url}/api/version within ${options.timeoutMs} ms`,
        logFile,
      );
    }
    await clock.sleep(Math.min(interval, left));
  }
}

async function listedModels(http: HttpClient, bind: Bind): Promise<string[]> {
  const { json } = await http.getJson(`${bind.url}/api/tags`);
  const models = (json as { models?: unknown } | null)?.models;
  if (!Array.isArray(models)) {
    throw new ModelPullError('ERR_RUNTIME_SERVE', `GET ${bind.url}/api/tags answered without a models list`);
  }
  return models
    .map((m: { name?: unknown; model?: unknown }) => m?.name ?? m?.model)
    .filter((name): name is string => typeof name === 'string');
}

/** The message plus the last lines of the server's log, on one line. */
async function serveError(message: string, logFile: string): Promise<ModelPullError> {
  const tail = await readLogTail(logFile, 8);
  const quoted =
    tail.kind === 'refused'
      ? `cannot read ${logFile}: ${tail.reason}`
      : tail.lines.length > 0
        ? `last lines of ${logFile}: ${tail.lines.join(' | ')}`
        : `${logFile} is empty`;
  return new ModelPullError('ERR_RUNTIME_SERVE', `${message}; ${quoted}`);
}

/**
 * Stops a server started by startOllamaServe: SIGTERM to its process group (Ollama runs model
 * runners as children), SIGKILL if it is still there after `timeoutMs`. Returns once it is gone.
 */
export async function stopOllamaServe(
  pid: number,
  timeoutMs = 5000,
  clock: Clock = systemClock,
): Promise<void> {
  sendSignal(pid, 'SIGTERM');
  const deadline = clock.now() + timeoutMs;
  let killed = false;
  while (isAlive(pid)) {
    if (!killed && clock.now() >= deadline) {
      sendSignal(pid, 'SIGKILL');
      killed = true;
    } else if (killed && clock.now() >= deadline + 2000) {
      throw new ModelPullError('ERR_RUNTIME_SERVE', `ollama serve (pid ${pid}) did not stop`);
    }
    await clock.sleep(50);
  }
}

function sendSignal(pid: number, signal: NodeJS.Signals): void {
  try {
    // A negative pid addresses the process group the detached server leads (POSIX only).
    process.kill(process.platform === 'win32' ? pid : -pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}
