import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

/**
 * The real huggingface_hub as a reader of model-pull's cache (issue 13). `.ci/run` installs each
 * version once into `.ci/hf-readers/<version>/` (git-ignored) from the machine's local wheel index;
 * a worktree that has not run it gets the same install on first use. Tests skip only where there
 * is no python3 at all, and then say so loudly. `MODEL_PULL_HF_READERS` points at another folder
 * of such venvs.
 */

export const HF_READER_VERSIONS = ['2.0.0', '1.33.0'] as const;
export type HfReaderVersion = (typeof HF_READER_VERSIONS)[number];

const ROOT = resolve(import.meta.dirname, '..', '..');
const SCRIPT = resolve(import.meta.dirname, 'hf_reader.py');
const FOLDER = process.env.MODEL_PULL_HF_READERS ?? resolve(ROOT, '.ci', 'hf-readers');

/** True when python3 runs here; otherwise prints the loud skip notice once. */
export function pythonAvailable(): boolean {
  const probe = spawnSync('python3', ['--version'], { encoding: 'utf8' });
  if (probe.status === 0) return true;
  console.warn(
    [
      '',
      '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
      '!! SKIPPED: the huggingface_hub reader tests need python3, which is not installed here.     !!',
      "!! model-pull's Hugging Face cache is NOT checked against the real huggingface_hub.        !!",
      '!! Install python3 (with venv) and run .ci/hf-readers.sh, or run .ci/run.                  !!',
      '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
      '',
    ].join('\n'),
  );
  return false;
}

/** The venv's python for a version, installing the readers first when they are missing. */
export async function hfReaderPython(version: HfReaderVersion): Promise<string> {
  const python = resolve(FOLDER, version, 'bin', 'python');
  if (!existsSync(resolve(FOLDER, version, '.installed'))) {
    if (process.env.MODEL_PULL_HF_READERS) throw new Error(`no huggingface_hub ${version} in ${FOLDER}`);
    await promisify(execFile)('bash', [resolve(ROOT, '.ci', 'hf-readers.sh')], { maxBuffer: 1 << 24 });
  }
  return python;
}

export interface ReaderCall {
  readonly call:
    | 'snapshot_download'
    | 'hf_hub_download'
    | 'try_to_load_from_cache'
    | 'scan_cache_dir'
    | 'filter';
  readonly cache?: string;
  readonly repo?: string;
  readonly type?: 'model' | 'dataset';
  readonly revision?: string;
  readonly file?: string;
  readonly allow?: readonly string[];
  readonly ignore?: readonly string[];
  readonly paths?: readonly string[];
}

export interface ReaderResult {
  readonly ok?: Record<string, unknown>;
  readonly error?: string;
  readonly message?: string;
  /** What huggingface_hub logged at WARNING or above during the call. */
  readonly logged: readonly string[];
}

/**
 * Runs the calls in one Python process. `offline` sets HF_HUB_OFFLINE=1; `endpoint` is the hub
 * for online calls. HOME points at an empty folder, so no token or config of this machine's
 * user is read, and nothing but the given cache is written.
 */
export async function runReader(
  python: string,
  calls: readonly ReaderCall[],
  options: { readonly home: string; readonly offline: boolean; readonly endpoint?: string },
): Promise<{ version: string; results: ReaderResult[] }> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: options.home,
    HF_HOME: resolve(options.home, 'hf-home'),
    HF_HUB_DISABLE_TELEMETRY: '1',
    HF_HUB_DISABLE_PROGRESS_BARS: '1',
    HF_HUB_DISABLE_IMPLICIT_TOKEN: '1',
    NO_PROXY: '*',
    ...(options.offline ? { HF_HUB_OFFLINE: '1' } : {}),
    ...(options.endpoint ? { HF_ENDPOINT: options.endpoint } : {}),
  };
  const child = spawn(python, [SCRIPT], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.end(JSON.stringify(calls));
  const code = await new Promise<number | null>((done) => child.on('close', done));
  const stderr = Buffer.concat(err).toString();
  if (code !== 0) throw new Error(`huggingface_hub reader exited with ${code}: ${stderr}`);
  return JSON.parse(Buffer.concat(out).toString()) as { version: string; results: ReaderResult[] };
}
