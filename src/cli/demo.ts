import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNoCache } from '../cache/client.js';
import { Inputs } from '../constants.js';
import { startDemoServers } from '../demo/servers.js';
import { pull } from '../pull.js';
import { formatBytes, formatDuration } from '../report/format.js';
import { progressLines } from '../report/progress-log.js';
import { buildSettings } from '../settings/settings.js';
import type { CliIo } from './main.js';

/** Pulls a generated Ollama model and HF repo from local servers into a temp folder, twice. */
export async function demoCommand(io: CliIo): Promise<number> {
  const servers = await startDemoServers();
  try {
    const root = await mkdtemp(join(tmpdir(), 'model-pull-demo-'));
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
    const log = {
      debug: () => {},
      info: (m: string) => io.stderr.write(`${m}\n`),
      warning: (m: string) => io.stderr.write(`warning: ${m}\n`),
      error: (m: string) => io.stderr.write(`error: ${m}\n`),
      group: async <T>(_t: string, fn: () => Promise<T>) => fn(),
    };
    io.stdout.write(`registry ${servers.registry} and hub ${servers.hub} serve a generated model\n`);
    for (const round of [
      'first pull (downloads)',
      'second pull (verifies what is there, downloads nothing)',
    ]) {
      const report = await pull(settings, {
        log,
        cache: createNoCache(),
        onProgress: progressLines(log.info, 1000),
      });
      io.stdout.write(`\n${round}:\n`);
      for (const m of report.models) {
        if (!m.output) {
          io.stdout.write(`  ${m.line}: FAILED ${m.error?.message}\n`);
          return 1;
        }
        io.stdout.write(
          `  ${m.output.name}\n    ${m.output.digest}, ${formatBytes(m.output.size)}, downloaded ${formatBytes(m.downloadedBytes)} in ${formatDuration(m.durationMs)}\n    ${m.output.path}\n`,
        );
      }
    }
    io.stdout.write(`\nOLLAMA_MODELS=${settings.ollamaModels} ollama list   # would list the model\n`);
    io.stdout.write(
      `HF_HUB_CACHE=${settings.hfCache} HF_HUB_OFFLINE=1   # transformers would load demo/tiny\n`,
    );
    return 0;
  } finally {
    await servers.close();
  }
}
