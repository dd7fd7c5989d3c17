import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ActionRun, freshStepEachTest, type Runner } from '../helpers/action.js';
import { type BlobServer, startBlobServer } from '../helpers/blob-server.js';
import type { CacheFault, CacheService } from '../helpers/cache-service.js';
import { sha256 } from '../helpers/registry.js';

/**
 * The Actions cache is an optimisation: a missing or failing service must cost one warning and
 * nothing else (issue 5, step 6). Two plain-URL models, so a warning per model would show.
 * Twirp faults use 501 and 429: @actions/cache gives up on those at once, while 500/502/503/504
 * go through its five attempts with waits of 3 s and more (covered with shortened sleeps in
 * __tests__/cache, where the client runs in-process).
 */

const KiB = 1024;
const files = { a: randomBytes(1536 * KiB), b: randomBytes(512 * KiB) };
let servers: { a: BlobServer; b: BlobServer };
let service: CacheService;
let runner: Runner;

beforeAll(async () => {
  servers = { a: await startBlobServer(files.a), b: await startBlobServer(files.b) };
});
afterAll(async () => {
  await servers?.a.close();
  await servers?.b.close();
});
freshStepEachTest((r, s) => {
  runner = r;
  service = s;
});

const lineOf = (name: 'a' | 'b') => `${servers[name].url}/models/${name}.gguf sha256=${sha256(files[name])}`;
const fileOf = (name: 'a' | 'b') => join(runner.home, '.cache', 'model-pull', 'files', `${name}.gguf`);

function expectedModel(name: 'a' | 'b', cache: 'miss' | 'off' = 'miss') {
  const digest = `sha256:${sha256(files[name])}`;
  const size = files[name].length;
  return {
    ref: lineOf(name),
    source: 'url',
    name: `${servers[name].url}/models/${name}.gguf`,
    digest,
    path: fileOf(name),
    size,
    cache,
    files: [{ path: fileOf(name), digest, size }],
  };
}

/** Both models are in place, verified, and reported; the step is green. */
async function expectPulled(run: ActionRun, cache: 'miss' | 'off' = 'miss'): Promise<void> {
  expect(run.code).toBe(0);
  expect(run.errors()).toEqual([]);
  expect(run.outputs['cache-hit']).toBe('false');
  expect(run.outputs['downloaded-bytes']).toBe(String(files.a.length + files.b.length));
  expect(run.outputs['cached-bytes']).toBe('0');
  expect(JSON.parse(run.outputs.models!)).toEqual([expectedModel('a', cache), expectedModel('b', cache)]);
  for (const name of ['a', 'b'] as const)
    expect(sha256(await readFile(fileOf(name)))).toBe(sha256(files[name]));
}

const withoutToken = (env: Readonly<Record<string, string>>) =>
  Object.fromEntries(Object.entries(env).filter(([k]) => k !== 'ACTIONS_RUNTIME_TOKEN'));

interface Case {
  readonly name: string;
  readonly env: () => Record<string, string>;
  readonly fault?: CacheFault;
  readonly warning: RegExp;
  /** Service calls the run made, in order. */
  readonly calls: readonly string[];
  /** `off` when the entries could not be looked up at all, `miss` when they were and were not there. */
  readonly state: 'miss' | 'off';
}

const GET = 'GetCacheEntryDownloadURL';
const CREATE = 'CreateCacheEntry';

const cases: Case[] = [
  {
    name: 'no cache service configured',
    env: () => ({}),
    warning:
      /^Actions cache unavailable: no Actions cache service is configured for this job; models are downloaded and not cached\.$/,
    calls: [],
    state: 'off',
  },
  {
    name: 'ACTIONS_RUNTIME_TOKEN absent',
    env: () => withoutToken(service.env),
    warning: /^Actions cache service failing \(.*ACTIONS_RUNTIME_TOKEN.*\); continuing without the cache/,
    calls: [],
    state: 'off',
  },
  {
    name: 'every Twirp call answers 501',
    env: () => ({ ...service.env }),
    fault: { kind: 'status', status: 501 },
    warning:
      /^Actions cache service failing \(.*501.*\); continuing without the cache for the rest of this run\.$/,
    calls: [GET, GET],
    state: 'off',
  },
  {
    name: 'the service rate-limits with 429',
    env: () => ({ ...service.env }),
    fault: { kind: 'status', status: 429, retryAfterSeconds: 60 },
    warning:
      /^Actions cache service failing \(.*429.*\); continuing without the cache for the rest of this run\.$/,
    calls: [GET, GET],
    state: 'off',
  },
  {
    name: 'saving answers 501',
    env: () => ({ ...service.env }),
    fault: { kind: 'status', status: 501, methods: [CREATE] },
    warning:
      /^Actions cache service failing \(.*501.*\); continuing without the cache for the rest of this run\.$/,
    calls: [GET, GET, CREATE],
    state: 'miss',
  },
  {
    name: 'another job holds the keys (reserve conflict)',
    env: () => ({ ...service.env }),
    fault: { kind: 'reserve-conflict' },
    warning:
      /^Cache entry model-pull-v1-url-[0-9a-f]{64} is already saved or being saved by another job; not saved here\.$/,
    calls: [GET, GET, CREATE, CREATE],
    state: 'miss',
  },
];

describe('the action when the Actions cache is missing or failing', () => {
  test.each(cases)('$name: one warning, models pulled, step green', async (c) => {
    service.setFault(c.fault);
    const run = await runner.run({ models: [lineOf('a'), lineOf('b')].join('\n') }, c.env());
    await expectPulled(run, c.state);
    expect(run.warnings()).toHaveLength(1);
    expect(run.warnings()[0]).toMatch(c.warning);
    expect(service.calls.filter((x) => !x.call.includes(' ')).map((x) => x.call)).toEqual(c.calls);
    expect(service.entries().filter((e) => e.finalized)).toEqual([]);
  });

  test('an entry whose archive cannot be fetched: one warning, downloaded instead, not saved again', async () => {
    const inputs = { models: [lineOf('a'), lineOf('b')].join('\n') };
    expect((await runner.run(inputs, service.env)).code).toBe(0);
    await runner.emptyHome();
    const mark = service.calls.length;
    service.setFault({ kind: 'blob-status', status: 404, methods: ['GET'] });

    const run = await runner.run(inputs, service.env);
    await expectPulled(run);
    expect(run.warnings()).toHaveLength(1);
    expect(run.warnings()[0]).toMatch(
      /^Could not restore cache entry model-pull-v1-url-[0-9a-f]{64} \(.+\); its files are downloaded instead\.$/,
    );
    // The service named both entries; saving them again could only meet a conflict.
    // The two restores run in parallel, so their calls interleave in either order.
    const calls = service.calls.slice(mark).map((c) => `${c.call} ${c.status}`);
    expect(calls.sort()).toEqual(
      [
        `${GET} 200`,
        `${GET} 200`,
        'HEAD archive 404',
        'HEAD archive 404',
        'GET archive 404',
        'GET archive 404',
      ].sort(),
    );
  });

  test('cache=false: no service call, no warning, cache "off"', async () => {
    const run = await runner.run(
      { models: [lineOf('a'), lineOf('b')].join('\n'), cache: 'false' },
      service.env,
    );
    expect(run.code).toBe(0);
    expect(run.warnings()).toEqual([]);
    expect(service.calls).toEqual([]);
    expect(JSON.parse(run.outputs.models!)).toEqual([
      { ...expectedModel('a'), cache: 'off' },
      { ...expectedModel('b'), cache: 'off' },
    ]);
    expect(run.outputs['cache-hit']).toBe('false');
  });
});
