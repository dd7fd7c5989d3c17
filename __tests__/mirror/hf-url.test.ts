import { execFileSync } from 'node:child_process';
import { readdir, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { gitBlobSha1Hex, sha256Hex } from '../../src/digest.js';
import { cliInProcess } from '../helpers/cli-in-process.js';
import { startServer, type TestServer, tempDir } from '../helpers/http.js';
import { fileBytes, type HubFileSpec, type LocalHub, randomCommit, startHub } from '../helpers/hub.js';
import { gguf } from '../helpers/oci-artifacts.js';
import { type RealRegistry, startRecordingProxy, startRegistry } from '../helpers/registry.js';

// model-pull mirror for hf: repos and URL files: pulled from a local Hub and file server, pushed
// to the real registry (htpasswd Basic auth) as ModelPack artifacts, read by skopeo, and pulled
// back with oci: lines into fresh folders, byte for byte.

const USER = { username: 'ci', password: 'hf-mirror-pw' };
const COMMIT = randomCommit();
const FILES: HubFileSpec[] = [
  { path: 'config.json', content: fileBytes('{"model_type":"tiny"}') },
  { path: 'README.md', content: fileBytes('# tiny\n') },
  { path: 'model.safetensors', content: fileBytes(200 * 1024), lfs: true },
  { path: 'onnx/model q.onnx', content: fileBytes(30 * 1024), lfs: true },
  { path: 'copy/config.json', content: fileBytes('{"model_type":"tiny"}') },
];
const oid = (f: HubFileSpec) =>
  f.lfs ? `sha256:${sha256Hex(f.content)}` : `git-sha1:${gitBlobSha1Hex(f.content)}`;
const FILE = gguf(150 * 1024);
const FILE_HEX = sha256Hex(FILE);

let org: RealRegistry;
let hub: LocalHub;
let files: TestServer;
let home: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  org = await startRegistry({ htpasswd: USER });
  hub = await startHub([{ id: 'Team/Tiny-Model', refs: { main: COMMIT }, commits: { [COMMIT]: FILES } }]);
  files = await startServer((req, res) => {
    if (req.url !== '/dl/tiny.Q4_K_M.gguf') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': String(FILE.length) }).end(FILE);
  });
  home = await tempDir('model-pull-mirror-hf-');
});
afterAll(async () => {
  await Promise.all([org?.close(), hub?.close(), files?.close()]);
  await home?.remove();
});

const orgHost = () => new URL(org.url).host;
const creds = (host = orgHost()) => [
  '--registry-host',
  host,
  '--registry-username',
  USER.username,
  '--registry-password',
  USER.password,
];
const urlLine = () => `${files.url}/dl/tiny.Q4_K_M.gguf sha256=${FILE_HEX}`;
const hfLine = 'hf:Team/Tiny-Model';

function skopeoRaw(name: string): Buffer {
  return execFileSync('skopeo', [
    'inspect',
    '--raw',
    '--tls-verify=false',
    '--creds',
    `${USER.username}:${USER.password}`,
    `docker://${name}`,
  ]);
}

async function mirrorBoth(dir: string) {
  return cliInProcess(
    [
      'mirror',
      '--to',
      `${orgHost()}/models`,
      '--hf-cache',
      join(dir, 'hf'),
      '--hf-endpoint',
      hub.url,
      '--files-dir',
      join(dir, 'files'),
      ...creds(),
      hfLine,
      urlLine(),
    ],
    { HOME: dir },
  );
}

