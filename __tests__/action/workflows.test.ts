import { join } from 'node:path';
import { type ActionRun, freshStepEachTest, listFiles, type Runner } from '../helpers/action.js';
import type { CacheService } from '../helpers/cache-service.js';
import type { TestServer } from '../helpers/http.js';
import {
  blobGets,
  descriptor,
  generateModel,
  pushModel,
  registryForFile,
  sha256,
} from '../helpers/registry.js';

/**
 * What real workflows need from the bundled action (issue 12): restore-only jobs (`save: false`)
 * after a warming job, outputs by line (`paths`), and a job summary that names each entry's key
 * and, on failure, the fix.
 */

const MiB = 1024 * 1024;

let proxy: TestServer;
let service: CacheService;
let runner: Runner;
const tiny = generateModel(MiB);
const other = generateModel(MiB / 2);

registryForFile(
  async (url) => {
    await pushModel(url, 'team/tiny', 'v1', tiny);
    await pushModel(url, 'team/other', 'v1', other);
  },
  (p) => {
    proxy = p;
  },
);
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

describe('fail-on-cache-miss', () => {
  test('fails before any download, naming the models and their keys; passes once warmed', async () => {
    const [a, b] = [lineOf('team/tiny'), lineOf('team/other')];
    const inputs = { save: 'false', 'fail-on-cache-miss': 'true' };
    const gets = blobGets(proxy);
    const cold = await pull([a, b], inputs);
    expect(cold.code).toBe(1);
    const fix =
      'run the job that pulls and saves them first (a job this one needs:), or set fail-on-cache-miss: false';
    expect(cold.errors()).toEqual([
      `2 of 2 models have no Actions cache entry, and fail-on-cache-miss is true: ` +
        `"${a}" (${keyOf(tiny.manifest)}), "${b}" (${keyOf(other.manifest)}); ${fix}`,
    ]);
    expect(blobGets(proxy)).toBe(gets);
    expect(cold.outputs.models).toBeUndefined();
    expect(await listFiles(join(runner.home, '.ollama', 'models', 'blobs'))).toEqual([]);
    expect(service.calls.map((c) => c.call)).toEqual([
      'GetCacheEntryDownloadURL',
      'GetCacheEntryDownloadURL',
    ]);
    expect(cold.summary).toContain(`  - **Fix:** \`${fix.replace(/`/g, "'")}\``);

    // The warming job saves one of them: the other still stops the step, named alone.
    expect((await pull([a])).code).toBe(0);
    await runner.emptyHome();
    const half = await pull([a, b], inputs);
    expect(half.code).toBe(1);
    expect(half.errors()[0]).toContain(`1 of 2 models have no Actions cache entry`);
    expect(half.errors()[0]).toContain(`"${b}" (${keyOf(other.manifest)})`);
    expect(half.errors()[0]).not.toContain(keyOf(tiny.manifest));
    expect(await listFiles(join(runner.home, '.ollama', 'models', 'blobs'))).toEqual([]);

    // Both warmed: every model restored, nothing downloaded, and the lookup is not repeated.
    expect((await pull([b])).code).toBe(0);
    await runner.emptyHome();
    const before = blobGets(proxy);
    const lookups = service.count('GetCacheEntryDownloadURL');
    const warm = await pull([a, b], inputs);
    expect(warm.code).toBe(0);
    expect(states(warm)).toEqual(['hit', 'hit']);
    expect(blobGets(proxy)).toBe(before);
    expect(service.count('GetCacheEntryDownloadURL')).toBe(lookups + 2);
  });

  test('an entry that is there but cannot be read stops the step too, before any download', async () => {
    const a = lineOf('team/tiny');
    expect((await pull([a])).code).toBe(0);
    await runner.emptyHome();
    service.setFault({ kind: 'blob-status', status: 404, methods: ['GET'] });
    const gets = blobGets(proxy);
    const run = await pull([a], { save: 'false', 'fail-on-cache-miss': 'true' });
    expect(run.code).toBe(1);
    const files = 1 + tiny.layers.length;
    expect(run.errors()).toEqual([
      '1 of 1 models could not be restored in full from their Actions cache entries (see the warning above), ' +
        `and fail-on-cache-miss is true: "${a}" (${keyOf(tiny.manifest)}: ${files} of ${files} files); ` +
        'run the job that saves them again, or set fail-on-cache-miss: false',
    ]);
    expect(run.warnings()).toHaveLength(1);
    expect(blobGets(proxy)).toBe(gets);
  });

  test('with no cache service the step fails: it cannot know the entries exist', async () => {
    const a = lineOf('team/tiny');
    const run = await runner.run({ models: a, 'fail-on-cache-miss': 'true' });
    expect(run.code).toBe(1);
    expect(run.errors()).toEqual([
      `the Actions cache could not be asked for 1 of 1 models (see the warning above), and fail-on-cache-miss is true: ` +
        `"${a}" (${keyOf(tiny.manifest)}); make the cache service reachable, or set fail-on-cache-miss: false`,
    ]);
    expect(run.warnings()).toEqual([
      'Actions cache unavailable: no Actions cache service is configured for this job; models are downloaded and not cached.',
    ]);
  });
});

describe('cache: off', () => {
  test('off when the cache is disabled, missing or failing; miss only when looked up and not found', async () => {
    const a = lineOf('team/tiny');
    const disabled = await pull([a], { cache: 'false' });
    expect(states(disabled)).toEqual(['off']);
    expect(service.calls).toEqual([]);

    const noService = await runner.run({ models: a });
    expect(states(noService)).toEqual(['off']);
    expect(noService.summary).toContain(`| \`${a}\` | ollama | 1.0 MiB | off |`);

    service.setFault({ kind: 'status', status: 429 });
    const failing = await pull([a]);
    expect(failing.code).toBe(0);
    expect(states(failing)).toEqual(['off']);
    expect(failing.warnings()).toHaveLength(1);
    expect(service.entries()).toEqual([]);

    service.setFault(undefined);
    const looked = await pull([a]);
    expect(states(looked)).toEqual(['miss']);
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
