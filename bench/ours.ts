// One download by our engine, in a process of its own so that its peak RSS is ours alone
// (the harness holds no blob, but it does hold the table and child bookkeeping).
//
// argv: one JSON object {url, hex, size, dir, connections}. Prints one JSON line:
// {engineMs, maxRssKiB, downloadedBytes, snapshots}.
import { join } from 'node:path';
import { fetchBlobs } from '../src/download/engine.js';
import { HttpClient } from '../src/http/client.js';
import { DEFAULT_RETRY_POLICY } from '../src/http/retry.js';
import { keepYoungGenerationSmall } from '../src/memory.js';

// As the action and CLI entry points do (src/main.ts, src/cli.ts).
keepYoungGenerationSmall();

interface OursArgs {
  readonly url: string;
  readonly hex: string;
  readonly size: number;
  readonly dir: string;
  readonly connections: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as OursArgs;
// The client the action builds by default (settings module: stall timeout 30 s, a pool of
// connections × concurrency sockets per origin); only the user agent differs.
const CONCURRENCY = 4;
const http = new HttpClient({
  connections: args.connections * CONCURRENCY,
  insecure: false,
  stallTimeoutMs: 30_000,
  userAgent: 'model-pull-bench',
});
let snapshots = 0;
const started = performance.now();
try {
  const [result] = await fetchBlobs(
    [
      {
        digest: { algorithm: 'sha256', hex: args.hex },
        size: args.size,
        label: 'bench blob',
        target: join(args.dir, 'store', `sha256-${args.hex}`),
        ingestDir: join(args.dir, 'ingest'),
        locate: async () => ({ url: args.url }),
      },
    ],
    {
      http,
      concurrency: CONCURRENCY,
      connections: args.connections,
      verify: 'full',
      retry: DEFAULT_RETRY_POLICY,
      // A reporter is attached in real runs; count its snapshots so the cost is paid here too.
      onProgress: () => {
        snapshots++;
      },
    },
  );
  const engineMs = performance.now() - started;
  process.stdout.write(
    `${JSON.stringify({
      engineMs,
      cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
      maxRssKiB: process.resourceUsage().maxRSS,
      downloadedBytes: result?.downloadedBytes,
      snapshots,
    })}\n`,
  );
} finally {
  await http.close();
}
