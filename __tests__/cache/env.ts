import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CacheService } from '../helpers/cache-service.js';
import { tempDir } from '../helpers/http.js';

/**
 * What @actions/cache 6.3 reads from the environment, all at call time: the service
 * (ACTIONS_CACHE_SERVICE_V2, ACTIONS_RESULTS_URL, ACTIONS_RUNTIME_TOKEN; ACTIONS_CACHE_URL for v1),
 * GITHUB_SERVER_URL (a non-github.com host means GHES and forces v1), ACTIONS_CACHE_MODE,
 * RUNNER_TEMP (archive staging; default /home/actions/temp), GITHUB_WORKSPACE (tar's -C; must
 * exist when saving), RUNNER_DEBUG (lists the archive).
 */
const VARIABLES = [
  'ACTIONS_CACHE_SERVICE_V2',
  'ACTIONS_RESULTS_URL',
  'ACTIONS_RUNTIME_TOKEN',
  'ACTIONS_CACHE_URL',
  'ACTIONS_CACHE_MODE',
  'GITHUB_SERVER_URL',
  'GITHUB_WORKSPACE',
  'RUNNER_TEMP',
  'RUNNER_DEBUG',
] as const;

export interface Runner {
  readonly root: string;
  readonly workspace: string;
  /** Restores the environment and removes the folder. */
  dispose(): Promise<void>;
}

/** A runner-like environment for the real client: a workspace, a temp folder, the service's variables. */
export async function fakeRunner(service: CacheService | undefined): Promise<Runner> {
  const dir = await tempDir('model-pull-cache-');
  const saved = new Map(VARIABLES.map((name) => [name, process.env[name]]));
  for (const name of VARIABLES) delete process.env[name];
  const workspace = join(dir.path, 'workspace');
  await mkdir(workspace, { recursive: true });
  Object.assign(process.env, service?.env ?? {}, {
    GITHUB_WORKSPACE: workspace,
    RUNNER_TEMP: join(dir.path, 'runner-temp'),
  });
  return {
    root: dir.path,
    workspace,
    dispose: async () => {
      for (const [name, value] of saved) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      await dir.remove();
    },
  };
}

/** Writes files of random bytes under `root`; returns absolute path → sha256. */
export async function writeModel(root: string, files: Record<string, number>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [name, size] of Object.entries(files)) {
    const path = join(root, name);
    const bytes = randomBytes(size);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, bytes);
    out.set(path, sha256(bytes));
  }
  return out;
}

export async function hashes(paths: Iterable<string>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const path of paths) out.set(path, sha256(await readFile(path)));
  return out;
}

export async function removeAll(paths: Iterable<string>): Promise<void> {
  for (const path of paths) await rm(path, { force: true });
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Records what reaches the real stdout while a test runs (the runner would turn `::warning::` and
 * `::error::` lines into annotations); nothing is forwarded, so the test output stays clean.
 */
export function recordStdout(): { lines: string[]; restore(): void } {
  const lines: string[] = [];
  const original = process.stdout.write;
  process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
    lines.push(
      ...String(chunk)
        .split(/\r?\n/)
        .filter((l) => l !== ''),
    );
    const done = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    done?.();
    return true;
  }) as typeof process.stdout.write;
  return {
    lines,
    restore: () => {
      process.stdout.write = original;
    },
  };
}

/**
 * @actions/cache waits 3 s, then about 1.5× more, between its five attempts at a Twirp call that
 * answers 5xx, and takes no clock from outside. Shrinks waits of a second or more 100× while a
 * test drives that path, so the real retry loop runs in well under a second.
 */
export function shrinkLongSleeps(): () => void {
  const real = globalThis.setTimeout;
  const fast = (fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) =>
    real(fn, typeof ms === 'number' && ms >= 1000 ? ms / 100 : ms, ...args);
  globalThis.setTimeout = fast as typeof setTimeout;
  return () => {
    globalThis.setTimeout = real;
  };
}
