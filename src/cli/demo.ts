import { lstat, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNoCache } from '../cache/client.js';
import { Inputs } from '../constants.js';
import { startDemoServers } from '../demo/servers.js';
import { pull } from '../pull.js';
import { formatBytes, formatDuration } from '../report/format.js';
import type { PullReport } from '../report/types.js';
import { buildSettings } from '../settings/settings.js';
import { DEFAULT_SOURCES } from '../sources/index.js';
import { pullDisplay } from './display.js';
import type { CliIo, Notices } from './main.js';

const MiB = 1024 * 1024;

const ROUNDS = [
  'first pull (downloads everything)',
  'second pull (verifies what is on disk, downloads nothing)',
] as const;

/**
 * On a terminal each server sends at most this much per second, so the first pull takes a few
 * seconds: long enough to see the bars and phases, and to stop it with Ctrl-C and resume.
 */
const TERMINAL_RATE = 2 * MiB;

/**
 * Pulls a generated Ollama model and HF repo from local servers, twice: the first round shows
 * the download, the second that a filled store costs no bytes. The folder is per user and the
 * bytes are the same every run, so an interrupted demo resumes; it is removed at the end unless
 * `keep` is set (then it is printed, ready for `ollama list`) or the demo was interrupted.
 */
export async function demoCommand(io: CliIo, options: { keep?: boolean; notices: Notices }): Promise<number> {
  const servers = await startDemoServers(io.stderr.isTTY ? { bytesPerSecond: TERMINAL_RATE } : {});
  const root = await demoFolder();
  let keep = options.keep === true;
  const out = (line: string) => void io.stdout.write(`${line}\n`);
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
    out(`a local registry (${servers.registry}) and hub (${servers.hub}) serve a generated model:`);
    out(`  ${servers.ollamaLine}\n  ${servers.hfLine}`);
    for (const round of ROUNDS) {
      out(`\n${round}:`);
      const report = await pullRound(settings, io, options.notices, keep);
      if (io.signal?.aborted) {
        // What is on disk stays: the next demo takes up from there.
        keep = true;
        out(`\nstopped: run ${demoCommandLine(io)} again and it resumes from what is on disk`);
        return 1;
      }
      if (!report.ok) return 1;
      out(roundSummary(report));
    }
    if (keep) {
      out(`\nkept in ${root}:`);
      out(`  OLLAMA_MODELS=${settings.ollamaModels} ollama list   # lists the model`);
      out(`  HF_HUB_CACHE=${settings.hfCache} HF_HUB_OFFLINE=1   # transformers finds demo/tiny`);
    }
    const next = [['npx model-pull pull ollama:qwen2.5:0.5b', 'a real model (needs the internet)']];
    if (!keep) next.push([demoCommandLine(io, '--keep'), "the same, keeping the demo's files to try them"]);
    const width = Math.max(...next.map(([command]) => command!.length));
    out('\nnext:');
    for (const [command, what] of next) out(`  ${command!.padEnd(width)}   # ${what}`);
    return 0;
  } finally {
    await servers.close();
    if (!keep) await rm(root, { recursive: true, force: true });
  }
}

async function pullRound(
  settings: ReturnType<typeof buildSettings>,
  io: CliIo,
  notices: Notices,
  keep: boolean,
): Promise<PullReport> {
  // Paths only when the files stay: the folder is removed a moment later otherwise.
  const display = pullDisplay(io.stderr, { paths: keep, plainIntervalMs: 1000 });
  const { log, onProgress, onModel } = display;
  const plain = notices.write;
  notices.write = (line) => log.info(line);
  try {
    return await pull(settings, {
      sources: DEFAULT_SOURCES,
      log,
      cache: createNoCache(),
      onProgress,
      onModel,
      signal: io.signal,
    });
  } finally {
    display.close();
    notices.write = plain;
  }
}

/** `  downloaded 16.0 MiB in 3.1 s` / `  downloaded 0 B: 16.0 MiB verified on disk`. */
function roundSummary(report: PullReport): string {
  const size = report.models.reduce((sum, m) => sum + (m.output?.size ?? 0), 0);
  const time = Math.max(...report.models.map((m) => m.durationMs));
  return report.downloadedBytes > 0
    ? `  downloaded ${formatBytes(report.downloadedBytes)} in ${formatDuration(time)}`
    : `  downloaded 0 B: ${formatBytes(size)} verified on disk`;
}

/** How the user started the demo, so the command we suggest is one they can type. */
function demoCommandLine(io: CliIo, flag?: string): string {
  if (io.env.npm_lifecycle_event === 'demo') return `npm run demo${flag ? ` -- ${flag}` : ''}`;
  return `npx model-pull demo${flag ? ` ${flag}` : ''}`;
}

/**
 * The demo's folder: the same one on every run for this user (so Ctrl-C and a rerun resume),
 * unless something else took that name; then a fresh one.
 */
async function demoFolder(): Promise<string> {
  const stable = join(tmpdir(), `model-pull-demo-${process.getuid?.() ?? 'user'}`);
  await mkdir(stable, { recursive: true, mode: 0o700 }).catch(() => undefined);
  const info = await lstat(stable).catch(() => undefined);
  const ours = info?.isDirectory() && !info.isSymbolicLink() && info.uid === (process.getuid?.() ?? info.uid);
  return ours ? stable : mkdtemp(join(tmpdir(), 'model-pull-demo-'));
}
