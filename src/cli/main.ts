import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createNoCache } from '../cache/client.js';
import { Inputs } from '../constants.js';
import { describeError } from '../errors.js';
import { HttpClient } from '../http/client.js';
import { readLock, writeLock } from '../lock/lockfile.js';
import type { Identity } from '../plan.js';
import { identifyRef, pull } from '../pull.js';
import { parseLines } from '../refs/index.js';
import { modelLines } from '../refs/line.js';
import { formatBytes, formatDuration } from '../report/format.js';
import type { Logger } from '../report/logger.js';
import { progressLines } from '../report/progress-log.js';
import { modelsJson } from '../report/summary.js';
import { buildSettings, type Env, type RawInputs, type Settings } from '../settings/settings.js';
import { createSources } from '../sources/index.js';
import { verifyHfCache, verifyOllamaStore } from '../verify/stores.js';
import { HELP, usageError } from './help.js';
import { progressBars } from './progress-bars.js';

export interface CliIo {
  readonly env: Env;
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WriteStream;
  /** Aborted on Ctrl-C: downloads stop and keep their progress for the next run. */
  readonly signal?: AbortSignal;
}

/** Flags shared with the action's inputs (same names, same defaults). */
const SETTING_FLAGS = [
  Inputs.OllamaModels,
  Inputs.HfCache,
  Inputs.FilesDir,
  Inputs.HfEndpoint,
  Inputs.HfToken,
  Inputs.Concurrency,
  Inputs.Connections,
  Inputs.Verify,
  Inputs.CaCert,
  Inputs.Lockfile,
  Inputs.StallTimeout,
  Inputs.Retries,
  Inputs.RegistryUsername,
  Inputs.RegistryPassword,
  Inputs.AllowedRealmHosts,
] as const;

const OPTIONS = {
  ...Object.fromEntries(SETTING_FLAGS.map((name) => [name, { type: 'string' as const }])),
  insecure: { type: 'boolean' as const },
  json: { type: 'boolean' as const },
  file: { type: 'string' as const, short: 'f' },
  help: { type: 'boolean' as const, short: 'h' },
} as const;

/** Runs one CLI command; returns the exit code (0 ok, 1 failed, 2 bad usage). */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    io.stdout.write(HELP.main);
    return command ? 0 : 2;
  }
  if (command === '--version') {
    io.stdout.write('model-pull 0.1.0\n');
    return 0;
  }
  const handler = COMMANDS[command];
  if (!handler) {
    io.stderr.write(`model-pull: unknown command "${command}" (try model-pull --help)\n`);
    return 2;
  }
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...rest], options: OPTIONS, allowPositionals: true }));
  } catch (error) {
    io.stderr.write(`model-pull ${command}: ${describeError(error)}\n`);
    return 2;
  }
  if (values.help) {
    io.stdout.write(HELP[command as keyof typeof HELP]);
    return 0;
  }
  try {
    return await handler({ values, positionals, io, command });
  } catch (error) {
    io.stderr.write(`model-pull ${command}: ${describeError(error)}\n`);
    return usageError(error) ? 2 : 1;
  }
}

interface Invocation {
  readonly command: string;
  readonly values: Record<string, string | boolean | undefined>;
  readonly positionals: string[];
  readonly io: CliIo;
}

const COMMANDS: Record<string, (inv: Invocation) => Promise<number>> = {
  pull: pullCommand,
  verify: verifyCommand,
  lock: lockCommand,
  demo: async (inv) => (await import('./demo.js')).demoCommand(inv.io),
};

async function settingsOf(inv: Invocation, requireModels = true): Promise<Settings> {
  const lines = [...inv.positionals];
  if (typeof inv.values.file === 'string') lines.push(...modelLines(await readFile(inv.values.file, 'utf8')));
  const raw: Record<string, string | undefined> = {
    [Inputs.Models]: lines.join('\n'),
    [Inputs.Cache]: 'false',
  };
  for (const name of SETTING_FLAGS) raw[name] = inv.values[name] as string | undefined;
  if (inv.values.insecure) raw[Inputs.Insecure] = 'true';
  return buildSettings(raw as RawInputs, { env: inv.io.env, nameOf: (name) => `--${name}`, requireModels });
}

function stderrLogger(stream: NodeJS.WriteStream, secrets: readonly string[]): Logger {
  const mask = (m: string) => secrets.reduce((text, s) => text.split(s).join('***'), m);
  const write = (m: string) => stream.write(`${mask(m)}\n`);
  return {
    debug: () => undefined,
    info: write,
    warning: (m) => write(`warning: ${m}`),
    error: (m) => write(`error: ${m}`),
    group: async (title, fn) => {
      write(title);
      return fn();
    },
  };
}

async function pullCommand(inv: Invocation): Promise<number> {
  const settings = await settingsOf(inv);
  const { io } = inv;
  const log = stderrLogger(io.stderr, settings.secrets);
  const bars = io.stderr.isTTY ? progressBars(io.stderr) : undefined;
  const onProgress = bars?.listener ?? progressLines((line) => log.info(line), 3000);
  const report = await pull(settings, { log, cache: createNoCache(), onProgress, signal: io.signal }).finally(
    () => bars?.stop(),
  );
  for (const model of report.models) {
    if (model.error) {
      log.error(`${model.line}: ${describeError(model.error)}`);
      continue;
    }
    const o = model.output!;
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

async function verifyCommand(inv: Invocation): Promise<number> {
  const settings = await settingsOf(inv, false);
  const reports = [
    { what: `Ollama store ${settings.ollamaModels}`, ...(await verifyOllamaStore(settings.ollamaModels)) },
    { what: `Hugging Face cache ${settings.hfCache}`, ...(await verifyHfCache(settings.hfCache)) },
  ];
  const damaged = reports.flatMap((r) => r.damaged);
  if (inv.values.json) {
    inv.io.stdout.write(`${JSON.stringify({ damaged }, null, 2)}\n`);
  } else {
    for (const r of reports) {
      inv.io.stdout.write(
        `${r.what}: ${r.checkedFiles} files, ${formatBytes(r.checkedBytes)} checked, ${r.damaged.length} damaged\n`,
      );
      for (const d of r.damaged) inv.io.stdout.write(`  ${d.model}: ${d.path}: ${d.problem}\n`);
    }
  }
  return damaged.length ? 1 : 0;
}

async function lockCommand(inv: Invocation): Promise<number> {
  const settings = await settingsOf(inv);
  const path = settings.lockfile ?? 'model-pull.lock';
  const refs = parseLines(settings.lines);
  const previous = await readLock(path);
  const http = new HttpClient(settings.http);
  const log = stderrLogger(inv.io.stderr, settings.secrets);
  try {
    const ctx = { http, retry: settings.retry, log, signal: inv.io.signal };
    const sources = createSources(settings);
    const identities: Identity[] = [];
    for (const ref of refs) {
      identities.push(await identifyRef(sources, ref, ctx));
      log.info(`${ref.line}: ${identities[identities.length - 1]!.digest}`);
    }
    await writeLock(path, identities, previous);
    log.info(`${previous ? 'updated' : 'wrote'} ${path} (${identities.length} lines)`);
    return 0;
  } finally {
    await http.close();
  }
}
