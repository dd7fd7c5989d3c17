import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createNoCache } from '../cache/client.js';
import { systemClock } from '../clock.js';
import { Inputs } from '../constants.js';
import { describeError, ModelPullError } from '../errors.js';
import { HttpClient } from '../http/client.js';
import { describeRetry, type RetryEvent } from '../http/retry.js';
import { readLock } from '../lock/lockfile.js';
import { pull } from '../pull.js';
import { parseLines } from '../refs/index.js';
import { modelLines } from '../refs/line.js';
import { formatBytes, formatDuration } from '../report/format.js';
import type { Logger } from '../report/logger.js';
import { progressLines } from '../report/progress-log.js';
import { modelsJson } from '../report/summary.js';
import { printable } from '../report/text.js';
import { lockLines } from '../resolve.js';
import { buildSettings, type Env, type RawInputs, type Settings } from '../settings/settings.js';
import { createSources, type SourceList, sourceOptions } from '../sources/descriptor.js';
import { DEFAULT_SOURCES } from '../sources/index.js';
import { parseCommandArgs, SETTING_FLAGS } from './args.js';
import { HELP, helpFor, usageError } from './help.js';
import { progressBars } from './progress-bars.js';
import { verifyCommand } from './verify.js';

export interface CliIo {
  readonly env: Env;
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WriteStream;
  /** Aborted on Ctrl-C: downloads stop and keep their progress for the next run. */
  readonly signal?: AbortSignal;
  /** Folder relative paths are resolved against (defaults to the process's). */
  readonly cwd?: string;
  /** The kinds of line accepted (defaults to DEFAULT_SOURCES). */
  readonly sources?: SourceList;
}

/** Seconds between plain progress batches when stderr is not a terminal (a CI log). */
const PLAIN_PROGRESS_MS = 3000;

/** Runs one CLI command; returns the exit code (0 ok, 1 failed, 2 bad usage). */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help') {
    // `model-pull help pull` is `model-pull pull --help`.
    const topic = command === 'help' ? rest[0] : undefined;
    if (topic !== undefined && !Object.hasOwn(COMMANDS, topic)) {
      io.stderr.write(`model-pull: unknown command "${topic}" (try model-pull --help)\n`);
      return 2;
    }
    io.stdout.write(topic ? helpFor(topic as keyof typeof HELP, io.sources ?? DEFAULT_SOURCES) : HELP.main);
    return 0;
  }
  if (!command) {
    io.stderr.write(HELP.main);
    return 2;
  }
  if (command === '--version' || command === '-V') {
    io.stdout.write('model-pull 0.1.0\n');
    return 0;
  }
  const handler = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!handler) {
    io.stderr.write(`model-pull: unknown command "${command}" (try model-pull --help)\n`);
    return 2;
  }
  const sources = io.sources ?? DEFAULT_SOURCES;
  try {
    const { values, lines } = parseCommandArgs(command, rest, sources);
    if (values.help) {
      io.stdout.write(helpFor(command as keyof typeof HELP, sources));
      return 0;
    }
    return await handler({ values, lines, io, command, sources });
  } catch (error) {
    io.stderr.write(`model-pull ${command}: ${describeError(error)}\n`);
    return usageError(error) ? 2 : 1;
  }
}

interface Invocation {
  readonly command: string;
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly lines: readonly string[];
  readonly io: CliIo;
  readonly sources: SourceList;
}

const COMMANDS: Record<string, (inv: Invocation) => Promise<number>> = {
  pull: pullCommand,
  verify: async (inv) => verifyCommand(await settingsOf(inv, false), inv.values, inv.io),
  lock: lockCommand,
  demo: async (inv) => (await import('./demo.js')).demoCommand(inv.io, { keep: inv.values.keep === true }),
};

async function settingsOf(inv: Invocation, requireModels = true): Promise<Settings> {
  const lines = [...inv.lines];
  const file = inv.values.file;
  if (typeof file === 'string') lines.push(...modelLines(await readLinesFile(file)));
  if (requireModels && modelLines(lines.join('\n')).length === 0) {
    throw new ModelPullError('ERR_BAD_INPUT', 'no model line given: pass LINE... or -f FILE');
  }
  const raw: Record<string, string | undefined> = {
    [Inputs.Models]: lines.join('\n'),
    [Inputs.Cache]: 'false',
  };
  const options = sourceOptions(inv.sources);
  for (const name of [...SETTING_FLAGS, ...options.map((o) => o.name)])
    raw[name] = inv.values[name] as string | undefined;
  if (inv.values.insecure) raw[Inputs.Insecure] = 'true';
  return buildSettings(raw as RawInputs, {
    env: inv.io.env,
    cwd: inv.io.cwd,
    nameOf: (name) => `--${name}`,
    requireModels,
    sourceOptions: options,
  });
}

