import { execFileSync } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { createNoCache } from '../../../src/cache/client.js';
import { pull } from '../../../src/pull.js';
import { MemoryLogger } from '../../../src/report/logger.js';
import { buildSettings } from '../../../src/settings/settings.js';
import { sourceOptions } from '../../../src/sources/descriptor.js';
import { DEFAULT_SOURCES } from '../../../src/sources/index.js';
import { verifyOciDir } from '../../../src/sources/oci/verify.js';
import { buildTar } from '../../helpers/cache-archive.js';
import type { TestServer } from '../../helpers/http.js';
import { tempDir } from '../../helpers/http.js';
import {
  type Artifact,
  dockerModel,
  FILEPATH,
  gguf,
  indexOf,
  MODELPACK_ARTIFACT,
  modelPack,
  OCI_INDEX,
  OCI_MANIFEST,
  pushArtifact,
  putManifest,
} from '../../helpers/oci-artifacts.js';
import {
  blobGets,
  type RealRegistry,
  send,
  sha256,
  startRecordingProxy,
  startRegistry,
} from '../../helpers/registry.js';

// oci: lines end to end through the pipeline against the real CNCF registry, with artifacts the
// test pushes itself: what lands in the OCI layout (read back by skopeo) and in the model folder.

let registry: RealRegistry;
let host: string;
/** The same registry behind a recording proxy, where a test counts requests. */
let proxy: TestServer;
let proxyHost: string;
let dir: Awaited<ReturnType<typeof tempDir>>;

const weights = gguf(300 * 1024);
const configFiles = {
  'config.json': Buffer.from('{"architectures":["Tiny"]}'),
  'tokenizer/tokenizer.json': Buffer.from('{"model":{"type":"BPE"}}'),
};
const docFiles = { 'README.md': Buffer.from('# tiny\n'), LICENSE: Buffer.from('MIT\n') };
const tarOf = (files: Record<string, Buffer>, dirs: string[] = []) =>
  buildTar([
    ...dirs.map((name) => ({ name: `${name}/`, type: '5' })),
    ...Object.entries(files).map(([name, data]) => ({ name, data })),
  ]);

const modelpack: Artifact = modelPack([
  {
    mediaType: 'application/vnd.cncf.model.weight.v1.raw',
    bytes: weights,
    annotations: { [FILEPATH]: 'tiny-q4.gguf' },
  },
  {
    mediaType: 'application/vnd.cncf.model.weight.config.v1.tar+zstd',
    bytes: zstdCompressSync(tarOf(configFiles, ['tokenizer'])),
    annotations: { [FILEPATH]: 'config.json' },
  },
  { mediaType: 'application/vnd.cncf.model.doc.v1.tar+gzip', bytes: gzipSync(tarOf(docFiles)) },
]);
const template = Buffer.from('{% for m in messages %}{{ m.content }}{% endfor %}');
const license = Buffer.from('Apache-2.0\n');
const docker: Artifact = dockerModel([
  { mediaType: 'application/vnd.docker.ai.gguf.v3', bytes: gguf(200 * 1024) },
  { mediaType: 'application/vnd.docker.ai.license', bytes: license },
  { mediaType: 'application/vnd.docker.ai.chat.template.jinja', bytes: template },
]);

function settingsFor(lines: string[], ociDir: string, extra: Record<string, string> = {}) {
  return buildSettings(
    { models: lines.join('\n'), 'oci-dir': ociDir, cache: 'false', retries: '1', ...extra },
    { env: {}, home: dir.path, nameOf: (n) => n, sourceOptions: sourceOptions(DEFAULT_SOURCES) },
  );
}

async function run(lines: string[], ociDir: string, extra: Record<string, string> = {}) {
  const log = new MemoryLogger();
  const report = await pull(settingsFor(lines, ociDir, extra), {
    sources: DEFAULT_SOURCES,
    log,
    cache: createNoCache(),
  });
  return { report, log };
}

