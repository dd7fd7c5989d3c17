import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ActionRun, createRunner, listFiles, type Runner } from '../helpers/action.js';
import { type BlobServer, startBlobServer } from '../helpers/blob-server.js';
import { type CacheService, startCacheService } from '../helpers/cache-service.js';
import type { TestServer } from '../helpers/http.js';
import { fileBytes, type HubFileSpec, type LocalHub, randomCommit, startHub } from '../helpers/hub.js';
import {
  generateModel,
  pushModel,
  type RealRegistry,
  sha256,
  startRecordingProxy,
  startRegistry,
} from '../helpers/registry.js';

/**
 * The lock file (issue 5): written when absent with every line's resolved identity, then obeyed:
 * no tag or branch lookup, cache keys known up front, and with a warm cache not one request to
 * a registry, the hub or a file server.
 */

const MiB = 1024 * 1024;
const COMMIT = randomCommit();
const HF_FILES: HubFileSpec[] = [
  { path: 'config.json', content: fileBytes('{"model_type":"tiny"}') },
  { path: 'tokenizer.json', content: fileBytes('{"vocab":["a","b"]}') },
  { path: 'model.safetensors', content: fileBytes(MiB), lfs: true },
  { path: 'README.md', content: fileBytes('# not selected\n') },
];
const model = generateModel(MiB);
const plain = randomBytes(512 * 1024);

let registry: RealRegistry;
let proxy: TestServer;
let hub: LocalHub;
let files: BlobServer;
let service: CacheService;
let runner: Runner;

beforeAll(async () => {
  registry = await startRegistry();
  await pushModel(registry.url, 'team/locked', 'v1', model);
  proxy = await startRecordingProxy(registry.url);
  hub = await startHub([{ id: 'org/locked', refs: { main: COMMIT }, commits: { [COMMIT]: HF_FILES } }]);
  files = await startBlobServer(plain);
  service = await startCacheService();
  runner = await createRunner();
});
afterAll(async () => {
  await runner?.dispose();
  await proxy?.close();
  await registry?.close();
  await hub?.close();
  await files?.close();
  await service?.close();
});

const lines = () => [
  `ollama:${proxy.url}/team/locked:v1`,
  'hf:org/locked include=*.json,*.safetensors',
  `${files.url}/dl/plain.bin sha256=${sha256(plain)}`,
];
const lockPath = () => join(runner.workspace, 'model-pull.lock');
const serverRequests = () => proxy.requests.length + hub.requestCount() + files.requests.length;
const hex = (algorithm: string, data: Uint8Array | string) =>
  createHash(algorithm).update(data).digest('hex');
const gitSha1 = (data: Uint8Array) =>
  createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');

function pull(models: readonly string[], inputs: Record<string, string> = {}): Promise<ActionRun> {
  return runner.run(
    { models: models.join('\n'), 'hf-endpoint': hub.url, lockfile: 'model-pull.lock', ...inputs },
    service.env,
  );
}