async function readLinesFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : describeError(error);
    throw new ModelPullError('ERR_BAD_INPUT', `cannot read -f ${file}: ${reason}`);
  }
}

/** Log lines for stderr, secrets masked; `write` takes one line without its newline. */
function lineLogger(write: (line: string) => void, secrets: readonly string[]): Logger {
  const mask = (m: string) => secrets.reduce((text, s) => text.split(s).join('***'), m);
  const out = (m: string) => write(printable(mask(m)));
  return {
    debug: () => undefined,
    info: out,
    warning: (m) => out(`warning: ${m}`),
    error: (m) => out(`error: ${m}`),
    group: async (title, fn) => {
      out(title);
      return fn();
    },
  };
}

const toStream = (stream: NodeJS.WriteStream) => (line: string) => void stream.write(`${line}\n`);

/** `<line>: <why>`, without repeating the line when the engine's message already starts with it. */
export function failureLine(line: string, error: unknown): string {
  const why = describeError(error);
  return why.startsWith(`${line}:`) ? why : `${line}: ${why}`;
}

async function pullCommand(inv: Invocation): Promise<number> {
  const settings = await settingsOf(inv);
  const { io } = inv;
  // A terminal gets live bars (log lines printed above them while they run); a log (CI, a pipe)
  // gets a plain batch of progress lines every few seconds.
  const bars = io.stderr.isTTY ? progressBars(io.stderr) : undefined;
  let barsLive = bars !== undefined;
  const plain = toStream(io.stderr);
  const log = lineLogger((line) => (barsLive ? bars!.log(line) : plain(line)), settings.secrets);
  const onProgress = bars?.listener ?? progressLines((line) => log.info(line), PLAIN_PROGRESS_MS);
  const deps = { sources: inv.sources, log, cache: createNoCache(), onProgress, signal: io.signal };
  const report = await pull(settings, deps).finally(() => {
    bars?.stop();
    barsLive = false;
  });
  for (const model of report.models) {
    if (model.error || !model.output) {
      log.error(failureLine(model.line, model.error ?? 'failed'));
      continue;
    }
    const o = model.output;
    log.info(
      `${o.name}: ${formatBytes(o.size)} at ${o.path} (downloaded ${formatBytes(model.downloadedBytes)} in ${formatDuration(model.durationMs)})`,
    );
  }
  if (inv.values.json) io.stdout.write(`${JSON.stringify(modelsJson(report), null, 2)}\n`);
  if (io.signal?.aborted) {
    log.error('interrupted: progress is kept, run the same command again to resume');
    return 1;
  }
  return report.ok ? 0 : 1;
}

async function lockCommand(inv: Invocation): Promise<number> {
  const settings = await settingsOf(inv);
  const path = settings.lockfile ?? resolve(inv.io.cwd ?? process.cwd(), 'model-pull.lock');
  const refs = parseLines(settings.lines, inv.sources);
  const previous = await readLock(path);
  const http = new HttpClient(settings.http);
  const log = lineLogger(toStream(inv.io.stderr), settings.secrets);
  try {
    const retry = { ...settings.retry, onRetry: (event: RetryEvent) => log.info(describeRetry(event)) };
    const ctx = { http, retry, log, clock: systemClock, signal: inv.io.signal };
    const sources = createSources(inv.sources, settings);
    const { results, written } = await lockLines(path, refs, sources, ctx, previous);
    results.forEach((result, i) => {
      const line = refs[i]!.line;
      if (result.status === 'fulfilled') log.info(`${line}: ${result.value.digest}`);
      else log.error(failureLine(line, result.reason));
    });
    if (!written) {
      const failed = results.filter((r) => r.status === 'rejected').length;
      log.error(`${path} left unchanged: ${failed} of ${refs.length} lines could not be resolved`);
      return 1;
    }
    const n = refs.length;
    log.info(`${previous ? 'updated' : 'wrote'} ${path} (${n} line${n === 1 ? '' : 's'})`);
    return 0;
  } finally {
    await http.close();
  }
}
