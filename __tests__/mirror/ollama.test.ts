import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliInProcess } from '../helpers/cli-in-process.js';
import { tempDir } from '../helpers/http.js';
import {
  type GeneratedModel,
  generateModel,
  pushModel,
  type RealRegistry,
  send,
  sha256,
  startRecordingProxy,
  startRegistry,
  storedBlobs,
} from '../helpers/registry.js';

// `model-pull mirror` for Ollama models: pulled from one real registry, pushed to another (the
// org's, htpasswd Basic auth) as the same manifest bytes and layers, read back by an ollama: line
// into a fresh store and by skopeo; two origins meeting in one repository are refused first.

const KiB = 1024;
const USER = { username: 'ci', password: 'mirror-pw' };

let source: RealRegistry;
let org: RealRegistry;
let home: Awaited<ReturnType<typeof tempDir>>;
let tiny: GeneratedModel;
let tinyDigest: string;

beforeAll(async () => {
  [source, org] = await Promise.all([startRegistry(), startRegistry({ htpasswd: USER })]);
  home = await tempDir('model-pull-mirror-');
  tiny = generateModel(300 * KiB);
  tinyDigest = await pushModel(source.url, 'team/tiny', 'v1', tiny);
  await pushModel(source.url, 'other/tiny', 'v1', generateModel(10 * KiB));
});
afterAll(async () => {
  await Promise.all([source?.close(), org?.close()]);
  await home?.remove();
});

const orgHost = () => new URL(org.url).host;
const env = () => ({ HOME: home.path });
const creds = () => [
  '--registry-host',
  orgHost(),
  '--registry-username',
  USER.username,
  '--registry-password',
  USER.password,
];

test('an Ollama model goes to the org registry unchanged and comes back through an ollama: line', async () => {
  const first = join(home.path, 'first');
  const line = `ollama:${source.url}/team/tiny:v1`;
  const mirrored = await cliInProcess(
    ['mirror', '--to', `${orgHost()}/mirror`, '--ollama-models', first, ...creds(), line],
    env(),
  );
  expect(mirrored.stderr).toContain(
    `${line}: pushed ${orgHost()}/mirror/tiny:v1 (${tinyDigest}): 4 blobs uploaded (`,
  );
  expect(mirrored.code).toBe(0);
  expect(mirrored.stderr).not.toContain(USER.password);

  // The registry keeps the manifest bytes: same digest, same bytes.
  const auth = {
    authorization: `Basic ${Buffer.from(`${USER.username}:${USER.password}`).toString('base64')}`,
  };
  const manifest = await send('GET', `${org.url}/v2/mirror/tiny/manifests/v1`, {
    ...auth,
    accept: 'application/vnd.docker.distribution.manifest.v2+json',
  });
  expect(manifest.body.equals(tiny.manifest)).toBe(true);
  expect(manifest.headers['docker-content-digest']).toBe(tinyDigest);

  // Read back by an ollama: line into a fresh store: the same files, byte for byte.
  const second = join(home.path, 'second');
  const back = await cliInProcess(
    ['pull', '--ollama-models', second, ...creds(), `ollama:${orgHost()}/mirror/tiny:v1`],
    env(),
  );
  expect(back.code).toBe(0);
  const blobs = async (root: string) => (await readdir(join(root, 'blobs'))).sort();
  expect(await blobs(second)).toEqual(await blobs(first));
  for (const name of await blobs(first))
    expect(
      (await readFile(join(second, 'blobs', name))).equals(await readFile(join(first, 'blobs', name))),
    ).toBe(true);
  const stored = await readFile(join(second, 'manifests', orgHost(), 'mirror', 'tiny', 'v1'));
  expect(stored.equals(tiny.manifest)).toBe(true);

  // skopeo reads what was pushed, as any OCI tool would.
  const raw = execFileSync('skopeo', [
    'inspect',
    '--raw',
    '--tls-verify=false',
    '--creds',
    `${USER.username}:${USER.password}`,
    `docker://${orgHost()}/mirror/tiny:v1`,
  ]);
  expect(sha256(raw)).toBe(tinyDigest.slice(7));

  // Mirrored again: every blob is already there, nothing is sent.
  const again = await cliInProcess(
    ['mirror', '--to', `${orgHost()}/mirror`, '--ollama-models', first, ...creds(), line],
    env(),
  );
  expect(again.code).toBe(0);
  expect(again.stderr).toContain(
    `${line}: pushed ${orgHost()}/mirror/tiny:v1 (${tinyDigest}): 0 blobs uploaded (0 B), 4 already there\n`,
  );
  expect((await storedBlobs(org)).uploads).toEqual([]);
});

test('a bare host keeps the source namespace; a blob another model of the run pushed is mounted', async () => {
  const proxy = await startRecordingProxy(org.url);
  try {
    const host = new URL(proxy.url).host;
    const result = await cliInProcess(
      [
        'mirror',
        '--to',
        host,
        '--ollama-models',
        join(home.path, 'bare'),
        '--registry-host',
        host,
        '--registry-username',
        USER.username,
        '--registry-password',
        USER.password,
        '--concurrency',
        '1',
        `ollama:${source.url}/team/tiny:v1`,
        `ollama:${source.url}/other/tiny:v1`,
      ],
      env(),
    );
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`pushed ${host}/team/tiny:v1`);
    expect(result.stderr).toContain(`pushed ${host}/other/tiny:v1`);
    // The generated models share their template and params layers: the second mounts them.
    expect(result.stderr).toMatch(/other\/tiny:v1: pushed .*, 2 mounted\n/);
    const mounts = proxy.requests.filter((r) => r.method === 'POST' && r.url.includes('mount='));
    expect(mounts.map((r) => new URL(r.url, proxy.url).searchParams.get('from'))).toEqual([
      'team/tiny',
      'team/tiny',
    ]);
  } finally {
    await proxy.close();
  }
});

test('two namespaces meeting in one repository, or a prefix Ollama cannot name, stop the run first', async () => {
  const store = join(home.path, 'refused');
  const lines = [`ollama:${source.url}/team/tiny:v1`, `ollama:${source.url}/other/tiny:v1`];
  const clash = await cliInProcess(
    ['mirror', '--to', `${orgHost()}/ns`, '--ollama-models', store, ...lines],
    env(),
  );
  expect(clash.code).toBe(2);
  expect(clash.stderr).toBe(
    `model-pull mirror: invalid model line "${lines[1]}": it would go to ${orgHost()}/ns/tiny, where "${lines[0]}" goes (${new URL(source.url).host}/team/tiny and ${new URL(source.url).host}/other/tiny would mix their tags there); mirror them to different prefixes\n`,
  );
  const deep = await cliInProcess(
    ['mirror', '--to', `${orgHost()}/a/b`, '--ollama-models', store, lines[0]!],
    env(),
  );
  expect(deep.code).toBe(2);
  expect(deep.stderr).toBe(
    `model-pull mirror: invalid model line "${lines[0]}": Ollama names hold one namespace (host/namespace/model:tag), so Ollama models can go to ${orgHost()} or ${orgHost()}/a, not under ${orgHost()}/a/b\n`,
  );
  const noTo = await cliInProcess(['mirror', lines[0]!], env());
  expect([noTo.code, noTo.stderr]).toEqual([
    2,
    'model-pull mirror: needs --to PREFIX: the registry to push to (see model-pull mirror --help)\n',
  ]);
  // Nothing was fetched for a refused run.
  await expect(readdir(store)).rejects.toThrow();
});