beforeAll(async () => {
  registry = await startRegistry();
  host = new URL(registry.url).host;
  dir = await tempDir('model-pull-oci-');
  await pushArtifact(registry.url, 'team/modelpack', 'v1', modelpack);
  await pushArtifact(registry.url, 'ai/docker-model', 'q4', docker);
  proxy = await startRecordingProxy(registry.url);
  proxyHost = new URL(proxy.url).host;
});
afterAll(async () => {
  await proxy?.close();
  await registry?.close();
  await dir?.remove();
});

test('a ModelPack artifact: raw GGUF linked from its blob, tar+zstd and tar+gzip layers extracted', async () => {
  const ociDir = join(dir.path, 'modelpack');
  const line = `oci:${host}/team/modelpack:v1`;
  const { report, log } = await run([line], ociDir);
  const model = report.models[0]!;
  expect(model.error).toBeUndefined();
  const folder = join(ociDir, 'models', host, 'team', 'modelpack', modelpack.hex);
  const blob = (bytes: Buffer) => join(ociDir, 'blobs', 'sha256', sha256(bytes));
  const file = (path: string, bytes: Buffer) => ({
    path: join(folder, path),
    digest: `sha256:${sha256(bytes)}`,
    size: bytes.length,
  });
  expect(model.output).toEqual({
    ref: line,
    source: 'oci',
    name: `${host}/team/modelpack:v1`,
    digest: `sha256:${modelpack.hex}`,
    path: join(folder, 'tiny-q4.gguf'),
    size: [modelpack.config, ...modelpack.layers].reduce((n, l) => n + l.bytes.length, 0),
    cache: 'off',
    files: [
      file('tiny-q4.gguf', weights),
      file('config.json', configFiles['config.json']),
      file('tokenizer/tokenizer.json', configFiles['tokenizer/tokenizer.json']),
      file('README.md', docFiles['README.md']),
      file('LICENSE', docFiles.LICENSE),
    ],
  });
  for (const f of model.output!.files) expect(`sha256:${sha256(await readFile(f.path))}`).toBe(f.digest);
  // The raw layer is the blob itself (a hard link), not a copy.
  const [linked, original] = await Promise.all([stat(join(folder, 'tiny-q4.gguf')), stat(blob(weights))]);
  expect([linked.ino, linked.nlink]).toEqual([original.ino, 2]);
  expect(log.lines.filter((l) => l.startsWith('warning:'))).toEqual([]);

  // The OCI layout, read by skopeo: the manifest bytes under the reference's name ...
  const ref = `oci:${ociDir}:${host}/team/modelpack:v1`;
  const raw = execFileSync('skopeo', ['inspect', '--raw', ref]);
  expect(sha256(raw)).toBe(modelpack.hex);
  // ... and copied back into a registry with every blob, to the same digest.
  execFileSync('skopeo', [
    'copy',
    '--quiet',
    '--dest-tls-verify=false',
    ref,
    `docker://${host}/copy/modelpack:v1`,
  ]);
  const copied = await send('GET', `${registry.url}/v2/copy/modelpack/manifests/v1`, {
    accept: OCI_MANIFEST,
  });
  expect(copied.headers['docker-content-digest']).toBe(`sha256:${modelpack.hex}`);
  const index = JSON.parse(await readFile(join(ociDir, 'index.json'), 'utf8'));
  expect(index).toEqual({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      {
        mediaType: OCI_MANIFEST,
        artifactType: MODELPACK_ARTIFACT,
        digest: `sha256:${modelpack.hex}`,
        size: modelpack.manifest.length,
        annotations: { 'org.opencontainers.image.ref.name': `${host}/team/modelpack:v1` },
      },
    ],
  });
  expect(JSON.parse(await readFile(join(ociDir, 'oci-layout'), 'utf8'))).toEqual({
    imageLayoutVersion: '1.0.0',
  });
});

