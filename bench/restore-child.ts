// One warm restore by our own path (src/cache/restore.ts), in a process of its own: the entry is
// looked up through the (bench) cache service, its archive fetched by the engine and read as it
// lands, the file verified as it is written. Nothing is hashed afterwards.
//
// argv: one JSON object {serviceUrl, key, target, hex, size, connections}. Prints one JSON line:
// {engineMs, maxRssKiB, restoredBytes, fetchedBytes}.
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { restoreEntry } from '../src/cache/restore.js';
import { HttpClient } from '../src/http/client.js';
import { DEFAULT_RETRY_POLICY } from '../src/http/retry.js';
import { keepYoungGenerationSmall } from '../src/memory.js';

// As the action and CLI entry points do (src/main.ts, src/cli.ts).
keepYoungGenerationSmall();

interface RestoreArgs {
  readonly serviceUrl: string;
  readonly key: string;
  readonly target: string;
  readonly hex: string;
  readonly size: number;
  readonly connections: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as RestoreArgs;
const ingestDir = join(dirname(args.target), '..', 'ingest');
await rm(args.target, { force: true });
await rm(ingestDir, { recursive: true, force: true });
// The client the action builds (settings module): a pool of connections × concurrency sockets.
const http = new HttpClient({
  connections: args.connections * 4,
  insecure: false,
  stallTimeoutMs: 30_000,
  userAgent: 'model-pull-bench',
});
const started = performance.now();
try {
  const result = await restoreEntry(
    {
      key: args.key,
      paths: [args.target],
      blobs: [
        {
          digest: { algorithm: 'sha256', hex: args.hex },
          size: args.size,
          label: 'bench blob',
          target: args.target,
          ingestDir,
          locate: async () => ({ url: 'http://127.0.0.1:9/not-used' }),
        },
      ],
    },
    {
      http,
      retry: DEFAULT_RETRY_POLICY,
      connections: args.connections,
      service: { protocol: 'v2', url: `${args.serviceUrl}/`, token: 'bench', readable: true, mode: '' },
    },
  );
  const engineMs = performance.now() - started;
  if (result.state !== 'hit')
    throw new Error(`restore ended ${result.state}: ${result.failure ?? result.refused}`);
  process.stdout.write(
    `${JSON.stringify({
      engineMs,
      cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
      maxRssKiB: process.resourceUsage().maxRSS,
      restoredBytes: result.restored.get(args.target),
      fetchedBytes: result.fetched,
    })}\n`,
  );
} finally {
  await http.close();
}
