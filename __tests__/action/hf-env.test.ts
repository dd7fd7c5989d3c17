import { createHash, randomBytes } from 'node:crypto';
import { readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type ActionRun, freshStepEachTest, listFiles, type Runner } from '../helpers/action.js';
import type { CacheService } from '../helpers/cache-service.js';
import { hfReaderPython, pythonAvailable, runReader } from '../helpers/hf-reader.js';
import { fileBytes, type HubFileSpec, type LocalHub, randomCommit, startHub } from '../helpers/hub.js';

/**
 * A Hugging Face model through the bundled action against the local hub and its CDN: the HF
 * cache layout, a warm run from the Actions cache that downloads no file, the variables handed
 * to later steps, and a token that never shows in logs, outputs or the summary.
 */

const KiB = 1024;
const COMMIT = randomCommit();
const TOKEN = `hf_${randomBytes(16).toString('hex')}`;
const MIRROR_PASSWORD = `pw-${randomBytes(12).toString('hex')}`;
const FILES: HubFileSpec[] = [
  { path: 'config.json', content: fileBytes('{"model_type":"tiny","hidden_size":8}') },
  { path: 'model.safetensors', content: fileBytes(1536 * KiB), lfs: true },
  { path: 'onnx/model.onnx', content: fileBytes(256 * KiB), lfs: true },
];

let hub: LocalHub;
let service: CacheService;
let runner: Runner;

beforeAll(async () => {
  const repo = { refs: { main: COMMIT }, commits: { [COMMIT]: FILES } };
  hub = await startHub([
    { id: 'org/tiny', ...repo },
    { id: 'org/secret', private: true, acceptedTokens: [TOKEN], ...repo },
    { id: 'org/behind-login', private: true, acceptedBasic: [`mirror-user:${MIRROR_PASSWORD}`], ...repo },
    { id: 'org/gated', gated: true, ...repo },
  ]);
});
afterAll(async () => {
  await hub?.close();
});
freshStepEachTest((r, s) => {
  runner = r;
  service = s;
});

const hfRoot = () => join(runner.home, '.cache', 'huggingface', 'hub');
const snapshot = (repo: string) => join(hfRoot(), `models--org--${repo}`, 'snapshots', COMMIT);
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const etag = (f: HubFileSpec) =>
  f.lfs
    ? `sha256:${sha256(f.content)}`
    : `git-sha1:${createHash('sha1').update(`blob ${f.content.length}\0`).update(f.content).digest('hex')}`;
const total = FILES.reduce((s, f) => s + f.content.length, 0);
const resolves = () => hub.hub.requests.filter((r) => r.url.includes('/resolve/')).length;

function pull(line: string, inputs: Record<string, string> = {}, env: Record<string, string> = {}) {
  return runner.run({ models: line, 'hf-endpoint': hub.url, ...inputs }, { ...service.env, ...env });
}

function expectedModel(repo: string, cache: string) {
  return {
    ref: `hf:org/${repo}`,
    source: 'hf',
    name: `org/${repo}`,
    digest: COMMIT,
    path: snapshot(repo),
    size: total,
    cache,
    files: FILES.map((f) => ({
      path: join(snapshot(repo), f.path),
      digest: etag(f),
      size: f.content.length,
    })),
  };
}

/** What huggingface_hub reads offline: refs/main, then snapshot links into blobs/. */
async function expectSnapshot(repo: string): Promise<void> {
  const folder = join(hfRoot(), `models--org--${repo}`);
  expect(await readFile(join(folder, 'refs', 'main'), 'utf8')).toBe(COMMIT);
  for (const f of FILES) {
    const entry = join(snapshot(repo), f.path);
    expect(sha256(await readFile(entry))).toBe(sha256(f.content));
    const depth = f.path.split('/').length + 1;
    expect(await readlink(entry)).toBe(`${'../'.repeat(depth)}blobs/${etag(f).replace(/^[^:]+:/, '')}`);
  }
}

