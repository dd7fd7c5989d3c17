import { join } from 'node:path';
import { type ActionRun, freshStepEachTest, type Runner } from '../helpers/action.js';
import type { CacheService } from '../helpers/cache-service.js';
import type { TestServer } from '../helpers/http.js';
import {
  blobGets,
  descriptor,
  generateModel,
  pushModel,
  type RealRegistry,
  sha256,
  startRecordingProxy,
  startRegistry,
} from '../helpers/registry.js';

/**
 * What real workflows need from the bundled action (issue 12): restore-only jobs (`save: false`)
 * after a warming job, outputs by line (`paths`), and a job summary that names each entry's key
 * and, on failure, the fix.
 */

const MiB = 1024 * 1024;

let registry: RealRegistry;
let proxy: TestServer;
let service: CacheService;
let runner: Runner;
const tiny = generateModel(MiB);
const other = generateModel(MiB / 2);

beforeAll(async () => {
  registry = await startRegistry();
  await pushModel(registry.url, 'team/tiny', 'v1', tiny);
  await pushModel(registry.url, 'team/other', 'v1', other);
  proxy = await startRecordingProxy(registry.url);
});
afterAll(async () => {
  await proxy?.close();
  await registry?.close();
});
freshStepEachTest((r, s) => {
  runner = r;
  service = s;
});

const lineOf = (repo: string) => `ollama:${proxy.url}/${repo}:v1`;
const keyOf = (manifest: Buffer) => `model-pull-v1-ollama-${sha256(manifest)}`;
const states = (run: ActionRun) =>
  (JSON.parse(run.outputs.models!) as { cache: string }[]).map((m) => m.cache);

function pull(lines: readonly string[], inputs: Record<string, string> = {}): Promise<ActionRun> {
  return runner.run({ models: lines.join('\n'), ...inputs }, service.env);
}

describe('save: false', () => {
  test('restores what the warming job saved and never saves an entry itself', async () => {
    const [a, b] = [lineOf('team/tiny'), lineOf('team/other')];
    // A job with save: false on a cold cache downloads, and leaves the cache as it was.
    const cold = await pull([a], { save: 'false' });
    expect(cold.code).toBe(0);
    expect(states(cold)).toEqual(['miss']);
    expect(service.entries()).toEqual([]);
    expect(service.calls.filter((c) => c.call !== 'GetCacheEntryDownloadURL')).toEqual([]);
    expect(cold.stdout).toContain(
      `Cache entry ${keyOf(tiny.manifest)} not saved: save is false in this step.`,
    );

    // The warming job saves; a later restore-only job on a fresh machine restores it.
    const warming = await pull([a]);
    expect(states(warming)).toEqual(['miss']);
    expect(service.entries().map((e) => e.key)).toEqual([keyOf(tiny.manifest)]);
    await runner.emptyHome();
    const gets = blobGets(proxy);
    const matrix = await pull([a, b], { save: 'false' });
    expect(matrix.code).toBe(0);
    expect(states(matrix)).toEqual(['hit', 'miss']);
    // Only the blobs of the model the warming job did not pull (some are shared with the other).
    const blobs = (m: typeof tiny) => [m.config, ...m.layers].map((b) => descriptor(b).digest);
    const fetched = blobs(other).filter((d) => !blobs(tiny).includes(d));
    expect(blobGets(proxy)).toBe(gets + fetched.length);
    expect(service.entries().map((e) => e.key)).toEqual([keyOf(tiny.manifest)]);
  });
});

describe('outputs and the job summary', () => {
  test('paths maps each line as written to its path; the summary names each cache key', async () => {
    const [a, b] = [lineOf('team/tiny'), lineOf('team/other')];
    const run = await pull([`  ${a}   # the small one`, '', b]);
    expect(run.code).toBe(0);
    const models = JSON.parse(run.outputs.models!) as { ref: string; path: string }[];
    expect(JSON.parse(run.outputs.paths!)).toEqual({ [a]: models[0]!.path, [b]: models[1]!.path });
    expect(models[0]!.path).toBe(
      join(runner.home, '.ollama', 'models', 'blobs', `sha256-${sha256(tiny.layers[0]!.bytes)}`),
    );
    expect(run.summary).toContain(
      '| model | source | size | cache | downloaded | time | throughput | cache key |',
    );
    for (const [line, m] of [
      [a, tiny],
      [b, other],
    ] as const) {
      const row = run.summary.split('\n').find((l) => l.startsWith(`| \`${line}\` |`));
      expect(row).toMatch(new RegExp(`\\| miss \\| .* \\| \`${keyOf(m.manifest)}\` \\|$`));
    }
  });

  test('a failed line has no path, and the summary lists it with its reason', async () => {
    const good = lineOf('team/tiny');
    const missing = lineOf('team/absent');
    const run = await pull([good, missing]);
    expect(run.code).toBe(1);
    const models = JSON.parse(run.outputs.models!) as { ref: string; path?: string; error?: string }[];
    expect(Object.keys(JSON.parse(run.outputs.paths!))).toEqual([good]);
    expect(models[1]!.error).toBeDefined();
    expect(run.summary).toContain(`| \`${missing}\` | – | – | failed |`);
    expect(run.summary).toContain(`- \`${missing}\`: `);
  });
});
