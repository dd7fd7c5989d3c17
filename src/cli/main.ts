import { resolve } from 'node:path';
import { createNoCache } from '../cache/client.js';
import { systemClock } from '../clock.js';
import { Inputs } from '../constants.js';
import { readBounded } from '../download/safe-fs.js';
import { describeError, ModelPullError } from '../errors.js';
import { HttpClient } from '../http/client.js';
import { describeRetry, type RetryEvent } from '../http/retry.js';
import { readLockEntries } from '../lockfile.js';
import { mirror } from '../mirror/run.js';
import { type PullDeps, pull } from '../pull.js';
import { parseLines } from '../refs/index.js';
import { modelLines } from '../refs/line.js';
import { failureLine, pushFailureLine } from '../report/model-log.js';
import { modelsJson } from '../report/summary.js';
import type { PullReport } from '../report/types.js';
import { lockLines } from '../resolve.js';
import { buildSettings, type Env, type RawInputs, type Settings } from '../settings/settings.js';
import { createSources, type SourceList, sourceOptions } from '../sources/descriptor.js';
import { DEFAULT_SOURCES } from '../sources/index.js';
import { parseCommandArgs, SETTING_FLAGS } from './args.js';
import { lineLogger, pullDisplay, toStream } from './display.js';
import { type HELP, helpFor, usageError } from './help.js';
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
    io.stdout.write(
      topic
        ? helpFor(topic as keyof typeof HELP, io.sources ?? DEFAULT_SOURCES)
        : helpFor('main', io.sources ?? DEFAULT_SOURCES),
    );
    return 0;
  }
  if (!command) {
    io.stderr.write(helpFor('main', io.sources ?? DEFAULT_SOURCES));
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
  // Ctrl-C is told where the user looks: above the progress bars while they run.
  const notices: Notices = { write: (line) => void io.stderr.write(`${line}\n`) };
  const onAbort = () => notices.write(STOPPING);
  io.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const { values, lines } = parseCommandArgs(command, rest, sources);
    if (values.help) {
      io.stdout.write(helpFor(command as keyof typeof HELP, sources));
      return 0;
    }
    return await handler({ values, lines, io, command, sources, notices });
  } catch (error) {
    io.stderr.write(`model-pull ${command}: ${describeError(error)}\n`);
    return usageError(error) ? 2 : 1;
  } finally {
    io.signal?.removeEventListener('abort', onAbort);
  }
}

const STOPPING = 'stopping: progress is kept for the next run (Ctrl-C again to quit at once)';

/** Where a command's notices go; a command that draws bars points it above them while they run. */
export interface Notices {
  write: (line: string) => void;
}

interface Invocation {
  readonly command: string;
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly lines: readonly string[];
  readonly io: CliIo;
  readonly sources: SourceList;
  readonly notices: Notices;
}

const COMMANDS: Record<string, (inv: Invocation) => Promise<number>> = {
  pull: (inv) => pipelineCommand(inv, pull),
  mirror: mirrorCommand,
  verify: async (inv) => verifyCommand(await settingsOf(inv, false), inv.values, inv.io, inv.sources),
  lock: lockCommand,
  demo: async (inv) =>
    (await import('./demo.js')).demoCommand(inv.io, { keep: inv.values.keep === true, notices: inv.notices }),
};

/**
 * `requireModels`: `verify` takes no lines; `pull` and `lock` need some, or a lock file whose
 * lines they then take.
 */
async function settingsOf(inv: Invocation, requireModels = true): Promise<Settings> {
  const lines = [...inv.lines];
  const file = inv.values.file;
  if (typeof file === 'string') lines.push(...modelLines(await readLinesFile(file)));
  const fromLock = typeof inv.values[Inputs.Lockfile] === 'string';
  if (requireModels && !fromLock && modelLines(lines.join('\n')).length === 0) {
    throw new ModelPullError('ERR_BAD_INPUT', 'no model line given: pass LINE... or -f FILE');
  }
  const raw: Record<string, string | undefined> = {
    [Inputs.Models]: lines.join('\n'),
    [Inputs.Cache]: 'false',
  };
  const options = sourceOptions(inv.sources);
  for (const name of [...SETTING_FLAGS, Inputs.LockMode, ...options.map((o) => o.name)])
    raw[name] = inv.values[name] as string | undefined;
  if (inv.values.insecure) raw[Inputs.Insecure] = 'true';
  if (typeof inv.values.to === 'string') raw[Inputs.MirrorTo] = inv.values.to;
  return buildSettings(raw as RawInputs, {
    env: inv.io.env,
    cwd: inv.io.cwd,
    nameOf: (name) => `--${name}`,
    settingText: (name, value) => `--${name} ${value}`,
    requireModels: false,
    sourceOptions: options,
  });
}

