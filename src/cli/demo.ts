import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNoCache } from '../cache/client.js';
import { Inputs } from '../constants.js';
import { startDemoServers } from '../demo/servers.js';
import { pull } from '../pull.js';
import { formatBytes, formatDuration } from '../report/format.js';
import type { Logger } from '../report/logger.js';
import { progressLines } from '../report/progress-log.js';
import type { PullReport } from '../report/types.js';
import { buildSettings } from '../settings/settings.js';
import { DEFAULT_SOURCES } from '../sources/index.js';
import type { CliIo } from './main.js';

const ROUNDS = [
  'first pull (downloads everything)',
  'second pull (verifies what is on disk, downloads nothing)',
] as const;

/**
 * Pulls a generated Ollama model and HF repo from local servers into a temporary folder, twice:
 * the first round shows the download, the second that a filled store costs no bytes. The folder
 * is removed at the end unless `keep` is set (then it is printed, ready for `ollama list`).
 */
export async function demoCommand(io: CliIo, options: { keep?: boolean } = {}): Promise<number> {
  const servers = await startDemoServers();
  const root = await mkdtemp(join(tmpdir(), 'model-pull-demo-'));
  try {
    const settings = buildSettings(
      {
        [Inputs.Models]: `${servers.ollamaLine}\n${servers.hfLine}`,
        [Inputs.OllamaModels]: join(root, 'ollama'),
        [Inputs.HfCache]: join(root, 'hf'),
        [Inputs.FilesDir]: join(root, 'files'),
        [Inputs.HfEndpoint]: servers.hub,
        [Inputs.Cache]: 'false',
      },
      { env: {}, nameOf: (n) => n },
    );
    const log = demoLogger(io);
    io.stdout.write(`registry ${servers.registry} and hub ${servers.hub} serve a generated model\n`);
    io.stdout.write(`lines:\n  ${servers.ollamaLine}\n  ${servers.hfLine}\n`);
    for (const round of ROUNDS) {
      const report = await pull(settings, {
        sources: DEFAULT_SOURCES,
        log,
        cache: createNoCache(),
        onProgress: progressLines(log.info, 1000),
        signal: io.signal,
      });
      io.stdout.write(`\n${round}:\n`);
      if (!printRound(io, report)) return 1;
    }
    if (options.keep) {
      io.stdout.write(`\nkept in ${root}:\n`);
      io.stdout.write(`  OLLAMA_MODELS=${settings.ollamaModels} ollama list   # lists the model\n`);
      io.stdout.write(
        `  HF_HUB_CACHE=${settings.hfCache} HF_HUB_OFFLINE=1   # transformers finds demo/tiny\n`,
      );
    } else {
      io.stdout.write('\n(run model-pull demo --keep to keep the pulled files)\n');
    }
    return 0;
  } finally {
    await servers.close();
    if (!options.keep) await rm(root, { recursive: true, force: true });
  }
}

/** A line per model; false when one failed. */
function printRound(io: CliIo, report: PullReport): boolean {
  for (const m of report.models) {
    if (!m.output) {
      io.stdout.write(`  ${m.line}: FAILED ${m.error?.message}\n`);
      return false;
    }
    io.stdout.write(
      `  ${m.output.name}\n    ${m.output.digest}, ${formatBytes(m.output.size)}, downloaded ${formatBytes(m.downloadedBytes)} in ${formatDuration(m.durationMs)}\n    ${m.output.path}\n`,
    );
  }
  return true;
}

function demoLogger(io: CliIo): Logger {
  return {
    debug: () => undefined,
    info: (m) => io.stderr.write(`${m}\n`),
    warning: (m) => io.stderr.write(`warning: ${m}\n`),
    error: (m) => io.stderr.write(`error: ${m}\n`),
    group: async (_title, fn) => fn(),
  };
}
