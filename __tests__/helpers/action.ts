import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type CacheService, startCacheService } from './cache-service.js';
import { tempDir } from './http.js';

/**
 * Runs the bundled action (`dist/index.js`) the way the GitHub runner does: a child process of
 * node with the step's inputs as `INPUT_<NAME>` variables (name upper-cased, dashes kept, the
 * way @actions/core's getInput looks them up), every input default from action.yml filled in,
 * the file-command files (GITHUB_OUTPUT, GITHUB_ENV, GITHUB_STATE, GITHUB_STEP_SUMMARY,
 * GITHUB_PATH) created empty per step, cwd = GITHUB_WORKSPACE, and nothing inherited from the
 * test process but PATH (tar and zstd for @actions/cache live there).
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
export const DIST_ENTRY = join(ROOT, 'dist', 'index.js');

/** Fails clearly when dist/ was not built: CI runs `npm run build` before jest. */
export function distEntry(): string {
  if (!existsSync(DIST_ENTRY)) {
    throw new Error(`${DIST_ENTRY} is missing: run \`npm run build\` before the action tests`);
  }
  return DIST_ENTRY;
}

export interface ActionMetadata {
  /** Every input by name, with its default (undefined when it has none). */
  readonly inputs: ReadonlyMap<string, string | undefined>;
  readonly outputs: readonly string[];
}

/** The input and output names of action.yml (a two-level YAML map, read line by line). */
export function actionMetadata(): ActionMetadata {
  const text = readFileSync(join(ROOT, 'action.yml'), 'utf8');
  const section = (name: string) =>
    new RegExp(`^${name}:\\n([\\s\\S]*?)(?=^\\S|(?![\\s\\S]))`, 'm').exec(text)?.[1] ?? '';
  const inputs = new Map<string, string | undefined>();
  let current: string | undefined;
  for (const line of section('inputs').split('\n')) {
    const name = /^ {2}([A-Za-z0-9_-]+):\s*$/.exec(line);
    if (name) {
      current = name[1]!;
      inputs.set(current, undefined);
    }
    const value = /^ {4}default:\s*(.*)$/.exec(line);
    if (value && current) inputs.set(current, unquote(value[1]!.trim()));
  }
  const outputs = [...section('outputs').matchAll(/^ {2}([A-Za-z0-9_-]+):\s*$/gm)].map((m) => m[1]!);
  return { inputs, outputs };
}

/** Input defaults from action.yml (`inputs.<name>.default`), as the runner applies them. */
export function actionDefaults(): Record<string, string> {
  const defaults: Record<string, string> = {};
  for (const [name, value] of actionMetadata().inputs) if (value !== undefined) defaults[name] = value;
  return defaults;
}

function unquote(value: string): string {
  const m = /^(["'])(.*)\1$/.exec(value);
  return m ? m[2]! : value;
}

/**
 * Parses a file-command file as @actions/core writes it: `name<<ghadelimiter_<uuid>`, the value's
 * lines, the delimiter alone on a line (and the older one-line `name=value` form).
 */
export function parseFileCommands(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const end = lines.indexOf(heredoc[2]!, i + 1);
      if (end < 0) throw new Error(`unterminated value for ${heredoc[1]} in a file command`);
      out[heredoc[1]!] = lines.slice(i + 1, end).join('\n');
      i = end;
    } else if (line.includes('=')) {
      out[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
    }
  }
  return out;
}

export interface Annotation {
  readonly command: string;
  readonly message: string;
}

export interface ActionRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly outputs: Record<string, string>;
  /** What GITHUB_ENV hands to later steps. */
  readonly exported: Record<string, string>;
  readonly state: Record<string, string>;
  readonly summary: string;
  /** The raw file-command files, for "the token is nowhere" checks. */
  readonly files: Record<'output' | 'env' | 'state' | 'summary' | 'path', string>;
  /** `::error::` / `::warning::` / `::notice::` lines, message unescaped. */
  readonly annotations: readonly Annotation[];
  /** Values passed to `::add-mask::`. */
  readonly masks: readonly string[];
  errors(): string[];
  warnings(): string[];
}

export interface Runner {
  readonly root: string;
  readonly home: string;
  readonly workspace: string;
  readonly temp: string;
  /** Runs one step; `env` adds variables (the cache service's, HF_TOKEN, …). */
  run(inputs: Readonly<Record<string, string>>, env?: Readonly<Record<string, string>>): Promise<ActionRun>;
  /** Starts one step and hands over its process (to signal it); `result` settles when it ends. */
  start(
    inputs: Readonly<Record<string, string>>,
    env?: Readonly<Record<string, string>>,
  ): { child: ChildProcess; stdout(): string; result: Promise<ActionRun> };
  /** Empties HOME but keeps its path: a fresh machine whose cache paths are the same strings. */
  emptyHome(): Promise<void>;
  dispose(): Promise<void>;
}

/** Variables the runner sets for every step that have nothing to do with the test at hand. */
const RUNNER_BASICS = { CI: 'true', GITHUB_ACTIONS: 'true', RUNNER_OS: 'Linux', RUNNER_ARCH: 'X64' };

/**
 * The whole environment of one step, built from nothing: PATH from the parent (tar and zstd for
 * @actions/cache), the runner's folders and file-command files, the inputs, then `extra`. Nothing
 * else of the parent passes (no INPUT_*, GITHUB_*, ACTIONS_*, proxies, NODE_OPTIONS).
 */
