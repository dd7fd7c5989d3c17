// The warm-restore case (issue 9): a 1 GiB model entry, saved by @actions/cache, restored from
// the bench server standing in for the cache service, every connection capped at 16 MiB/s.
// Three measurements in the same run: our restore (download + extract + verify), a cold pull of
// the same bytes from the capped CDN, and @actions/cache's restoreCache plus the sha256 pass
// the engine made before this project read archives itself.
import { link, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cache from '@actions/cache';
import { startCacheService } from '../__tests__/helpers/cache-service.js';
import type { BenchBlob } from './data.js';
import { runTimed } from './proc.js';
import { median } from './report.js';
import type { Measurement } from './tools.js';

const MiB = 1024 * 1024;
const TIMEOUT_MS = 600_000;

/** A saved entry: its archive on disk, and the paths it was saved from (restore writes there). */
export interface SavedEntry {
  readonly key: string;
  readonly archive: string;
  readonly archiveSize: number;
  /** The blob's path when saved and when restored (the entry's version hashes it). */
  readonly target: string;
  /** GITHUB_WORKSPACE of the saving job: members are named relative to it. */
  readonly workspace: string;
}

/**
 * Saves the blob as a model entry with the real @actions/cache client (tar + zstd, against the
 * test suite's cache service) once, and keeps the archive beside the blob for later runs.
 */
export async function savedEntry(dataDir: string, blob: BenchBlob): Promise<SavedEntry> {
  const root = join(dataDir, 'restore');
  const target = join(root, 'store', `sha256-${blob.hex}`);
  const workspace = join(root, 'workspace');
  const key = `model-pull-v1-url-${blob.hex}`;
  const archive = join(dataDir, `entry-${blob.hex.slice(0, 16)}-${blob.size}.tzst`);
  const known = await stat(archive).catch(() => undefined);
  if (known) return { key, archive, archiveSize: known.size, target, workspace };

  await mkdir(join(root, 'store'), { recursive: true });
  await mkdir(workspace, { recursive: true });
  await rm(target, { force: true });
  await link(blob.path, target);
  const service = await startCacheService();
  const saved = { ...process.env };
  const temp = await mkdtemp(join(tmpdir(), 'model-pull-bench-save-'));
  Object.assign(process.env, service.env, { GITHUB_WORKSPACE: workspace, RUNNER_TEMP: temp });
  try {
    const id = await cache.saveCache([target], key);
    const bytes = service.entry(key)?.archive;
    if (id === -1 || !bytes) throw new Error('@actions/cache did not save the bench entry');
    await writeFile(`${archive}.partial`, bytes);
    await writeFile(archive, await readFile(`${archive}.partial`));
    await rm(`${archive}.partial`);
    return { key, archive, archiveSize: bytes.length, target, workspace };
  } finally {
    process.env = saved;
    await service.close();
    await rm(target, { force: true });
    await rm(temp, { recursive: true, force: true });
  }
}

/** Our restore in a child process (bench/restore-child.ts, transpiled). */
export function oursRestore(script: string, serviceUrl: string, entry: SavedEntry, blob: BenchBlob) {
  return async (): Promise<Measurement> => {
    const args = {
      serviceUrl,
      key: entry.key,
      target: entry.target,
      hex: blob.hex,
      size: blob.size,
      connections: 16,
    };
    const run = await runTimed(process.execPath, [script, JSON.stringify(args)], TIMEOUT_MS);
    const report = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as {
      engineMs: number;
      cpuMs: number;
      maxRssKiB: number;
      restoredBytes: number;
    };
    if (report.restoredBytes !== blob.size)
      throw new Error(`our restore placed ${report.restoredBytes} bytes`);
    await rm(entry.target, { force: true });
    return {
      wallMs: run.wallMs,
      engineMs: report.engineMs,
      cpuMs: report.cpuMs,
      peakRssKiB: report.maxRssKiB,
    };
  };
}

/** @actions/cache's restoreCache and a sha256 pass, in a child process. */
export function baselineRestore(
  script: string,
  tsHooks: string,
  serviceUrl: string,
  entry: SavedEntry,
  blob: BenchBlob,
) {
  return async (): Promise<Measurement> => {
    const temp = await mkdtemp(join(tmpdir(), 'model-pull-bench-baseline-'));
    try {
      const args = {
        serviceUrl,
        key: entry.key,
        target: entry.target,
        hex: blob.hex,
        workspace: entry.workspace,
        temp,
      };
      const run = await runTimed(
        process.execPath,
        [
          '--experimental-transform-types',
          '--no-warnings',
          '--import',
          tsHooks,
          script,
          JSON.stringify(args),
        ],
        TIMEOUT_MS,
      );
      const report = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as { engineMs: number };
      return { wallMs: run.wallMs, engineMs: report.engineMs, peakRssKiB: run.polledHwmKiB };
    } finally {
      await rm(entry.target, { force: true });
      await rm(temp, { recursive: true, force: true });
    }
  };
}

export interface RestoreResults {
  readonly ours: readonly Measurement[];
  readonly cold: readonly Measurement[];
  readonly baseline: readonly Measurement[];
}

/** The case's table and its two targets. */
export function restoreReport(results: RestoreResults, entry: SavedEntry): string {
  const wall = (ms: readonly Measurement[]) => median(ms.map((m) => m.wallMs));
  const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const peak = (ms: readonly Measurement[]) =>
    `${(Math.max(0, ...ms.map((m) => m.peakRssKiB ?? 0)) / 1024).toFixed(0)} MiB`;
  const ours = wall(results.ours);
  const cold = wall(results.cold);
  const baseline = wall(results.baseline);
  const cpu = (ms: readonly Measurement[]) => {
    const values = ms.flatMap((m) => (m.cpuMs === undefined ? [] : [m.cpuMs]));
    return values.length ? secs(median(values)) : '—';
  };
  // A leg that did not run (--no-rivals) says so, not "NaN s" and "0 MiB".
  const row = (name: string, ms: readonly Measurement[]) =>
    ms.length > 0
      ? `| ${name} | ${secs(wall(ms))} | ${cpu(ms)} | ${ms.length} | ${peak(ms)} |`
      : `| ${name} | not measured | — | 0 | — |`;
  // Three decimals: a ratio printed as 1.10× must not read as met when it is 1.104.
  const check = (name: string, value: number, limit: number) =>
    Number.isFinite(value)
      ? `| ${name} | ${value.toFixed(3)}× | ≤ ${limit}× | ${value <= limit ? 'met' : 'MISSED'} |`
      : `| ${name} | — | ≤ ${limit}× | not measured |`;
  return [
    `warm restore: a ${(entry.archiveSize / MiB).toFixed(0)} MiB entry (saved by @actions/cache), every connection capped at 16 MiB/s`,
    '',
    '| restore | median | CPU (all threads) | runs | peak RSS* |',
    '| --- | --- | --- | --- | --- |',
    row('ours: download + extract + verify', results.ours),
    row('cold pull of the same bytes (capped CDN)', results.cold),
    row('@actions/cache restoreCache + sha256 pass', results.baseline),
    '',
    '| target | value | limit | |',
    '| --- | --- | --- | --- |',
    check('restore / cold pull', ours / cold, 1.1),
    check('restore / (restoreCache + verify)', ours / baseline, 0.5),
    '',
    '* a child inherits the maxRSS of the harness at fork time (Linux keeps it across exec); the harness',
    '  holds the archive while it first creates it, so that run inflates the column.',
  ].join('\n');
}
