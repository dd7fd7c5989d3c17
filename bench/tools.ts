import { copyFile, link, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { BenchBlob } from './data.js';
import { runTimed } from './proc.js';

export const TIMEOUT_MS = 180_000;

/** One timed, verified download. */
export interface Measurement {
  readonly wallMs: number;
  /** Ours only: time inside fetchBlobs, without process start-up and exit. */
  readonly engineMs?: number;
  /**
   * CPU time (user + sys) of the tool's whole process tree, all threads, which load on the
   * machine inflates far less than wall time. Undefined without GNU time (/usr/bin/time).
   */
  readonly cpuMs?: number;
  readonly peakRssKiB: number | undefined;
  /**
   * Requests the bench server answered during this leg: the Hub's resolve/ and the CDN's, the
   * Hub's API calls (revision, tree), and how many files the leg fetched (default 1).
   */
  readonly requests?: {
    readonly hub: number;
    readonly cdn: number;
    readonly api?: number;
    readonly files?: number;
  };
}

export type Tool = (url: string, blob: BenchBlob) => Promise<Measurement>;

/** A scratch folder on the same filesystem as every tool's output, removed afterwards. */
export async function inScratch<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'model-pull-bench-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function expectSize(path: string, size: number, who: string): Promise<void> {
  const actual = (await stat(path)).size;
  if (actual !== size) throw new Error(`${who} left ${actual} bytes at ${path}, expected ${size}`);
}

/**
 * Our engine: fetchBlobs with `connections` ranges and full verification, in a child process
 * running `script` (bench/ours.ts transpiled by build.ts).
 */
export function ours(connections: number, script: string): Tool {
  return (url, blob) =>
    inScratch(async (dir) => {
      const args = { url, hex: blob.hex, size: blob.size, dir, connections };
      const run = await runTimed(process.execPath, [script, JSON.stringify(args)], TIMEOUT_MS);
      const report = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as {
        engineMs: number;
        cpuMs: number;
        maxRssKiB: number;
        downloadedBytes: number;
      };
      if (report.downloadedBytes !== blob.size) {
        throw new Error(`ours fetched ${report.downloadedBytes} bytes, expected ${blob.size}`);
      }
      // fetchBlobs only returns after the streamed digest matched and the rename happened.
      await expectSize(join(dir, 'store', `sha256-${blob.hex}`), blob.size, 'ours');
      return {
        wallMs: run.wallMs,
        engineMs: report.engineMs,
        cpuMs: run.cpuMs ?? report.cpuMs,
        peakRssKiB: report.maxRssKiB,
      };
    });
}

/**
 * Our engine on a model already in place (a warm CI run): the target holds the blob's bytes and
 * `verify: full` re-hashes it, nothing is fetched.
 */
export function oursWarm(script: string): Tool {
  return (url, blob) =>
    inScratch(async (dir) => {
      const target = join(dir, 'store', `sha256-${blob.hex}`);
      await mkdir(dirname(target), { recursive: true });
      // A hard link where the scratch folder shares the blob's filesystem, else a copy.
      await link(blob.path, target).catch(() => copyFile(blob.path, target));
      const args = { url, hex: blob.hex, size: blob.size, dir, connections: 16 };
      const run = await runTimed(process.execPath, [script, JSON.stringify(args)], TIMEOUT_MS);
      const report = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as {
        engineMs: number;
        cpuMs: number;
        maxRssKiB: number;
        downloadedBytes: number;
      };
      if (report.downloadedBytes !== 0)
        throw new Error(`ours fetched ${report.downloadedBytes} bytes of a model in place`);
      return {
        wallMs: run.wallMs,
        engineMs: report.engineMs,
        cpuMs: run.cpuMs ?? report.cpuMs,
        peakRssKiB: report.maxRssKiB,
      };
    });
}

/** `openssl dgst -sha256` of the blob in place: one SHA-NI pass, the floor of a re-verification. */
export const opensslDgst: Tool = async (_url, blob) => {
  const run = await runTimed('openssl', ['dgst', '-sha256', '-r', blob.path], TIMEOUT_MS);
  const hex = run.stdout.split(/\s/)[0];
  if (hex !== blob.hex) throw new Error(`openssl says ${hex}, expected ${blob.hex}`);
  return { wallMs: run.wallMs, cpuMs: run.cpuMs, peakRssKiB: run.polledHwmKiB };
};

/** `curl -o file` alone: the bytes on disk with no verification at all, the floor of a download. */
export const curlOnly: Tool = (url, blob) =>
  inScratch(async (dir) => {
    const file = join(dir, 'blob');
    const run = await runTimed('curl', ['-sS', '--fail', '-L', '-o', file, url], TIMEOUT_MS);
    await expectSize(file, blob.size, 'curl');
    return { wallMs: run.wallMs, cpuMs: run.cpuMs, peakRssKiB: run.polledHwmKiB };
  });

/** aria2c as issue 2 names it: 16 connections, 1 MiB minimum split, sha-256 checked by aria2c. */
export const aria2c: Tool = (url, blob) =>
  inScratch(async (dir) => {
    const run = await runTimed(
      'aria2c',
      [
        '-x16',
        '-s16',
        '-k1M',
        `--checksum=sha-256=${blob.hex}`,
        `--dir=${dir}`,
        '--out=blob',
        '--quiet=true',
        '--allow-overwrite=true',
        url,
      ],
      TIMEOUT_MS,
    );
    // aria2c exits non-zero when the checksum does not match, so success means verified.
    await expectSize(join(dir, 'blob'), blob.size, 'aria2c');
    return { wallMs: run.wallMs, cpuMs: run.cpuMs, peakRssKiB: run.polledHwmKiB };
  });

/** `curl -o file` followed by `sha256sum file`: download, then a second full read to verify. */
export const curlThenSha256sum: Tool = (url, blob) =>
  inScratch(async (dir) => {
    const file = join(dir, 'blob');
    const fetch = await runTimed('curl', ['-sS', '--fail', '-L', '-o', file, url], TIMEOUT_MS);
    const check = await runTimed('sha256sum', [file], TIMEOUT_MS);
    const hex = check.stdout.split(/\s/)[0];
    if (hex !== blob.hex) throw new Error(`sha256sum says ${hex}, expected ${blob.hex}`);
    const cpu =
      fetch.cpuMs !== undefined && check.cpuMs !== undefined ? fetch.cpuMs + check.cpuMs : undefined;
    return {
      wallMs: fetch.wallMs + check.wallMs,
      cpuMs: cpu,
      peakRssKiB: Math.max(fetch.polledHwmKiB ?? 0, check.polledHwmKiB ?? 0) || undefined,
    };
  });