test('a Docker Model Runner artifact: files named as its runner names them; behind an index too', async () => {
  const ociDir = join(dir.path, 'docker');
  const index = indexOf([
    {
      mediaType: OCI_MANIFEST,
      digest: `sha256:${docker.hex}`,
      size: docker.manifest.length,
    },
  ]);
  await putManifest(registry.url, 'ai/docker-model', 'indexed', OCI_INDEX, index);
  const lines = [`oci:${host}/ai/docker-model:q4`, `oci:${host}/ai/docker-model:indexed`];
  const { report } = await run(lines, ociDir);
  const folder = join(ociDir, 'models', host, 'ai', 'docker-model', docker.hex);
  for (const model of report.models) {
    expect(model.error).toBeUndefined();
    expect(model.output!.digest).toBe(`sha256:${docker.hex}`);
    expect(model.output!.path).toBe(join(folder, 'model.gguf'));
    expect(model.output!.files.map((f) => f.path)).toEqual(
      ['model.gguf', 'LICENSE', 'template.jinja'].map((p) => join(folder, p)),
    );
  }
  expect(await readFile(join(folder, 'template.jinja'))).toEqual(template);
  expect(await readFile(join(folder, 'LICENSE'))).toEqual(license);
  const names = JSON.parse(await readFile(join(ociDir, 'index.json'), 'utf8')).manifests.map(
    (m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name'],
  );
  expect(names.sort()).toEqual(lines.map((l) => l.slice(4)).sort());
});

test('Docker v2 manifest and manifest list media types are read like their OCI twins', async () => {
  const ociDir = join(dir.path, 'docker-v2');
  const V2 = 'application/vnd.docker.distribution.manifest.v2+json';
  const LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
  const blobsOf = dockerModel([
    { mediaType: 'application/vnd.docker.ai.gguf.v3', bytes: gguf(64 * 1024) },
    { mediaType: 'application/vnd.docker.ai.license', bytes: license },
  ]);
  await pushArtifact(registry.url, 'ai/docker-v2', 'oci', blobsOf);
  const v2 = Buffer.from(JSON.stringify({ ...JSON.parse(blobsOf.manifest.toString('utf8')), mediaType: V2 }));
  await putManifest(registry.url, 'ai/docker-v2', 'v2', V2, v2);
  const list = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: LIST,
      manifests: [
        {
          mediaType: V2,
          digest: `sha256:${sha256(v2)}`,
          size: v2.length,
          platform: { architecture: 'amd64', os: 'linux' },
        },
      ],
    }),
  );
  await putManifest(registry.url, 'ai/docker-v2', 'list', LIST, list);
  const lines = [`oci:${host}/ai/docker-v2:v2`, `oci:${host}/ai/docker-v2:list`];
  const { report } = await run(lines, ociDir);
  const folder = join(ociDir, 'models', host, 'ai', 'docker-v2', sha256(v2));
  for (const model of report.models) {
    expect(model.error).toBeUndefined();
    expect(model.output!.digest).toBe(`sha256:${sha256(v2)}`);
    expect(model.output!.path).toBe(join(folder, 'model.gguf'));
  }
  expect(await readFile(join(folder, 'model.gguf'))).toEqual(blobsOf.layers[0]!.bytes);
  expect(await readFile(join(folder, 'LICENSE'))).toEqual(license);
  const entries = JSON.parse(await readFile(join(ociDir, 'index.json'), 'utf8')).manifests as {
    mediaType: string;
    digest: string;
  }[];
  expect(entries.map((e) => [e.mediaType, e.digest])).toEqual([
    [V2, `sha256:${sha256(v2)}`],
    [V2, `sha256:${sha256(v2)}`],
  ]);
  // Kept byte for byte, so the digest stays the registry's (docs/oci-artifacts.md: skopeo looks
  // names up among OCI manifests only, and does not see this entry).
  expect(await readFile(join(ociDir, 'blobs', 'sha256', sha256(v2)))).toEqual(v2);
});