test('an hf: repo and a URL file become ModelPack artifacts that skopeo reads and oci: lines pull back', async () => {
  const dir = join(home.path, 'push');
  const pushed = await mirrorBoth(dir);
  expect(pushed.stderr).not.toContain(USER.password);
  expect(pushed.code).toBe(0);
  const repo = `${orgHost()}/models/team/tiny-model`;
  const hfPush = new RegExp(`${hfLine}: pushed ${repo}:${COMMIT}, ${repo}:main \\(sha256:([0-9a-f]{64})\\)`);
  const digest = hfPush.exec(pushed.stderr)?.[1];
  expect(digest).toBeDefined();
  // Two paths with the same bytes are one blob: 4 files and the config.
  expect(pushed.stderr).toContain(`(sha256:${digest}): 5 blobs uploaded (`);
  const fileRepo = `${orgHost()}/models/files/tiny.q4_k_m.gguf`;
  expect(pushed.stderr).toContain(`${urlLine()}: pushed ${fileRepo}:${FILE_HEX} (sha256:`);

  // What skopeo reads: a ModelPack manifest, one raw layer per file with its path and Hub oid.
  const raw = skopeoRaw(`${repo}:${COMMIT}`);
  expect(sha256Hex(raw)).toBe(digest);
  expect(skopeoRaw(`${repo}:main`).equals(raw)).toBe(true);
  const manifest = JSON.parse(raw.toString());
  expect(manifest.artifactType).toBe('application/vnd.cncf.model.manifest.v1+json');
  expect(manifest.config.mediaType).toBe('application/vnd.cncf.model.config.v1+json');
  expect(manifest.annotations).toMatchObject({
    'dev.model-pull.hf.repo': 'Team/Tiny-Model',
    'dev.model-pull.hf.commit': COMMIT,
    'dev.model-pull.hf.revision': 'main',
  });
  const layers = manifest.layers as {
    mediaType: string;
    digest: string;
    size: number;
    annotations: Record<string, string>;
  }[];
  const byPath = new Map(layers.map((l) => [l.annotations['org.cncf.model.filepath'], l]));
  expect([...byPath.keys()].sort()).toEqual(FILES.map((f) => f.path).sort());
  for (const f of FILES) {
    const layer = byPath.get(f.path)!;
    expect(layer.digest).toBe(`sha256:${sha256Hex(f.content)}`);
    expect(layer.size).toBe(f.content.length);
    expect(layer.annotations['dev.model-pull.hf.oid']).toBe(oid(f));
  }
  expect(byPath.get('model.safetensors')!.mediaType).toBe('application/vnd.cncf.model.weight.v1.raw');
  expect(byPath.get('README.md')!.mediaType).toBe('application/vnd.cncf.model.doc.v1.raw');
  expect(byPath.get('config.json')!.mediaType).toBe('application/vnd.cncf.model.weight.config.v1.raw');
  const fileManifest = JSON.parse(skopeoRaw(`${fileRepo}:${FILE_HEX}`).toString());
  expect(fileManifest.layers).toEqual([
    {
      mediaType: 'application/vnd.cncf.model.weight.v1.raw',
      digest: `sha256:${FILE_HEX}`,
      size: FILE.length,
      annotations: { 'org.cncf.model.filepath': 'tiny.Q4_K_M.gguf' },
    },
  ]);

  // Pulled back by oci: lines into a fresh folder: every file at its path, byte for byte.
  const back = join(home.path, 'back');
  const pulled = await cliInProcess(
    [
      'pull',
      '--json',
      '--oci-dir',
      join(back, 'oci'),
      ...creds(),
      `oci:${repo}:${COMMIT}`,
      `oci:${fileRepo}:${FILE_HEX}`,
    ],
    { HOME: back },
  );
  expect(pulled.stderr).not.toContain('warning');
  expect(pulled.code).toBe(0);
  const [hfModel, fileModel] = JSON.parse(pulled.stdout) as { path: string; digest: string }[];
  expect(hfModel!.digest).toBe(`sha256:${digest}`);
  for (const f of FILES)
    expect((await readFile(join(hfModel!.path, ...f.path.split('/')))).equals(Buffer.from(f.content))).toBe(
      true,
    );
  expect(fileModel!.path.endsWith('/tiny.Q4_K_M.gguf')).toBe(true);
  expect((await readFile(fileModel!.path)).equals(FILE)).toBe(true);

  // Mirrored again from the same stores: the same digests, nothing sent.
  const again = await mirrorBoth(dir);
  expect(again.code).toBe(0);
  expect(again.stderr).toContain(`(sha256:${digest}): 0 blobs uploaded (0 B), 5 already there`);
  expect(again.stderr).toMatch(
    /tiny\.q4_k_m\.gguf:[0-9a-f]{64} \(sha256:[0-9a-f]{64}\): 0 blobs uploaded \(0 B\), 2 already there/,
  );
});

test('a filtered hf: line gets tags of its own, never the tag that promises every file', async () => {
  const dir = join(home.path, 'filtered');
  const line = `${hfLine} include=*.json`;
  const result = await cliInProcess(
    [
      'mirror',
      '--to',
      `${orgHost()}/models`,
      '--hf-cache',
      join(dir, 'hf'),
      '--hf-endpoint',
      hub.url,
      ...creds(),
      line,
    ],
    { HOME: dir },
  );
  expect(result.code).toBe(0);
  const suffix = sha256Hex(JSON.stringify([['*.json'], []])).slice(0, 12);
  expect(result.stderr).toContain(
    `${line}: pushed ${orgHost()}/models/team/tiny-model:${COMMIT}-${suffix}, ${orgHost()}/models/team/tiny-model:main-${suffix} (`,
  );
  const manifest = JSON.parse(
    skopeoRaw(`${orgHost()}/models/team/tiny-model:${COMMIT}-${suffix}`).toString(),
  );
  expect(
    manifest.layers
      .map((l: { annotations: Record<string, string> }) => l.annotations['org.cncf.model.filepath'])
      .sort(),
  ).toEqual(['config.json', 'copy/config.json']);
  expect(manifest.annotations['dev.model-pull.hf.filters']).toBe('{"include":["*.json"],"exclude":[]}');
});