/** Sorted keys at every level, two-space indent: what a reviewable lock must look like. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object')
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  return value;
}

describe('the action with a lock file', () => {
  test('frozen (the default) without the file: fails before any request, with the command that creates it', async () => {
    const before = serverRequests();
    const run = await pull(lines());
    expect(run.code).toBe(1);
    const [ollama, hf, url] = lines() as [string, string, string];
    const message =
      'lock file model-pull.lock does not exist (lock-mode is frozen, so nothing was pulled); create it with ' +
      `\`model-pull lock --lockfile model-pull.lock ${ollama} '${hf}' '${url}'\` and commit it, ` +
      'or use lock-mode: update to have this run write it';
    expect(run.errors()).toEqual([message]);
    expect(serverRequests()).toBe(before);
    expect(service.calls.length).toBe(0);
    await expect(readFile(lockPath())).rejects.toThrow('ENOENT');
    expect(await listFiles(runner.home)).toEqual([]);
    // The job summary says it too, with the fix on its own line.
    expect(run.summary).toContain('**Failed before any download**');
    expect(run.summary).toContain(
      // In a code span (the summary's rule for messages), where a backtick reads as a quote.
      `  - **Fix:** \`create it with 'model-pull lock --lockfile model-pull.lock ${ollama} '${hf}' '${url}'' and commit it`,
    );
  });

  test('update writes it, then obeyed with zero requests on a warm run; frozen refuses a line it lacks before any request', async () => {
    const first = await pull(lines(), { 'lock-mode': 'update' });
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('wrote lock file model-pull.lock (3 lines)');
    const text = await readFile(lockPath(), 'utf8');
    const lock = JSON.parse(text) as { version: number; models: Record<string, Record<string, unknown>> };
    expect(text).toBe(`${JSON.stringify(canonical(lock), null, 2)}\n`);
    expect(lock.version).toBe(1);
    const [ollama, hfLine, url] = lines() as [string, string, string];
    // Keyed by the canonical line: the hf: line gets its default revision written out.
    const hf = 'hf:org/locked@main include=*.json,*.safetensors';
    expect(Object.keys(lock.models)).toEqual([hf, ollama, url].sort());
    expect(lock.models[ollama]).toMatchObject({
      source: 'ollama',
      digest: `sha256:${sha256(model.manifest)}`,
      detail: { manifest: model.manifest.toString('utf8') },
    });
    expect(lock.models[hf]).toMatchObject({
      source: 'hf',
      ref: hf,
      name: 'org/locked',
      digest: COMMIT,
      detail: {
        commit: COMMIT,
        revision: 'main',
        include: ['*.json', '*.safetensors'],
        exclude: [],
        files: [
          {
            path: 'config.json',
            digest: `git-sha1:${gitSha1(HF_FILES[0]!.content)}`,
            size: HF_FILES[0]!.content.length,
          },
          {
            path: 'tokenizer.json',
            digest: `git-sha1:${gitSha1(HF_FILES[1]!.content)}`,
            size: HF_FILES[1]!.content.length,
          },
          { path: 'model.safetensors', digest: `sha256:${hex('sha256', HF_FILES[2]!.content)}`, size: MiB },
        ],
      },
    });
    expect(lock.models[url]).toMatchObject({ source: 'url', digest: `sha256:${sha256(plain)}` });

    // A fresh machine with the lock and a warm cache: every byte from the cache, no request out.
    // The lines are written as a user might copy them: trailing comments, the revision spelled out.
    await runner.emptyHome();
    const before = serverRequests();
    const written = [`${ollama}   # the chat model`, `${hf} # pinned`, url];
    const warm = await pull(written);
    expect(warm.code).toBe(0);
    expect(warm.warnings()).toEqual([]);
    expect(serverRequests()).toBe(before);
    expect(warm.outputs['cache-hit']).toBe('true');
    expect(warm.outputs['downloaded-bytes']).toBe('0');
    const models = JSON.parse(warm.outputs.models!) as {
      ref: string;
      cache: string;
      digest: string;
      path: string;
    }[];
    expect(models.map((m) => [m.ref, m.cache, m.digest])).toEqual([
      [ollama, 'hit', `sha256:${sha256(model.manifest)}`],
      [hf, 'hit', COMMIT],
      [url, 'hit', `sha256:${sha256(plain)}`],
    ]);
    // `paths`: each line as written, comment removed, to its model's path.
    expect(JSON.parse(warm.outputs.paths!)).toEqual({
      [ollama]: models[0]!.path,
      [hf]: models[1]!.path,
      [url]: models[2]!.path,
    });
    expect(await readFile(lockPath(), 'utf8')).toBe(text);
    expect(hfLine).not.toBe(hf);

    // A line the lock does not cover stops the whole step before any request.
    const extra = `${files.url}/dl/new.bin sha256=${sha256(plain)}`;
    const mark = serverRequests();
    const restores = service.calls.length;
    const uncovered = await pull([...lines(), extra]);
    expect(uncovered.code).toBe(1);
    expect(uncovered.errors()).toEqual([
      `lock file model-pull.lock does not cover 1 of 4 lines: "${extra}" (lock-mode is frozen, so nothing was pulled); ` +
        `add them with \`model-pull lock --lockfile model-pull.lock '${extra}'\` and commit it, ` +
        'or use lock-mode: update to have this run add them',
    ]);
    expect(uncovered.outputs.models).toBeUndefined();
    expect(serverRequests()).toBe(mark);
    expect(service.calls.length).toBe(restores);
    expect(await readFile(lockPath(), 'utf8')).toBe(text);

    // With update, the step adds it and pulls everything.
    const added = await pull([...lines(), extra], { 'lock-mode': 'update' });
    expect(added.code).toBe(0);
    expect(added.stdout).toContain('added 1 line to lock file model-pull.lock');
    const grown = JSON.parse(await readFile(lockPath(), 'utf8')) as typeof lock;
    expect(Object.keys(grown.models)).toEqual([hf, ollama, extra, url].sort());
    for (const key of [hf, ollama, url]) expect(grown.models[key]).toEqual(lock.models[key]);
  });
});
