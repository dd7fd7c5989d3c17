import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { type TestServer, tempDir } from '../helpers/http.js';
import { fileBytes, type HubFileSpec, type LocalHub, randomCommit, startHub } from '../helpers/hub.js';
import {
  type GeneratedModel,
  generateModel,
  pushModel,
  type RealRegistry,
  startRecordingProxy,
  startRegistry,
} from '../helpers/registry.js';
import { lines, requireBuiltCli, runCli } from './run.js';

const OLD = randomCommit();
const NEW = randomCommit();
const OLD_FILES: HubFileSpec[] = [{ path: 'config.json', content: fileBytes('{"v":1}') }];
const NEW_FILES: HubFileSpec[] = [{ path: 'config.json', content: fileBytes('{"v":2}') }];
// Mutable on purpose: moving `main` mid-test is what a lock file must be immune to.
const hubRefs: Record<string, string> = { main: OLD };

let registry: RealRegistry;
let proxy: TestServer;
let hub: LocalHub;
let work: Awaited<ReturnType<typeof tempDir>>;
let first: GeneratedModel;
let firstDigest: string;

const line = (repo: string) => `ollama:${proxy.url}/team/${repo}:v1`;
const lockPath = () => join(work.path, 'model-pull.lock');
const run = (args: string[]) => runCli(args, { cwd: work.path, env: { HOME: work.path } });
const hubArgs = () => ['--hf-endpoint', hub.url, '--hf-cache', join(work.path, 'hf')];

interface Lock {
  version: number;
  models: Record<string, { source: string; ref: string; name: string; digest: string }>;
}

/** The same value with object keys sorted at every level. */
function sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted);
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1));
    return Object.fromEntries(entries.map(([k, v]) => [k, sorted(v)]));
  }
  return value;
}

async function readLockText(): Promise<{ text: string; lock: Lock }> {
  const text = await readFile(lockPath(), 'utf8');
  return { text, lock: JSON.parse(text) as Lock };
}

beforeAll(async () => {
  requireBuiltCli();
  registry = await startRegistry();
  proxy = await startRecordingProxy(registry.url);
  first = generateModel(64 * 1024);
  firstDigest = await pushModel(registry.url, 'team/a', 'v1', first);
  await pushModel(registry.url, 'team/b', 'v1', generateModel(32 * 1024));
  hub = await startHub([{ id: 'org/tiny', refs: hubRefs, commits: { [OLD]: OLD_FILES, [NEW]: NEW_FILES } }]);
  work = await tempDir('model-pull-cli-lock-');
});
afterAll(async () => {
  await Promise.all([proxy?.close(), hub?.close()]);
  await registry?.close();
  await work?.remove();
});

describe('model-pull lock', () => {
  let written: Lock;

  it('writes ./model-pull.lock as sorted JSON, one entry per line', async () => {
    const result = await run(['lock', ...hubArgs(), line('a'), 'hf:org/tiny']);
    expect(result.code).toBe(0);
    const { text, lock } = await readLockText();
    expect(text).toBe(`${JSON.stringify(sorted(lock), null, 2)}\n`);
    expect(lock.version).toBe(1);
    // Keyed by the canonical line: `hf:org/tiny` is `hf:org/tiny@main`.
    expect(Object.keys(lock.models).sort()).toEqual(['hf:org/tiny@main', line('a')].sort());
    expect(lock.models[line('a')]).toMatchObject({ source: 'ollama', ref: line('a'), digest: firstDigest });
    expect(lock.models['hf:org/tiny@main']).toMatchObject({
      source: 'hf',
      ref: 'hf:org/tiny@main',
      digest: OLD,
    });
    expect(lines(result.stderr)).toContain(`wrote ${lockPath()} (2 lines)`);
    written = lock;
  });

  it('updates the file with new lines, keeping the other entries as they were', async () => {
    const result = await run(['lock', '--lockfile', lockPath(), line('b')]);
    expect(result.code).toBe(0);
    const { text, lock } = await readLockText();
    expect(text).toBe(`${JSON.stringify(sorted(lock), null, 2)}\n`);
    expect(Object.keys(lock.models)).toHaveLength(3);
    expect(lock.models[line('a')]).toEqual(written.models[line('a')]);
    expect(lock.models['hf:org/tiny@main']).toEqual(written.models['hf:org/tiny@main']);
    expect(lock.models[line('b')]!.source).toBe('ollama');
    expect(lines(result.stderr)).toContain(`updated ${lockPath()} (1 line)`);
  });

  it('leaves the file unchanged when a line cannot be resolved', async () => {
    const before = await readFile(lockPath(), 'utf8');
    const result = await run(['lock', line('b'), line('absent')]);
    expect(result.code).toBe(1);
    const errors = lines(result.stderr).filter((l) => l.startsWith('error: '));
    expect(errors[0]!.startsWith(`error: ${line('absent')}: `)).toBe(true);
    expect(errors[1]).toBe(`error: ${lockPath()} left unchanged: 1 of 2 lines could not be resolved`);
    expect(await readFile(lockPath(), 'utf8')).toBe(before);
  });
});

