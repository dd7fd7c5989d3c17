import * as core from '@actions/core';
import * as toolCache from '@actions/tool-cache';
import { createActionsCache } from '../cache/actions-cache.js';
import { type CacheClient, createNoCache, restoreOnly } from '../cache/client.js';
import { EnvNames, Outputs } from '../constants.js';
import { describeError } from '../errors.js';
import { HttpClient } from '../http/client.js';
import { type MirrorReport, mirror } from '../mirror/run.js';
import { pull } from '../pull.js';
import { coreLogger } from '../report/core-logger.js';
import { formatBytes, formatDuration } from '../report/format.js';
import type { Logger } from '../report/logger.js';
import { modelLog, pushFailureLine } from '../report/model-log.js';
import { progressLines } from '../report/progress-log.js';
import {
  downloadedFromJson,
  modelsJson,
  pathsJson,
  stoppedMarkdown,
  summaryMarkdown,
} from '../report/summary.js';
import type { PullReport } from '../report/types.js';
import { installOllama } from '../runtime/install.js';
import { startOllamaServe } from '../runtime/serve.js';
import { settingsFromInputs } from '../settings/action-inputs.js';
import type { Env, Settings } from '../settings/settings.js';
import type { SourceList } from '../sources/descriptor.js';
import { DEFAULT_SOURCES } from '../sources/index.js';

/**
 * Why the step fails: `told` when every cause already has its own error annotation (a failed
 * model), so the entry point adds a summary line, not a second annotation for one failure.
 */
export interface ActionFailure {
  readonly failure: string;
  readonly told: boolean;
}

/**
 * The action's main step: settings → pull → outputs, env, summary → optional Ollama runtime.
 * Returns the failure, if any, for the entry point to report.
 */
export async function runAction(
  env: Env,
  sources: SourceList = DEFAULT_SOURCES,
  signal?: AbortSignal,
): Promise<ActionFailure | undefined> {
  const settings = settingsFromInputs(env, sources);
  // The run's configured client (proxy, ca-cert): cache lookups and archives, the Ollama release.
  const http = new HttpClient(settings.http);
  try {
    return await runWith(settings, sources, http, env, signal);
  } finally {
    await http.close();
  }
}

async function runWith(
  settings: Settings,
  sources: SourceList,
  http: HttpClient,
  env: Env,
  signal: AbortSignal | undefined,
): Promise<ActionFailure | undefined> {
  const log = coreLogger();
  const actionsCache = settings.cache
    ? createActionsCache({
        log,
        service: settings.runner.cacheService,
        http,
        retry: settings.retry,
        connections: settings.connections,
        ...(signal ? { signal } : {}),
      })
    : undefined;
  const client = actionsCache ?? createNoCache();
  const cache = settings.save ? client : restoreOnly(client, log);
  // Said as the stop comes, true for what it stops: a download keeps its progress, a cache
  // restore only the files it committed (an archive cannot be entered halfway).
  const onStop = () => log.info(stoppingLine(signal?.reason, (actionsCache?.restoring ?? 0) > 0));
  if (signal?.aborted) onStop();
  else signal?.addEventListener('abort', onStop, { once: true });
  try {
    return await runPipeline(settings, sources, http, env, signal, log, cache);
  } finally {
    signal?.removeEventListener('abort', onStop);
  }
}

/** Why the run is stopping: `stopping (SIGINT): …`. */
function stoppingLine(reason: unknown, restoring: boolean): string {
  const signal = reason instanceof StopRequest ? reason.signal : 'stopped';
  const kept = restoring
    ? 'files already restored from the Actions cache are kept; an archive being read is fetched again from its start next run'
    : 'progress is kept for the next run';
  return `stopping (${signal}): ${kept}`;
}

/** The abort reason of a stop the runner asked for (a cancelled job: SIGINT, then SIGTERM). */
export class StopRequest extends Error {
  constructor(readonly signal: string) {
    super(`stopped by ${signal}`);
  }
}

