// The `files` case (issue 17): a Hugging Face repo of many 4 MiB files and two large ones
// (hf-repos.ts), served by the bench server's fake Hub with its CDN capped per connection,
// pulled by the whole `hf:` pipeline (the CLI, `model-pull pull hf:…`, in a child process)
// against `hf download` from the real huggingface_hub 2.0.0, and by our CLI again for one file
// of the same total size. Every tool's snapshot is hashed afterwards, file by file, against
// digests computed here from the blob, so no tool is timed on bytes it got wrong.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { hfReaderPython } from '../__tests__/helpers/hf-reader.js';
import type { BenchBlob } from './data.js';
import { commitOf, contentOf, type RepoFile } from './hf-repos.js';
import { runTimed } from './proc.js';
import { inScratch, TIMEOUT_MS, type Tool } from './tools.js';

/** What a snapshot must hold: each file's path in the repo and the sha256 of its bytes. */
export type Expected = ReadonlyMap<string, string>;

/** The sha256 of every file of a layout, read from the blob file a slice at a time. */
export async function expectedDigests(files: readonly RepoFile[], blob: BenchBlob): Promise<Expected> {
  const digests = new Map<string, string>();
  for (const file of files) {
    const hash = createHash('sha256');
    if ('text' in file) {
      hash.update(contentOf(file, new Uint8Array()));
    } else if (file.start === 0 && file.end === blob.size) {
      digests.set(file.path, blob.hex);
      continue;
    } else if (file.end > file.start) {
      for await (const chunk of createReadStream(blob.path, { start: file.start, end: file.end - 1 }))
        hash.update(chunk as Buffer);
    }
    digests.set(file.path, hash.digest('hex'));
  }
  return digests;
}

/**
 * Checks that the snapshot folder holds exactly the expected files (links followed, as every
 * reader follows them) with the expected bytes; throws naming the first difference.
 */
export async function checkSnapshot(folder: string, expected: Expected, who: string): Promise<void> {
  const found = await filesUnder(folder);
  const missing = [...expected.keys()].filter((path) => !found.includes(path));
  const extra = found.filter((path) => !expected.has(path));
  if (missing.length || extra.length) {
    const parts = [
      missing.length ? `missing ${missing.slice(0, 3).join(', ')}` : '',
      extra.length ? `unexpected ${extra.slice(0, 3).join(', ')}` : '',
    ];
    throw new Error(`${who}: snapshot ${folder}: ${parts.filter(Boolean).join('; ')}`);
  }
  for (const [path, hex] of expected) {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(join(folder, path))) hash.update(chunk as Buffer);
    const got = hash.digest('hex');
    if (got !== hex) throw new Error(`${who}: ${path} has sha256 ${got}, expected ${hex}`);
  }
}

/** Paths of the files (and links) under a folder, relative to it, `/`-separated. */
async function filesUnder(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => !e.isDirectory())
    .map((e) => relative(folder, join(e.parentPath, e.name)).split('\\').join('/'))
    .sort();
}

/** A child's environment with nothing of this machine's user: no token, config or proxy. */
function isolatedEnv(dir: string, extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LANG: 'C.UTF-8', ...extra };
}

/**
 * Our CLI (`<script> pull --json --hf-cache … --hf-endpoint … hf:<repo>`) as a user runs it:
 * the whole pipeline, revision to snapshot. `script` is the transpiled src/cli.ts.
 */
export function oursHf(script: string, repo: string, expected: Expected, connections: number): Tool {
  return (endpoint) =>
    inScratch(async (dir) => {
      const run = await runTimed(
        process.execPath,
        [
          script,
          'pull',
          '--json',
          '--hf-cache',
          join(dir, 'hub'),
          '--hf-endpoint',
          endpoint,
          '--connections',
          String(connections),
          `hf:${repo}`,
        ],
        TIMEOUT_MS,
        isolatedEnv(dir, {}),
      );
      const models = JSON.parse(run.stdout) as { path?: string; error?: string }[];
      const path = models[0]?.path;
      if (!path) throw new Error(`ours did not pull hf:${repo}: ${run.stdout.slice(0, 300)}`);
      await checkSnapshot(path, expected, 'ours');
      return { wallMs: run.wallMs, cpuMs: run.cpuMs, peakRssKiB: run.polledHwmKiB };
    });
}

/**
 * `hf download <repo>` from huggingface_hub 2.0.0 (the venv `.ci/hf-readers.sh` makes) into a
 * fresh cache: its defaults (8 files at once, one stream each), plain HTTP (no Xet: the fake Hub
 * sends no Xet headers, and HF_HUB_DISABLE_XET=1 says so too).
 */
export async function hfDownload(repo: string, expected: Expected): Promise<Tool> {
  const python = await hfReaderPython('2.0.0');
  const hf = join(python, '..', 'hf');
  return (endpoint) =>
    inScratch(async (dir) => {
      const run = await runTimed(
        hf,
        ['download', repo],
        TIMEOUT_MS,
        isolatedEnv(dir, {
          HF_ENDPOINT: endpoint,
          HF_HOME: join(dir, 'hf-home'),
          HF_HUB_CACHE: join(dir, 'hub'),
          HF_HUB_DISABLE_XET: '1',
          HF_HUB_DISABLE_TELEMETRY: '1',
        }),
      );
      // It prints the folder among other lines (2.0.0: "  path: …"); the layout says where it is.
      const path = join(dir, 'hub', `models--${repo.replace('/', '--')}`, 'snapshots', commitOf(repo));
      if (!run.stdout.includes(path)) throw new Error(`hf download did not name ${path}: ${run.stdout}`);
      await checkSnapshot(path, expected, 'hf download');
      return { wallMs: run.wallMs, cpuMs: run.cpuMs, peakRssKiB: run.polledHwmKiB };
    });
}
