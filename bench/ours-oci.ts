// One `oci:` pull by the whole pipeline (manifest, blobs through the engine, OCI layout, model
// folder), in a process of its own, as the action or the CLI would run it with cache: false.
//
// argv: one JSON object {line, dir, connections}. Prints one JSON line:
// {engineMs, maxRssKiB, downloadedBytes, path, error}.
import { join } from 'node:path';
import { createNoCache } from '../src/cache/client.js';
import { keepYoungGenerationSmall } from '../src/memory.js';
import { pull } from '../src/pull.js';
import { MemoryLogger } from '../src/report/logger.js';
import { buildSettings } from '../src/settings/settings.js';
import { sourceOptions } from '../src/sources/descriptor.js';
import { DEFAULT_SOURCES } from '../src/sources/index.js';

// As the action and CLI entry points do (src/main.ts, src/cli.ts).
keepYoungGenerationSmall();

interface OciArgs {
  readonly line: string;
  readonly dir: string;
  readonly connections: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as OciArgs;
const settings = buildSettings(
  {
    models: args.line,
    'oci-dir': join(args.dir, 'oci'),
    cache: 'false',
    connections: String(args.connections),
  },
  { env: {}, home: args.dir, nameOf: (n) => n, sourceOptions: sourceOptions(DEFAULT_SOURCES) },
);
const started = performance.now();
const report = await pull(settings, {
  sources: DEFAULT_SOURCES,
  log: new MemoryLogger(),
  cache: createNoCache(),
});
const engineMs = performance.now() - started;
const model = report.models[0];
process.stdout.write(
  `${JSON.stringify({
    engineMs,
    maxRssKiB: process.resourceUsage().maxRSS,
    downloadedBytes: report.downloadedBytes,
    path: model?.output?.path,
    error: model?.error?.message,
  })}\n`,
);