describe('the action with a Hugging Face model', () => {
  test('a miss fills the HF cache and saves; a warm run on an emptied HOME downloads no file', async () => {
    const first = await pull('hf:org/tiny');
    expect(first.code).toBe(0);
    expect(first.outputs['cache-hit']).toBe('false');
    expect(first.outputs['downloaded-bytes']).toBe(String(total));
    expect(JSON.parse(first.outputs.models!)).toEqual([expectedModel('tiny', 'miss')]);
    await expectSnapshot('tiny');
    expect(service.entries().map((e) => e.key)).toEqual([
      expect.stringMatching(/^model-pull-v1-hf-[0-9a-f]{64}$/),
    ]);
    const cdnGets = hub.cdn.requests.length;
    const fileGets = resolves();
    // Issue 13: the commit's listing, which huggingface_hub reads offline for revision=<commit>.
    const trees = join(hfRoot(), 'models--org--tiny', 'trees', `${COMMIT}.json`);
    const listing = await readFile(trees);

    await runner.emptyHome();
    const warm = await pull('hf:org/tiny');
    expect(warm.code).toBe(0);
    expect(warm.outputs['cache-hit']).toBe('true');
    expect(warm.outputs['downloaded-bytes']).toBe('0');
    expect(warm.outputs['cached-bytes']).toBe(String(total));
    expect(JSON.parse(warm.outputs.models!)).toEqual([expectedModel('tiny', 'hit')]);
    await expectSnapshot('tiny');
    // The branch is looked up (no lock file), but not one file is fetched.
    expect(resolves()).toBe(fileGets);
    expect(hub.cdn.requests.length).toBe(cdnGets);
    expect(service.entries()).toHaveLength(1);

    // A restored model has its listing again, the same bytes, and loads offline at its commit.
    expect(await readFile(trees)).toEqual(listing);
    expect((await stat(trees)).mode & 0o777).toBe(0o600);
    if (pythonAvailable()) {
      const python = await hfReaderPython('2.0.0');
      const { results } = await runReader(
        python,
        [{ call: 'snapshot_download', cache: hfRoot(), repo: 'org/tiny', revision: COMMIT }],
        { home: join(runner.root, 'reader-home'), offline: true },
      );
      expect(results).toEqual([{ ok: { path: snapshot('tiny') }, logged: [] }]);
    }
  });

  test('hf-offline exports HF_HUB_OFFLINE=1 next to the roots, given as inputs', async () => {
    const hfCache = join(runner.root, 'hf');
    const store = join(runner.root, 'ollama');
    const run = await pull('hf:org/tiny', {
      'hf-offline': 'true',
      'hf-cache': hfCache,
      'ollama-models': store,
    });
    expect(run.code).toBe(0);
    expect(run.exported).toEqual({ OLLAMA_MODELS: store, HF_HUB_CACHE: hfCache, HF_HUB_OFFLINE: '1' });
    expect(run.outputs['hf-cache']).toBe(hfCache);
    expect(run.outputs['ollama-models']).toBe(store);
    expect(await listFiles(join(hfCache, 'models--org--tiny', 'snapshots'))).toEqual(
      FILES.map((f) => `${COMMIT}/${f.path}`).sort(),
    );
  });

  test('export-env=false exports nothing', async () => {
    const run = await pull('hf:org/tiny', { 'export-env': 'false' });
    expect(run.code).toBe(0);
    expect(run.files.env).toBe('');
    expect(run.outputs['hf-cache']).toBe(hfRoot());
  });

  test.each([
    ['the hf-token input', { 'hf-token': TOKEN }, {}],
    ['HF_TOKEN', {}, { HF_TOKEN: TOKEN }],
    ['hf-token with step debug logging on', { 'hf-token': TOKEN }, { RUNNER_DEBUG: '1' }],
  ])('a token from %s is masked and appears nowhere else', async (_from, inputs, env) => {
    const run: ActionRun = await pull('hf:org/secret', inputs, env);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.outputs.models!)).toEqual([expectedModel('secret', 'miss')]);
    expect(run.masks).toContain(TOKEN);
    // The token went to the hub's origin only, never along the redirect to the CDN.
    expect(hub.hub.requests.some((r) => r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(hub.cdnAuthorizations()).toEqual([]);
    const unmasked = run.stdout
      .split('\n')
      .filter((l) => !l.startsWith('::add-mask::'))
      .join('\n');
    for (const text of [unmasked, run.stderr, ...Object.values(run.files)]) expect(text).not.toContain(TOKEN);
  });

  // Issue 10 item 13: the password used to reach the error annotation, `models` and the summary.
  test('an hf-endpoint with user:pass@ is sent as Basic auth to that origin only, its password nowhere', async () => {
    const endpoint = hub.url.replace('http://', `http://mirror-user:${MIRROR_PASSWORD}@`);
    hub.hub.requests.length = 0;
    hub.cdn.requests.length = 0;
    const run = await runner.run(
      { models: 'hf:org/behind-login\nhf:org/gated', 'hf-endpoint': endpoint },
      service.env,
    );
    expect(run.code).toBe(1);
    const models = JSON.parse(run.outputs.models!) as { ref: string; path?: string; error?: string }[];
    expect(models[0]).toMatchObject({ ref: 'hf:org/behind-login', path: snapshot('behind-login') });
    expect(models[1]!.ref).toBe('hf:org/gated');
    // The failure names the model page on the endpoint, printed without the credentials.
    expect(run.errors().join('\n')).toContain(`accept the terms on the model page (${hub.url}/org/gated)`);

    const basic = `Basic ${Buffer.from(`mirror-user:${MIRROR_PASSWORD}`).toString('base64')}`;
    const sent = hub.hub.requests.map((r) => r.headers.authorization);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.every((a) => a === basic)).toBe(true);
    expect(hub.cdnAuthorizations()).toEqual([]);
    expect(run.masks).toContain(MIRROR_PASSWORD);
    const unmasked = run.stdout
      .split('\n')
      .filter((l) => !l.startsWith('::add-mask::'))
      .join('\n');
    for (const text of [unmasked, run.stderr, ...Object.values(run.files)]) {
      expect(text).not.toContain(MIRROR_PASSWORD);
      expect(text).not.toContain(basic.slice(6));
    }
  });
});