/** A models list holds lines of a few dozen bytes: a MiB is tens of thousands of them. */
export const MAX_LINES_FILE_BYTES = 1024 * 1024;

/** `-f FILE`: a file, or a pipe (`-f /dev/stdin`, `-f <(…)`), read up to MAX_LINES_FILE_BYTES. */
async function readLinesFile(file: string): Promise<string> {
  const read = await readBounded(file, MAX_LINES_FILE_BYTES, { named: true });
  if (read.kind === 'read') return read.bytes.toString('utf8');
  const reason = read.kind === 'missing' ? 'no such file' : read.reason;
  throw new ModelPullError('ERR_BAD_INPUT', `cannot read -f ${file}: ${reason}`);
}

async function mirrorCommand(inv: Invocation): Promise<number> {
  if (typeof inv.values.to !== 'string')
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      'needs --to PREFIX: the registry to push to (see model-pull mirror --help)',
    );
  return pipelineCommand(inv, async (settings, deps) => {
    const report = await mirror(settings, deps);
    for (const push of report.pushes) if (push.error) deps.log.error(pushFailureLine(push.line, push.error));
    return report;
  });
}

/** `pull` and `mirror`: settings, what happens on stderr as it happens, the pipeline. */
async function pipelineCommand(
  inv: Invocation,
  run: (settings: Settings, deps: PullDeps) => Promise<PullReport>,
): Promise<number> {
  const settings = await settingsOf(inv);
  const { io } = inv;
  // Phases, each model's end and each failure (once, as it happens) are told as they come.
  const display = pullDisplay(io.stderr, { secrets: settings.secrets });
  const { log, onProgress, onModel } = display;
  const deps = { sources: inv.sources, log, cache: createNoCache(), onProgress, onModel, signal: io.signal };
  const plain = inv.notices.write;
  inv.notices.write = (line) => log.info(line);
  const report = await run(settings, deps).finally(() => {
    display.close();
    inv.notices.write = plain;
  });
  if (inv.values.json) io.stdout.write(`${JSON.stringify(modelsJson(report), null, 2)}\n`);
  if (io.signal?.aborted) {
    log.error('interrupted: progress is kept, run the same command again to resume');
    return 1;
  }
  return report.ok ? 0 : 1;
}

async function lockCommand(inv: Invocation): Promise<number> {
  const settings = await settingsOf(inv);
  const path = settings.lockfile?.path ?? resolve(inv.io.cwd ?? process.cwd(), 'model-pull.lock');
  const previous = await readLockEntries(path, path, inv.sources);
  // With no line given, every line of the lock is looked up again (moved tags and branches).
  const lines = settings.lines.length > 0 ? settings.lines : [...(previous?.keys() ?? [])];
  if (lines.length === 0) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `no model line given, and ${previous ? `${path} holds none` : `${path} does not exist`}: pass LINE... or -f FILE`,
    );
  }
  const refs = parseLines(lines, inv.sources);
  const http = new HttpClient(settings.http);
  const log = lineLogger(toStream(inv.io.stderr), settings.secrets);
  try {
    const retry = { ...settings.retry, onRetry: (event: RetryEvent) => log.info(describeRetry(event)) };
    const ctx = { http, retry, log, clock: systemClock, signal: inv.io.signal };
    const sources = createSources(inv.sources, settings);
    const { results, written } = await lockLines(path, refs, sources, ctx, previous);
    results.forEach((result, i) => {
      const line = refs[i]!.line;
      if (result.status === 'fulfilled') log.info(`${line}: ${result.value.pin}`);
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
