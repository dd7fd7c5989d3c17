import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { formatBytes } from '../../src/report/format.js';
import { startBlobServer } from '../helpers/blob-server.js';
import { recordedBytes } from '../helpers/engine.js';
import { tempDir } from '../helpers/http.js';
import { lines, requireBuiltCli, runCli, startCli } from './run.js';

const MiB = 1024 * 1024;
const SIZE = 24 * MiB;

beforeAll(() => requireBuiltCli());

it('Ctrl-C stops cleanly keeping progress; the rerun fetches only the rest', async () => {
  const data = randomBytes(SIZE);
  const hex = sha256Hex(data);
  // 2 connections at 2 MiB/s each: the whole file would take about 6 s; Ctrl-C comes at ~2.5 s.
  const server = await startBlobServer(data, () => ({ rate: 2 * MiB }));
  const dir = await tempDir('model-pull-cli-int-');
  const args = [
    'pull',
    '--files-dir',
    join(dir.path, 'files'),
    '--connections',
    '2',
    `${server.url}/big.gguf`,
  ];
  const line = `${server.url}/big.gguf sha256=${hex}`;
  try {
    const run = startCli([...args, `sha256=${hex}`], { env: { HOME: dir.path } });
    const deadline = Date.now() + 8000;
    while (server.sentBytes() < 10 * MiB) {
      if (Date.now() > deadline) throw new Error(`no progress: ${run.stderr()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const interruptedAt = Date.now();
    run.child.kill('SIGINT');
    const stopped = await run.done;
    expect(Date.now() - interruptedAt).toBeLessThan(3000);
    expect(stopped.code).toBe(1);
    expect(stopped.signal).toBeNull();
    const err = lines(stopped.stderr);
    expect(err).toContain('stopping: progress is kept for the next run (Ctrl-C again to quit at once)');
    expect(err.filter((l) => l.startsWith(`error: ${line}: `))).toHaveLength(1);
    expect(err[err.length - 1]).toBe(
      'error: interrupted: progress is kept, run the same command again to resume',
    );

    // The staging area holds the bytes and the record of them; the target does not exist yet.
    const record = join(dir.path, 'files', '.model-pull-ingest', `sha256-${hex}.progress.json`);
    const kept = await recordedBytes(record);
    const sentBeforeRerun = server.sentBytes();
    expect(kept).toBeGreaterThanOrEqual(8 * MiB); // so a full refetch would exceed the bound below
    // A clean stop records what arrived: only what was still in socket buffers is lost.
    expect(sentBeforeRerun - kept).toBeLessThanOrEqual(2 * MiB);
    await expect(stat(join(dir.path, 'files', 'big.gguf'))).rejects.toThrow();

    // The rerun stays capped: uncapped, a range cut short by a split can have several MiB in
    // loopback socket buffers on a loaded machine, and the traffic bound below would measure that.
    const rerun = await runCli([...args, `sha256=${hex}`], { env: { HOME: dir.path } });
    expect(rerun.code).toBe(0);
    // The engine took exactly the missing bytes; the server may count a little more, written
    // into sockets of ranges the engine split between its connections and cut short.
    expect(rerun.stderr).toContain(`(downloaded ${formatBytes(SIZE - kept)} in `);
    const served = server.sentBytes() - sentBeforeRerun;
    expect(served).toBeGreaterThanOrEqual(SIZE - kept);
    expect(served).toBeLessThanOrEqual(SIZE - kept + 4 * MiB);
    expect(sha256Hex(await readFile(join(dir.path, 'files', 'big.gguf')))).toBe(hex);
    await expect(stat(record)).rejects.toThrow(); // staging is cleaned up after the commit
  } finally {
    await server.close();
    await dir.remove();
  }
});

it('SIGTERM (a CI cancel) stops like Ctrl-C: progress kept, no staging lease left behind', async () => {
  const data = randomBytes(SIZE);
  const hex = sha256Hex(data);
  const server = await startBlobServer(data, () => ({ rate: 2 * MiB }));
  const dir = await tempDir('model-pull-cli-term-');
  try {
    const run = startCli(
      [
        'pull',
        '--files-dir',
        join(dir.path, 'files'),
        '--connections',
        '2',
        `${server.url}/big.gguf`,
        `sha256=${hex}`,
      ],
      { env: { HOME: dir.path } },
    );
    const deadline = Date.now() + 8000;
    while (server.sentBytes() < 4 * MiB) {
      if (Date.now() > deadline) throw new Error(`no progress: ${run.stderr()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    run.child.kill('SIGTERM');
    const stopped = await run.done;
    expect([stopped.code, stopped.signal]).toEqual([1, null]);
    const err = lines(stopped.stderr);
    expect(err).toContain('stopping: progress is kept for the next run (Ctrl-C again to quit at once)');
    expect(err[err.length - 1]).toBe(
      'error: interrupted: progress is kept, run the same command again to resume',
    );
    const ingest = join(dir.path, 'files', '.model-pull-ingest');
    expect((await readdir(ingest)).sort()).toEqual([`sha256-${hex}.partial`, `sha256-${hex}.progress.json`]);
  } finally {
    await server.close();
    await dir.remove();
  }
});