describe('pull --lockfile', () => {
  it('pulls what the lock pins after the tag and the branch moved, with no tag or branch lookup', async () => {
    const moved = generateModel(64 * 1024);
    const movedDigest = await pushModel(registry.url, 'team/a', 'v1', moved);
    expect(movedDigest).not.toBe(firstDigest);
    hubRefs.main = NEW;
    proxy.requests.length = 0;
    hub.hub.requests.length = 0;

    const result = await run([
      'pull',
      '--json',
      '--lockfile',
      'model-pull.lock', // relative to the working folder
      '--ollama-models',
      join(work.path, 'ollama'),
      ...hubArgs(),
      line('a'),
      'hf:org/tiny',
    ]);
    expect(result.code).toBe(0);
    const [ollama, hf] = JSON.parse(result.stdout) as {
      digest: string;
      path: string;
      files: { path: string }[];
    }[];
    expect(ollama!.digest).toBe(firstDigest);
    expect(sha256Hex(await readFile(ollama!.path))).toBe(sha256Hex(first.layers[0]!.bytes));
    expect(hf!.digest).toBe(OLD);
    expect(await readFile(hf!.files[0]!.path, 'utf8')).toBe('{"v":1}');
    expect(proxy.requests.filter((r) => r.url.endsWith('/manifests/v1'))).toEqual([]);
    expect(hub.hub.requests.filter((r) => r.url.includes('/revision/'))).toEqual([]);
  });

  it('pulls every line of the lock when given none, like npm ci', async () => {
    const store = join(work.path, 'all');
    const result = await run([
      'pull',
      '--json',
      '--lockfile',
      'model-pull.lock',
      '--ollama-models',
      store,
      ...hubArgs(),
    ]);
    expect(result.code).toBe(0);
    const models = JSON.parse(result.stdout) as { ref: string; digest: string }[];
    // The lock's lines, in its (sorted) order, each at its pinned digest.
    expect(models.map((m) => m.ref)).toEqual(['hf:org/tiny@main', line('a'), line('b')]);
    expect(models[0]!.digest).toBe(OLD);
    expect(models[1]!.digest).toBe(firstDigest);
  });

  it('serves a line written another way (defaults, a trailing comment) from its entry', async () => {
    hub.hub.requests.length = 0;
    const result = await run([
      'pull',
      '--json',
      '--lockfile',
      lockPath(),
      ...hubArgs(),
      'hf:org/tiny@main   # pinned by the lock',
    ]);
    expect(result.code).toBe(0);
    const [model] = JSON.parse(result.stdout) as { ref: string; digest: string }[];
    expect(model).toMatchObject({ ref: 'hf:org/tiny@main', digest: OLD });
    expect(hub.hub.requests.filter((r) => r.url.includes('/revision/'))).toEqual([]);
  });

  it('fails before any request when the lock lacks a line, with the command that adds it', async () => {
    proxy.requests.length = 0;
    const store = join(work.path, 'o2');
    const result = await run([
      'pull',
      '--lockfile',
      'model-pull.lock',
      '--ollama-models',
      store,
      line('a'),
      line('c'),
    ]);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      `model-pull pull: lock file model-pull.lock does not cover 1 of 2 lines: "${line('c')}" (lock-mode is frozen, so nothing was pulled); ` +
        `add them with \`model-pull lock --lockfile model-pull.lock ${line('c')}\` and commit it, or use --lock-mode update to have this run add them`,
    ]);
    expect(proxy.requests).toEqual([]);
    await expect(readFile(join(store, 'manifests', proxy.url.slice(7), 'team', 'a', 'v1'))).rejects.toThrow(
      'ENOENT',
    );
  });

  it('fails before any request on a lock file that does not exist (a typo), naming the command', async () => {
    proxy.requests.length = 0;
    const result = await run([
      'pull',
      '--lockfile',
      'model-pul.lock',
      '--ollama-models',
      join(work.path, 'o4'),
      line('a'),
      'hf:org/tiny include=*.json',
    ]);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      'model-pull pull: lock file model-pul.lock does not exist (lock-mode is frozen, so nothing was pulled); ' +
        `create it with \`model-pull lock --lockfile model-pul.lock ${line('a')} 'hf:org/tiny include=*.json'\` and commit it, ` +
        'or use --lock-mode update to have this run write it',
    ]);
    expect(proxy.requests).toEqual([]);
    await expect(readFile(join(work.path, 'model-pul.lock'))).rejects.toThrow('ENOENT');
  });

  it('writes the lock file when it is absent, and adds lines it lacks, with --lock-mode update', async () => {
    const fresh = join(work.path, 'sub', 'fresh.lock');
    const pullWith = (...models: string[]) =>
      run([
        'pull',
        '--lockfile',
        fresh,
        '--lock-mode',
        'update',
        '--ollama-models',
        join(work.path, 'o3'),
        ...hubArgs(),
        ...models,
      ]);
    const result = await pullWith(line('b'));
    expect(result.code).toBe(0);
    expect(lines(result.stderr)).toContain(`wrote lock file ${fresh} (1 line)`);
    const lock = JSON.parse(await readFile(fresh, 'utf8')) as Lock;
    expect(Object.keys(lock.models)).toEqual([line('b')]);

    const more = await pullWith(line('b'), 'hf:org/tiny');
    expect(more.code).toBe(0);
    expect(lines(more.stderr)).toContain(`added 1 line to lock file ${fresh}`);
    const updated = JSON.parse(await readFile(fresh, 'utf8')) as Lock;
    expect(Object.keys(updated.models)).toEqual(['hf:org/tiny@main', line('b')]);
    expect(updated.models[line('b')]).toEqual(lock.models[line('b')]);
  });
});

describe('lock --lockfile FILE with no line', () => {
  it('looks every line of the file up again (the tag and the branch moved above)', async () => {
    const { lock: before } = await readLockText();
    const result = await run(['lock', '--lockfile', lockPath(), ...hubArgs()]);
    expect(result.code).toBe(0);
    const { lock } = await readLockText();
    expect(Object.keys(lock.models)).toEqual(Object.keys(before.models));
    expect(lock.models['hf:org/tiny@main']!.digest).toBe(NEW);
    expect(lock.models[line('a')]!.digest).not.toBe(firstDigest);
    expect(lock.models[line('b')]).toEqual(before.models[line('b')]);
    expect(lines(result.stderr)).toContain(`updated ${lockPath()} (3 lines)`);
  });
});