test('a lock file pins the manifest digest and bytes: a locked run makes no manifest request', async () => {
  const ociDir = join(dir.path, 'locked');
  const lockfile = join(dir.path, 'oci.lock');
  const line = `oci:${proxyHost}/team/modelpack:v1`;
  const first = await run([line], ociDir, { lockfile, 'lock-mode': 'update' });
  expect(first.report.models[0]!.error).toBeUndefined();
  const lock = JSON.parse(await readFile(lockfile, 'utf8'));
  expect(lock.models[line]).toEqual({
    source: 'oci',
    ref: line,
    name: `${proxyHost}/team/modelpack:v1`,
    digest: `sha256:${modelpack.hex}`,
    contentDigest: modelpack.hex,
    detail: { manifest: modelpack.manifest.toString('utf8') },
  });

  const fresh = join(dir.path, 'locked-fresh');
  const mark = proxy.requests.length;
  const second = await run([line], fresh, { lockfile });
  expect(second.report.models[0]!.output!.digest).toBe(`sha256:${modelpack.hex}`);
  const asked = proxy.requests.slice(mark);
  expect(asked.filter((r) => r.url.includes('/manifests/'))).toEqual([]);
  const gets = asked.filter((r) => r.method === 'GET' && r.url.includes('/blobs/'));
  expect(gets.length).toBe(1 + modelpack.layers.length);

  // A lock entry edited to name other bytes is refused before anything is fetched.
  lock.models[line].detail.manifest = lock.models[line].detail.manifest.replace('tiny-q4.gguf', 'evil.gguf');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(lockfile, JSON.stringify(lock));
  const edited = await run([line], join(dir.path, 'locked-edited'), { lockfile });
  expect(edited.report.models[0]!.error?.message).toMatch(
    new RegExp(
      `^the recorded manifest of ${proxyHost}/team/modelpack:v1 hashes to sha256:[0-9a-f]{64}, not its recorded digest sha256:${modelpack.hex}$`,
    ),
  );
});

test('a pin may name an index; a pinned model complete on disk makes no request at all', async () => {
  const ociDir = join(dir.path, 'pinned');
  const index = indexOf([
    { mediaType: OCI_MANIFEST, digest: `sha256:${docker.hex}`, size: docker.manifest.length },
  ]);
  await putManifest(registry.url, 'ai/docker-model', 'pinned-index', OCI_INDEX, index);
  const line = `oci:${proxyHost}/ai/docker-model@sha256:${sha256(index)}`;
  const first = await run([line], ociDir);
  expect(first.report.models[0]!.output).toMatchObject({
    name: `${proxyHost}/ai/docker-model@sha256:${sha256(index)}`,
    digest: `sha256:${docker.hex}`,
  });
  const mark = proxy.requests.length;
  const again = await run([line], ociDir);
  expect(again.report.models[0]!.output!.digest).toBe(`sha256:${docker.hex}`);
  expect(again.report.downloadedBytes).toBe(0);
  expect(proxy.requests.slice(mark)).toEqual([]);
});