async function runPipeline(
  settings: Settings,
  sources: SourceList,
  http: HttpClient,
  env: Env,
  signal: AbortSignal | undefined,
  log: Logger,
  cache: CacheClient,
): Promise<ActionFailure | undefined> {
  const onProgress = progressLines((line) => log.info(line));
  // Each model's phases and its end are logged as they happen; a failure as its one annotation.
  const onModel = modelLog(log);
  const deps = { sources, log, cache, onProgress, onModel, signal };
  let report: PullReport & Partial<Pick<MirrorReport, 'pushes'>>;
  try {
    // mirror-to: the same pull, then every model pushed to the org's registry.
    report = settings.mirrorTo ? await mirror(settings, deps) : await pull(settings, deps);
  } catch (error) {
    // Stopped before any model was pulled: the summary still says why and what to do.
    await writeSummary(stoppedMarkdown(error));
    throw error;
  }
  await logModels(report, log);

  core.setOutput(Outputs.CacheHit, String(report.cacheHit));
  core.setOutput(Outputs.Models, JSON.stringify(modelsJson(report)));
  core.setOutput(Outputs.Paths, JSON.stringify(pathsJson(report)));
  core.setOutput(Outputs.OllamaModels, settings.ollamaModels);
  core.setOutput(Outputs.HfCache, settings.hfCache);
  core.setOutput(Outputs.DownloadedBytes, String(report.downloadedBytes));
  core.setOutput(Outputs.CachedBytes, String(report.cachedBytes));
  core.setOutput(Outputs.DownloadedFrom, JSON.stringify(downloadedFromJson(report)));
  if (settings.exportEnv) {
    core.exportVariable(EnvNames.OllamaModels, settings.ollamaModels);
    core.exportVariable(EnvNames.HfHubCache, settings.hfCache);
  }
  if (settings.hfOffline) core.exportVariable(EnvNames.HfHubOffline, '1');
  await writeSummary(summaryMarkdown(report, report.pushes));

  const failed = report.models.filter((m) => !m.output);
  if (failed.length)
    return {
      failure: `${failed.length} of ${report.models.length} models could not be pulled and verified`,
      told: true,
    };
  const unpushed = (report.pushes ?? []).filter((p) => p.error);
  for (const push of unpushed) log.error(pushFailureLine(push.line, push.error));
  if (unpushed.length)
    return {
      failure: `${unpushed.length} of ${report.models.length} models could not be pushed to ${settings.mirrorTo?.text}`,
      told: true,
    };

  if (settings.ollamaVersion) {
    const installed = await installOllama({
      version: settings.ollamaVersion,
      baseUrl: settings.ollamaDownloadUrl,
      platform: process.platform,
      arch: process.arch,
      toolCache,
      ...(settings.cache ? { actionsCache: cache } : {}),
      ...(settings.runner.toolCache ? { toolCacheRoot: settings.runner.toolCache } : {}),
      ...(settings.runner.temp ? { tempDir: settings.runner.temp } : {}),
      cacheKeyPrefix: settings.cacheKeyPrefix,
      ...(settings.ollamaSha256 ? { sha256: settings.ollamaSha256 } : {}),
      log,
      http,
      retry: settings.retry,
      connections: settings.connections,
      signal,
    });
    core.addPath(installed.binDir);
    core.setOutput(Outputs.OllamaVersion, installed.version);
    core.info(`Ollama ${installed.version} installed from the ${installed.source}`);
    if (settings.ollamaServe) {
      const expectedModels = report.models.flatMap((m) =>
        m.output?.source === 'ollama' ? [m.output.name] : [],
      );
      const running = await startOllamaServe({
        executable: installed.executable,
        modelsRoot: settings.ollamaModels,
        timeoutMs: 60_000,
        expectedModels,
        log,
        env: serverEnvironment(env),
      });
      core.setOutput(Outputs.OllamaHost, running.host);
      core.exportVariable(EnvNames.OllamaHost, running.host);
      core.info(`ollama serve (pid ${running.pid}) at ${running.host} lists ${running.models.length} models`);
    }
  }
  return undefined;
}

function writeSummary(markdown: string): Promise<unknown> {
  return core.summary
    .addRaw(markdown)
    .write()
    .catch((error: unknown) => core.warning(`could not write the job summary: ${describeError(error)}`));
}

/** One group per model in place with its digest, path and files (failures were told as they happened). */
async function logModels(report: PullReport, log: Logger): Promise<void> {
  for (const model of report.models) {
    const o = model.output;
    if (!o) continue;
    await log.group(`${o.name} (${o.source}, ${formatBytes(o.size)}, cache ${o.cache})`, async () => {
      log.info(`digest: ${o.digest}`);
      log.info(`path: ${o.path}`);
      log.info(
        `downloaded ${formatBytes(model.downloadedBytes)}, restored ${formatBytes(model.cachedBytes)} in ${formatDuration(model.durationMs)}`,
      );
      for (const f of o.files) log.info(`  ${f.path} ${formatBytes(f.size)} ${f.digest}`);
    });
  }
}

/**
 * The detached server outlives this step, and later steps of the job can read its environment
 * (/proc/<pid>/environ): it gets none of this step's inputs, runner tokens or hub tokens.
 */
export function serverEnvironment(env: Env): Env {
  const secret = /^(INPUT_|ACTIONS_)|^(HF_TOKEN|HUGGING_FACE_HUB_TOKEN|GITHUB_TOKEN)$/;
  return Object.fromEntries(Object.entries(env).filter(([name]) => !secret.test(name)));
}
