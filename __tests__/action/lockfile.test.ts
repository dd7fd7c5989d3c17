import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ActionRun, createRunner, type Runner } from '../helpers/action.js';
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

function pull(models: readonly string[]): Promise<ActionRun> {
  return runner.run(
    { models: models.join('\n'), 'hf-endpoint': hub.url, lockfile: 'model-pull.lock' },
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
  test('written when absent, then obeyed with zero requests on a warm run; an uncovered line fails', async () => {
    const first = await pull(lines());
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`wrote lock file ${lockPath()}`);
    const text = await readFile(lockPath(), 'utf8');
    const lock = JSON.parse(text) as { version: number; models: Record<string, Record<string, unknown>> };
    expect(text).toBe(`${JSON.stringify(canonical(lock), null, 2)}\n`);
    expect(lock.version).toBe(1);
    const [ollama, hf, url] = lines() as [string, string, string];
    expect(Object.keys(lock.models)).toEqual([...lines()].sort());
    expect(lock.models[ollama]).toMatchObject({
      source: 'ollama',
      digest: `sha256:${sha256(model.manifest)}`,
      detail: { manifest: model.manifest.toString('utf8') },
    });
    expect(lock.models[hf]).toMatchObject({
      source: 'hf',
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
    await runner.emptyHome();
    const before = serverRequests();
    const warm = await pull(lines());
    expect(warm.code).toBe(0);
    expect(warm.warnings()).toEqual([]);
    expect(serverRequests()).toBe(before);
    expect(warm.outputs['cache-hit']).toBe('true');
    expect(warm.outputs['downloaded-bytes']).toBe('0');
    const models = JSON.parse(warm.outputs.models!) as { cache: string; digest: string }[];
    expect(models.map((m) => [m.cache, m.digest])).toEqual([
      ['hit', `sha256:${sha256(model.manifest)}`],
      ['hit', COMMIT],
      ['hit', `sha256:${sha256(plain)}`],
    ]);
    expect(await readFile(lockPath(), 'utf8')).toBe(text);

    // A line the lock does not cover fails with the way to update it; the lock stays as it was.
    const extra = `${files.url}/dl/new.bin sha256=${sha256(plain)}`;
    const mark = serverRequests();
    const uncovered = await pull([...lines(), extra]);
    expect(uncovered.code).toBe(1);
    expect(uncovered.errors()).toEqual([
      `${extra}: lock file ${lockPath()} does not cover "${extra}": update it with ` +
        `\`model-pull lock --lockfile ${lockPath()} <lines>\` or delete it to re-create it`,
    ]);
    // The covered lines still land (from the store this time) and are reported.
    const reported = JSON.parse(uncovered.outputs.models!) as { ref: string; error?: string }[];
    expect(reported.filter((m) => m.error === undefined).map((m) => m.ref)).toEqual(lines());
    expect(reported.filter((m) => m.error !== undefined).map((m) => m.ref)).toEqual([extra]);
    expect(serverRequests()).toBe(mark);
    expect(await readFile(lockPath(), 'utf8')).toBe(text);
  });
});