export function stepEnvironment(
  folders: { home: string; workspace: string; temp: string; toolCache: string },
  files: Record<'output' | 'env' | 'state' | 'summary' | 'path', string>,
  inputs: Readonly<Record<string, string>>,
  extra: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ...RUNNER_BASICS,
    HOME: folders.home,
    RUNNER_TEMP: folders.temp,
    RUNNER_TOOL_CACHE: folders.toolCache,
    GITHUB_WORKSPACE: folders.workspace,
    GITHUB_OUTPUT: files.output,
    GITHUB_ENV: files.env,
    GITHUB_STATE: files.state,
    GITHUB_STEP_SUMMARY: files.summary,
    GITHUB_PATH: files.path,
    // Loopback only: no proxy may stand between the action and the test servers.
    NO_PROXY: '127.0.0.1,localhost',
    ...extra,
  };
  // @actions/core's getInput reads INPUT_<name with spaces as _, upper-cased>; dashes stay.
  for (const [name, value] of Object.entries(inputs))
    env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value;
  return env;
}

export async function createRunner(options: { timeoutMs?: number } = {}): Promise<Runner> {
  const dir = await tempDir('model-pull-action-');
  const home = join(dir.path, 'home');
  const workspace = join(dir.path, 'workspace');
  const temp = join(dir.path, 'runner-temp');
  const files = join(dir.path, 'files');
  for (const d of [home, workspace, temp, files, join(dir.path, 'tool-cache')])
    await mkdir(d, { recursive: true });
  const defaults = actionDefaults();
  let step = 0;
  const start: Runner['start'] = (inputs, env = {}) => {
    step += 1;
    const paths = {
      output: join(files, `output-${step}`),
      env: join(files, `env-${step}`),
      state: join(files, `state-${step}`),
      summary: join(files, `summary-${step}`),
      path: join(files, `path-${step}`),
    };
    for (const p of Object.values(paths)) writeFileSync(p, '');
    const folders = { home, workspace, temp, toolCache: join(dir.path, 'tool-cache') };
    const childEnv = stepEnvironment(folders, paths, { ...defaults, ...inputs }, env);
    const node = spawnNode(distEntry(), childEnv, workspace, options.timeoutMs);
    const result = node.done.then(({ code, stdout, stderr }) => collect(code, stdout, stderr, paths));
    return { child: node.child, stdout: node.stdout, result };
  };
  return {
    root: dir.path,
    home,
    workspace,
    temp,
    run: (inputs, env = {}) => start(inputs, env).result,
    start,
    async emptyHome() {
      for (const entry of await readdir(home)) await rm(join(home, entry), { recursive: true, force: true });
    },
    dispose: () => dir.remove(),
  };
}

function spawnNode(
  entry: string,
  env: Record<string, string>,
  cwd: string,
  timeoutMs = 20_000,
): {
  child: ChildProcess;
  stdout(): string;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
} {
  const child = spawn(process.execPath, [entry], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((done, fail) => {
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
    });
    // A hung action must fail the test, not the whole jest run.
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      fail(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal)
        fail(new Error(`the action was killed (${signal}) after ${timeoutMs} ms:\n${stdout}\n${stderr}`));
      else done({ code, stdout, stderr });
    });
  });
  return { child, stdout: () => stdout, done };
}

async function collect(
  code: number | null,
  stdout: string,
  stderr: string,
  paths: Record<'output' | 'env' | 'state' | 'summary' | 'path', string>,
): Promise<ActionRun> {
  const read = (p: string) => readFile(p, 'utf8');
  const files = {
    output: await read(paths.output),
    env: await read(paths.env),
    state: await read(paths.state),
    summary: await read(paths.summary),
    path: await read(paths.path),
  };
  const annotations: Annotation[] = [];
  const masks: string[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const m = /^::([a-z-]+)(?: [^:]*)?::(.*)$/.exec(line);
    if (!m) continue;
    const message = m[2]!.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%');
    if (m[1] === 'add-mask') masks.push(message);
    else if (m[1] === 'error' || m[1] === 'warning' || m[1] === 'notice')
      annotations.push({ command: m[1], message });
  }
  const of = (kind: string) => annotations.filter((a) => a.command === kind).map((a) => a.message);
  return {
    code,
    stdout,
    stderr,
    outputs: parseFileCommands(files.output),
    exported: parseFileCommands(files.env),
    state: parseFileCommands(files.state),
    summary: files.summary,
    files,
    annotations,
    masks,
    errors: () => of('error'),
    warnings: () => of('warning'),
  };
}

/** Every regular file under `dir`, relative, sorted ([] when the folder does not exist). */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (sub: string) => {
    const entries = await readdir(join(dir, sub), { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const rel = sub ? `${sub}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(rel);
      else out.push(rel);
    }
  };
  await walk('');
  return out.sort();
}

/**
 * A fresh cache service and runner for every test of the file (no entry of one test can answer
 * another's restore), handed to `use` before each test and disposed after it.
 */
export function freshStepEachTest(use: (runner: Runner, service: CacheService) => void): void {
  let current: { runner: Runner; service: CacheService } | undefined;
  beforeEach(async () => {
    current = { service: await startCacheService(), runner: await createRunner() };
    use(current.runner, current.service);
  });
  afterEach(async () => {
    await current?.runner.dispose();
    await current?.service.close();
  });
}