test('a hostile tar layer fails its model only; an unknown layer is kept as a blob and reported', async () => {
  const ociDir = join(dir.path, 'hostile');
  const hostile = modelPack([
    {
      mediaType: 'application/vnd.cncf.model.weight.v1.raw',
      bytes: gguf(1024),
      annotations: { [FILEPATH]: 'm.gguf' },
    },
    {
      mediaType: 'application/vnd.cncf.model.doc.v1.tar',
      bytes: buildTar([
        { name: 'README.md', data: Buffer.from('hi') },
        { name: 'evil', type: '2', linkname: '/etc/passwd' },
      ]),
    },
  ]);
  const odd = Buffer.from('{"some":"thing"}');
  const extra = modelPack([
    {
      mediaType: 'application/vnd.cncf.model.weight.v1.raw',
      bytes: gguf(2048),
      annotations: { [FILEPATH]: 'm.gguf' },
    },
    { mediaType: 'application/vnd.example.unknown.v1', bytes: odd },
  ]);
  await pushArtifact(registry.url, 'team/hostile', 'v1', hostile);
  await pushArtifact(registry.url, 'team/extra', 'v1', extra);
  const lines = [`oci:${host}/team/hostile:v1`, `oci:${host}/team/extra:v1`];
  const { report, log } = await run(lines, ociDir);
  expect(report.models[0]!.error?.message).toMatch(
    /^layer 2 \(sha256:[0-9a-f]{12}…, application\/vnd\.cncf\.model\.doc\.v1\.tar\) holds "evil", which is refused: it is a symbolic link; only regular files and folders are extracted$/,
  );
  const hostileFolder = join(ociDir, 'models', host, 'team', 'hostile');
  expect(await readdir(hostileFolder).catch(() => [])).toEqual([]);
  // The model that fails lands no reference either.
  const names = JSON.parse(await readFile(join(ociDir, 'index.json'), 'utf8')).manifests.map(
    (m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name'],
  );
  expect(names).toEqual([`${host}/team/extra:v1`]);

  const model = report.models[1]!;
  expect(model.error).toBeUndefined();
  const blobPath = join(ociDir, 'blobs', 'sha256', sha256(odd));
  expect(model.output!.files.at(-1)).toEqual({
    path: blobPath,
    digest: `sha256:${sha256(odd)}`,
    size: odd.length,
  });
  expect(await readFile(blobPath)).toEqual(odd);
  expect(log.lines).toContain(
    `warning: ${lines[1]}: layer 2 (sha256:${sha256(odd).slice(0, 12)}…, application/vnd.example.unknown.v1) is kept as a blob in the OCI layout only (unknown layer type application/vnd.example.unknown.v1)`,
  );
});

test('a path that leaves the folder fails the model before any blob is fetched', async () => {
  const escaping = modelPack([
    {
      mediaType: 'application/vnd.cncf.model.weight.v1.raw',
      bytes: gguf(4096),
      annotations: { [FILEPATH]: '../../../../escape.gguf' },
    },
  ]);
  await pushArtifact(registry.url, 'team/escaping', 'v1', escaping);
  const before = blobGets(proxy);
  const { report } = await run([`oci:${proxyHost}/team/escaping:v1`], join(dir.path, 'escaping'));
  expect(report.models[0]!.error?.message).toMatch(
    new RegExp(
      `^manifest of ${proxyHost}/team/escaping:v1 is invalid: layer 1 \\(sha256:[0-9a-f]{12}…, application/vnd\\.cncf\\.model\\.weight\\.v1\\.raw\\) names the path "\\.\\./\\.\\./\\.\\./\\.\\./escape\\.gguf", which is refused: it has a "\\.\\." part$`,
    ),
  );
  expect(blobGets(proxy)).toBe(before);
});

test('verify re-hashes the layout and the folders, naming the line that repairs a damaged model', async () => {
  const ociDir = join(dir.path, 'verify');
  const line = `oci:${host}/team/modelpack:v1`;
  expect((await run([line], ociDir)).report.ok).toBe(true);
  const clean = await verifyOciDir(ociDir);
  expect(clean.damaged).toEqual([]);
  // manifest + config + 3 layers, then the 5 files of the folder
  expect(clean.checkedFiles).toBe(10);

  const folder = join(ociDir, 'models', host, 'team', 'modelpack', modelpack.hex);
  const docs = join(ociDir, 'blobs', 'sha256', sha256(modelpack.layers[2]!.bytes));
  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(folder, 'README.md'), '# TINY\n');
  await writeFile(docs, Buffer.alloc(modelpack.layers[2]!.bytes.length));
  const damaged = await verifyOciDir(ociDir);
  expect(damaged.damaged.map((d) => [d.model, d.path])).toEqual([
    [`oci:${host}/team/modelpack:v1`, docs],
    // The folder is named by the reference that pulled it: one model, one repair line.
    [`oci:${host}/team/modelpack:v1`, join(folder, 'README.md')],
  ]);
  expect(damaged.damaged[1]!.problem).toBe(
    `sha256 ${sha256(Buffer.from('# TINY\n'))}, expected ${sha256(docFiles['README.md'])}`,
  );
});
