import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { createRunner, type Runner } from '../helpers/action.js';
import { type BlobServer, startBlobServer } from '../helpers/blob-server.js';
import { startCacheService } from '../helpers/cache-service.js';
import { waitFor } from '../helpers/child.js';

/**
 * A cancelled job: the runner sends SIGINT, then SIGTERM. Either stops the downloads cleanly:
 * the step fails with one error per model, writes its outputs, keeps the progress for the next
 * run and leaves no staging lease behind for another job to wait on (issue 10 item 3).
 */
const MiB = 1024 * 1024;
const SIZE = 24 * MiB;
const weights = randomBytes(SIZE);
let server: BlobServer;
let runner: Runner;

beforeAll(async () => {
  // 2 MiB/s per connection: the file would take seconds; the signal comes after 4 MiB.
  server = await startBlobServer(weights, () => ({ rate: 2 * MiB }));
});
afterAll(() => server.close());
beforeEach(async () => {
  runner = await createRunner();
});
afterEach(() => runner.dispose());

it.each(['SIGTERM', 'SIGINT'] as const)(
  '%s stops the step cleanly and keeps the progress',
  async (signal) => {
    const line = `${server.url}/w/big.gguf sha256=${sha256Hex(weights)}`;
    const sentBefore = server.sentBytes();
    const step = runner.start({ models: line, cache: 'false', connections: '2' });
    await waitFor(() => server.sentBytes() - sentBefore >= 4 * MiB, 'the download to start');
    step.child.kill(signal);
    const run = await step.result;
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`stopping (${signal}): progress is kept for the next run`);
    // One annotation for the stopped model; the count is a plain line.
    expect(run.errors()).toEqual([
      expect.stringMatching(new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `)),
    ]);
    expect(run.stdout).toContain('\n1 of 1 models could not be pulled and verified\n');
    expect(JSON.parse(run.outputs.models!)).toHaveLength(1);
    const ingest = join(runner.home, '.cache', 'model-pull', 'files', '.model-pull-ingest');
    const hex = sha256Hex(weights);
    expect((await readdir(ingest)).sort()).toEqual([`sha256-${hex}.partial`, `sha256-${hex}.progress.json`]);
  },
);

it('SIGINT during a cache restore says what is kept: the files it committed, not the archive', async () => {
  const service = await startCacheService();
  try {
    const line = `${server.url}/w/big.gguf sha256=${sha256Hex(weights)}`;
    const saved = await runner.run({ models: line, connections: '8' }, service.env);
    expect(saved.code).toBe(0);
    expect(service.entries().filter((e) => e.finalized)).toHaveLength(1);
    await runner.emptyHome();
    // Random weights do not compress: the archive comes at 1 MiB/s per connection, for seconds.
    service.setFault({ kind: 'blob-rate', bytesPerSecond: MiB });
    const step = runner.start({ models: line, connections: '2' }, service.env);
    await waitFor(() => service.count('GET archive') > 0, 'the archive to be fetched');
    step.child.kill('SIGINT');
    const run = await step.result;
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(
      'stopping (SIGINT): files already restored from the Actions cache are kept; an archive being read is fetched again from its start next run',
    );
    expect(run.stdout).not.toContain('progress is kept');
    expect(run.stdout).toMatch(/Cache entry \S+: stopped with 0 of 1 files in place/);
    // No warning about the entry: it was stopped, not found wanting.
    expect(run.warnings()).toEqual([]);
    expect(run.errors()).toEqual([
      expect.stringMatching(new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `)),
    ]);
  } finally {
    await service.close();
  }
});