/** Every entry under a folder: links by target, files by sha256 (the engine's staging aside). */
async function listing(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const name = rel ? `${rel}/${entry.name}` : entry.name;
      if (name.includes('/.model-pull/ingest') || name.endsWith('.lease')) continue;
      if (entry.isSymbolicLink()) out[name] = `link ${await readlink(path)}`;
      else if (entry.isDirectory()) await walk(path, name);
      else out[name] = `file ${sha256Hex(await readFile(path))}`;
    }
  };
  await walk(root, '');
  return out;
}

describe('hf-oci-mirror', () => {
  let direct: Record<string, string>;
  let lockPath: string;

  beforeAll(async () => {
    // The Hub's own answer, pulled directly, and a lock file of the line.
    const dir = join(home.path, 'direct');
    const pulled = await cliInProcess(
      ['pull', '--hf-cache', join(dir, 'hf'), '--hf-endpoint', hub.url, hfLine],
      { HOME: dir },
    );
    expect(pulled.code).toBe(0);
    direct = await listing(join(dir, 'hf'));
    lockPath = join(home.path, 'model-pull.lock');
    const locked = await cliInProcess(['lock', '--lockfile', lockPath, '--hf-endpoint', hub.url, hfLine], {
      HOME: dir,
    });
    expect(locked.code).toBe(0);
    // The commit on the mirror, pushed as a platform team's scheduled job would.
    const pushed = await mirrorBoth(join(home.path, 'warm'));
    expect(pushed.code).toBe(0);
  });

  /** `pull` with `mirror` as the hf-oci-mirror, whose registry is `host` (the org's, or a proxy of it). */
  const pullVia = (name: string, mirror: string, args: readonly string[], host = orgHost()) => {
    const dir = join(home.path, name);
    return cliInProcess(
      [
        'pull',
        '--hf-cache',
        join(dir, 'hf'),
        '--hf-endpoint',
        hub.url,
        '--hf-oci-mirror',
        mirror,
        ...creds(host),
        ...args,
      ],
      { HOME: dir },
    ).then((r) => ({ ...r, cache: join(dir, 'hf') }));
  };

  /** The org registry behind a proxy that answers GETs of the blob `hex` with `forged` instead. */
  const startLiar = (hex: string, forged: Buffer) =>
    startRecordingProxy(org.url, {
      answer: (req, res) => {
        if (req.method !== 'GET' || !req.url?.endsWith(`/blobs/sha256:${hex}`)) return false;
        res.writeHead(200, { 'content-length': String(forged.length) }).end(forged);
        return true;
      },
    });

  test('a locked line with a warm mirror: no request to the Hub, the cache exactly as from the Hub', async () => {
    const before = hub.requestCount();
    const r = await pullVia('locked', `${orgHost()}/models`, ['--lockfile', lockPath, hfLine]);
    expect(r.stderr).not.toContain('warning');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      `${hfLine}: commit ${COMMIT} from ${orgHost()}/models/team/tiny-model:${COMMIT}`,
    );
    expect(hub.requestCount()).toBe(before);
    expect(await listing(r.cache)).toEqual(direct);
    expect(Object.keys(direct)).toEqual(
      expect.arrayContaining([
        `models--Team--Tiny-Model/refs/main`,
        `models--Team--Tiny-Model/trees/${COMMIT}.json`,
      ]),
    );
  });

  test('a pinned commit asks the Hub nothing; a branch without a lock asks it once (the revision)', async () => {
    const before = hub.requestCount();
    const pinned = await pullVia('pinned', `${orgHost()}/models`, [`${hfLine}@${COMMIT}`]);
    expect(pinned.code).toBe(0);
    expect(hub.requestCount()).toBe(before);
    const branch = await pullVia('branch', `${orgHost()}/models`, [hfLine]);
    expect(branch.code).toBe(0);
    expect(hub.hub.requests.slice(-1).map((q) => q.url)).toEqual([
      `/api/models/Team/Tiny-Model/revision/main`,
    ]);
    expect(hub.requestCount()).toBe(before + 1);
    expect(await listing(branch.cache)).toEqual(direct);
  });

  test('a commit the mirror lacks: one warning, then the Hub', async () => {
    const r = await pullVia('missing', `${orgHost()}/elsewhere`, ['--lockfile', lockPath, hfLine]);
    expect(r.code).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('warning'));
    expect(warnings).toEqual([
      expect.stringContaining(
        `${hfLine}: hf-oci-mirror ${orgHost()}/elsewhere: ${orgHost()}/elsewhere/team/tiny-model:${COMMIT} is not there; pulling from the Hub`,
      ),
    ]);
    expect(await listing(r.cache)).toEqual(direct);
  });

  /** Hub requests for one file of the line (its resolve/ URL), and the cache's blob names. */
  const resolves = (path: string, from: number) =>
    hub.hub.requests
      .slice(from)
      .filter((q) => decodeURIComponent(q.url).endsWith(`/resolve/${COMMIT}/${path}`)).length;

  test('a mirror serving other bytes for a file is refused by the Hub oid: that file from the Hub, one warning', async () => {
    const readme = FILES.find((f) => f.path === 'README.md')!;
    const hex = sha256Hex(readme.content);
    const forged = Buffer.from('# not tiny\n');
    const liar = await startLiar(hex, forged);
    try {
      const host = new URL(liar.url).host;
      const before = hub.hub.requests.length;
      const r = await pullVia('forged', `${host}/models`, ['--lockfile', lockPath, hfLine], host);
      expect(r.code).toBe(0);
      const warnings = r.stderr.split('\n').filter((l) => l.includes('warning'));
      expect(warnings).toEqual([
        expect.stringContaining(
          `${hfLine}: hf-oci-mirror ${host}/models failed on "README.md" (hf:Team/Tiny-Model README.md: git-sha1 mismatch from ${host}: expected ${gitBlobSha1Hex(readme.content)}`,
        ),
      ]);
      expect(warnings[0]).toContain('; pulling the files it fails from the Hub');
      // That one file from the Hub, the others from the mirror; the cache exactly as from the Hub.
      expect(hub.hub.requests.slice(before).map((q) => decodeURIComponent(q.url))).toEqual([
        `/Team/Tiny-Model/resolve/${COMMIT}/README.md`,
      ]);
      expect(await listing(r.cache)).toEqual(direct);
      const blobs = await readdir(join(r.cache, 'models--Team--Tiny-Model', 'blobs'));
      expect(blobs).not.toContain(gitBlobSha1Hex(forged));
    } finally {
      await liar.close();
    }
  });

  test('a file both the mirror and the Hub serve wrong leaves the mirror once, then fails from the Hub', async () => {
    const weights = FILES.find((f) => f.path === 'model.safetensors')!;
    const hex = sha256Hex(weights.content);
    const forged = Buffer.from(weights.content);
    forged[0]! ^= 0xff;
    const liar = await startLiar(hex, forged);
    const blobGets = () =>
      liar.requests.filter((q) => q.method === 'GET' && q.url.endsWith(`/blobs/sha256:${hex}`)).length;
    hub.faults.corrupt.add(hex);
    try {
      const host = new URL(liar.url).host;
      const before = hub.hub.requests.length;
      const cdnBefore = hub.cdn.requests.length;
      const r = await pullVia(
        'forged-twice',
        `${host}/models`,
        ['--lockfile', lockPath, '--retries', '0', hfLine],
        host,
      );
      expect(r.code).toBe(1);
      const told = r.stderr.split('\n').filter((l) => /^(warning|error): /.test(l));
      expect(told).toEqual([
        expect.stringContaining(
          `warning: ${hfLine}: hf-oci-mirror ${host}/models failed on "model.safetensors"`,
        ),
        expect.stringContaining(
          `error: ${hfLine}: model.safetensors: sha256 mismatch from ${new URL(hub.cdnUrl).host}: expected ${hex}, got `,
        ),
      ]);
      // One try at the mirror, then the Hub's own two tries; never back to the mirror.
      expect(blobGets()).toBe(1);
      expect(resolves('model.safetensors', before)).toBe(2);
      expect(hub.cdn.requests.length - cdnBefore).toBe(2);
    } finally {
      hub.faults.corrupt.delete(hex);
      await liar.close();
    }
  });

  // Last: it removes a layer from the org registry's storage.
  test('an artifact whose layer is gone from the registry: those files from the Hub, one warning', async () => {
    const onnx = FILES.find((f) => f.path === 'onnx/model q.onnx')!;
    const hex = sha256Hex(onnx.content);
    await rm(join(org.storage, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex), {
      recursive: true,
    });
    const before = hub.hub.requests.length;
    const r = await pullVia('gone', `${orgHost()}/models`, ['--lockfile', lockPath, hfLine]);
    expect(r.code).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('warning'));
    expect(warnings).toEqual([
      expect.stringContaining(`${hfLine}: hf-oci-mirror ${orgHost()}/models failed on "onnx/model q.onnx" (`),
    ]);
    expect(resolves('onnx/model q.onnx', before)).toBe(1);
    expect(hub.hub.requests.length - before).toBe(1);
    expect(await listing(r.cache)).toEqual(direct);
  });
});
