import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gitBlobSha1Hex, sha256Hex } from '../../src/digest.js';
import { formatBytes } from '../../src/report/format.js';
import { type BlobServer, startBlobServer } from '../helpers/blob-server.js';
import { tempDir } from '../helpers/http.js';
import { fileBytes, type HubFileSpec, type LocalHub, randomCommit, startHub } from '../helpers/hub.js';
import {
  descriptor,
  type GeneratedModel,
  generateModel,
  pushModel,
  type RealRegistry,
  startRegistry,
} from '../helpers/registry.js';
import { lines, requireBuiltCli, runCli } from './run.js';

// The built CLI pulls one line of each kind from real loopback servers: the CNCF registry, a
// local Hub + CDN, and a plain file server capped in rate so that a progress line is due.

const KiB = 1024;
const URL_SIZE = 3 * 1024 * KiB;
const COMMIT = randomCommit();
const HF_FILES: HubFileSpec[] = [
  { path: 'config.json', content: fileBytes('{"model_type":"tiny"}') },
  { path: 'model.safetensors', content: fileBytes(512 * KiB), lfs: true },
];

let registry: RealRegistry;
let hub: LocalHub;
let files: BlobServer;
let model: GeneratedModel;
let manifestDigest: string;
let urlData: Buffer;
let home: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  requireBuiltCli();
  registry = await startRegistry();
  model = generateModel(768 * KiB);
  manifestDigest = await pushModel(registry.url, 'team/tiny', 'v1', model);
  hub = await startHub([{ id: 'org/tiny', refs: { main: COMMIT }, commits: { [COMMIT]: HF_FILES } }]);
  urlData = randomBytes(URL_SIZE);
  // 1 MiB/s per response: about 3 s for the file, so the 1 s progress tick finds it in flight.
  files = await startBlobServer(urlData, () => ({ rate: 1024 * KiB }));
  home = await tempDir('model-pull-cli-');
});
afterAll(async () => {
  await Promise.all([registry?.close(), hub?.close(), files?.close()]);
  await home?.remove();
});

const store = () => join(home.path, 'ollama');
const hfCache = () => join(home.path, 'hf');
const filesDir = () => join(home.path, 'files');
const ollamaLine = () => `ollama:${registry.url}/team/tiny:v1`;
const urlHex = () => sha256Hex(urlData);

function pullArgs(): string[] {
  return [
    'pull',
    '--json',
    '--ollama-models',
    store(),
    '--hf-cache',
    hfCache(),
    '--files-dir',
    filesDir(),
    '--hf-endpoint',
    hub.url,
    '--connections',
    '1',
    ollamaLine(),
    'hf:org/tiny',
    // The URL's option as a separate word, as a shell user would type it unquoted.
    `${files.url}/tiny.gguf`,
    `sha256=${urlHex()}`,
  ];
}

interface Model {
  ref: string;
  source: string;
  name: string;
  digest: string;
  path: string;
  size: number;
  cache: string;
  files: { path: string; digest: string; size: number }[];
}

/** Every listed file is on disk with the bytes its digest names. */
async function expectFilesMatch(m: Model): Promise<void> {
  for (const f of m.files) {
    const bytes = await readFile(f.path);
    const [algorithm, hex] = f.digest.split(':');
    expect(algorithm === 'sha256' ? sha256Hex(bytes) : gitBlobSha1Hex(bytes)).toBe(hex);
    expect(bytes.length).toBe(f.size);
  }
}

describe('model-pull pull', () => {
  let first: Awaited<ReturnType<typeof runCli>>;

  beforeAll(async () => {
    first = await runCli(pullArgs(), { env: { HOME: home.path } });
  });

  it('exits 0 and prints exactly the models JSON on stdout, in line order', async () => {
    expect(first.stderr).not.toMatch(/^error:/m);
    expect(first.code).toBe(0);
    const models = JSON.parse(first.stdout) as Model[];
    expect(models.map((m) => [m.ref, m.source, m.cache])).toEqual([
      [ollamaLine(), 'ollama', 'off'],
      ['hf:org/tiny', 'hf', 'off'],
      [`${files.url}/tiny.gguf sha256=${urlHex()}`, 'url', 'off'],
    ]);
  });

  it('places the Ollama model: manifest digest, weights path, sizes, blobs and manifest on disk', async () => {
    const [ollama] = JSON.parse(first.stdout) as Model[];
    const weights = model.layers[0]!;
    const all = [model.config, ...model.layers];
    expect(ollama!.digest).toBe(manifestDigest);
    expect(ollama!.name).toBe(`${new URL(registry.url).host}/team/tiny:v1`);
    expect(ollama!.path).toBe(join(store(), 'blobs', `sha256-${sha256Hex(weights.bytes)}`));
    expect(sha256Hex(await readFile(ollama!.path))).toBe(sha256Hex(weights.bytes));
    expect(ollama!.size).toBe(all.reduce((s, b) => s + b.bytes.length, 0));
    expect(ollama!.files.map((f) => f.digest).sort()).toEqual(all.map((b) => descriptor(b).digest).sort());
    await expectFilesMatch(ollama!);
    const manifest = await readFile(join(store(), 'manifests', new URL(registry.url).host, 'team/tiny/v1'));
    expect(`sha256:${sha256Hex(manifest)}`).toBe(manifestDigest);
  });

  it('places the Hugging Face snapshot: commit, snapshot folder, ref, every file', async () => {
    const [, hf] = JSON.parse(first.stdout) as Model[];
    const folder = join(hfCache(), 'models--org--tiny');
    expect(hf!.digest).toBe(COMMIT);
    expect(hf!.path).toBe(join(folder, 'snapshots', COMMIT));
    expect(hf!.size).toBe(HF_FILES.reduce((s, f) => s + f.content.length, 0));
    expect(hf!.files.map((f) => f.path)).toEqual(HF_FILES.map((f) => join(hf!.path, f.path)));
    await expectFilesMatch(hf!);
    expect(await readFile(join(folder, 'refs', 'main'), 'utf8')).toBe(COMMIT);
  });

  it('places the URL file under --files-dir with its sha256 and size', async () => {
    const [, , file] = JSON.parse(first.stdout) as Model[];
    expect(file!.digest).toBe(`sha256:${urlHex()}`);
    expect(file!.path).toBe(join(filesDir(), 'tiny.gguf'));
    expect(file!.size).toBe(URL_SIZE);
    expect(sha256Hex(await readFile(file!.path))).toBe(urlHex());
  });

  it('writes progress and a line per model on stderr, as plain lines when not a terminal', () => {
    // stdout held only the JSON (it parsed whole above); everything else went to stderr.
    const err = lines(first.stderr);
    expect(first.stderr).not.toContain('\u001b['); // no cursor movement or colour in a log
    const size = String.raw`\d+(\.\d)? (B|KiB|MiB|GiB)`;
    const fileLine = new RegExp(String.raw`^ {2}\S.* ${size} of (\?|${size}) \((\?|\d+)%\) at ${size}/s$`);
    const totalLine = new RegExp(
      // The total and the time left only once every size is known (a URL's comes with its answer).
      String.raw`^downloading: ${size} of (\?|${size}) \((\?|\d+)%\) at ${size}/s(, about (\d+h)?(\d+m)?(\d+s)? left)?$`,
    );
    expect(err.some((l) => fileLine.test(l) && l.includes('tiny.gguf'))).toBe(true);
    expect(err.some((l) => totalLine.test(l))).toBe(true);
    // Each model's phases, in order, as `ollama pull` tells them (issue 11), then its end.
    const models = JSON.parse(first.stdout) as Model[];
    const [ollama, hf, url] = models.map((m) => phasesOf(err, m.ref));
    const done = (m: Model) =>
      new RegExp(`^done, ${size} at ${literal(m.path)} \\(downloaded ${size} in .+\\)$`);
    expect(ollama).toEqual([
      'resolving manifest',
      `listing files (${model.layers.length + 1})`,
      expect.stringMatching(new RegExp(`^downloading ${model.layers.length + 1} files, ${size}$`)),
      'writing manifest',
      expect.stringMatching(done(models[0]!)),
    ]);
    expect(hf).toEqual([
      'resolving revision',
      `listing files (${HF_FILES.length})`,
      expect.stringMatching(new RegExp(`^downloading ${HF_FILES.length} files, ${size}$`)),
      'linking snapshot',
      expect.stringMatching(done(models[1]!)),
    ]);
    // A URL line has nothing to look up or list, and its size is learned from the download.
    expect(url).toEqual(['downloading 1 file', expect.stringMatching(done(models[2]!))]);
  });

  it('a second run downloads nothing and prints the same JSON', async () => {
    const servedBefore = files.sentBytes();
    const cdnBefore = hub.cdn.requests.length;
    const again = await runCli(pullArgs(), { env: { HOME: home.path } });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual(JSON.parse(first.stdout));
    expect(files.sentBytes()).toBe(servedBefore);
    expect(hub.cdn.requests.length).toBe(cdnBefore);
    // A re-check says "verifying" and that it was already there: no download phase, no rate.
    const err = lines(again.stderr);
    expect(again.stderr).not.toMatch(/downloading|\/s\b/);
    const models = JSON.parse(again.stdout) as Model[];
    const [ollama, hf, url] = models.map((m) => phasesOf(err, m.ref));
    const done = (m: Model) => `done, ${formatBytes(m.size)} at ${m.path} (already on disk, verified)`;
    expect(ollama).toEqual([
      'resolving manifest',
      `listing files (${model.layers.length + 1})`,
      'verifying',
      'writing manifest',
      done(models[0]!),
    ]);
    expect(hf).toEqual([
      'resolving revision',
      `listing files (${HF_FILES.length})`,
      'verifying',
      'linking snapshot',
      done(models[1]!),
    ]);
    expect(url).toEqual(['verifying', done(models[2]!)]);
  });
});

/**
 * What the log says of one model line, in order: its lines that start with `<line>: `, the
 * prefix cut off. A first run may catch a file being checked on disk (`verifying`) before it
 * downloads, depending on when the progress ticker fires; that line is left out.
 */
function phasesOf(err: readonly string[], line: string): string[] {
  return err
    .filter((l) => l.startsWith(`${line}: `))
    .map((l) => l.slice(line.length + 2))
    .filter((l, i, all) => !(l === 'verifying' && all[i + 1]?.startsWith('downloading')));
}

function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('a failing model', () => {
  it('exits 1 with one error line per failed model naming its line; the others are pulled', async () => {
    const dir = await tempDir('model-pull-cli-fail-');
    try {
      const wrong = createHash('sha256').update('not the file').digest('hex');
      const badUrl = `${files.url}/wrong.gguf sha256=${wrong}`;
      const missing = `ollama:${registry.url}/team/absent:v1`;
      files.setFault(undefined); // full speed: the failure is the point here
      const result = await runCli(
        [
          'pull',
          '--json',
          '--ollama-models',
          join(dir.path, 'ollama'),
          '--files-dir',
          join(dir.path, 'files'),
          '--retries',
          '1',
          missing,
          ollamaLine(),
          badUrl,
        ],
        { env: { HOME: dir.path } },
      );
      expect(result.code).toBe(1);
      const errors = lines(result.stderr).filter((l) => l.startsWith('error: '));
      expect(errors).toHaveLength(2);
      expect(errors[0]!.startsWith(`error: ${missing}: `)).toBe(true);
      expect(errors[1]!.startsWith(`error: ${badUrl}: `)).toBe(true);
      expect(errors[1]).toMatch(/sha256/);
      // One object per line, in order: the failed lines say why, in place.
      const models = JSON.parse(result.stdout) as (Model & { error?: string })[];
      expect(models.map((m) => m.ref)).toEqual([missing, ollamaLine(), badUrl]);
      expect(models.map((m) => m.error === undefined)).toEqual([false, true, false]);
      expect(models[0]).toEqual({
        ref: missing,
        source: 'ollama',
        error: errors[0]!.slice(`error: ${missing}: `.length),
      });
      await expectFilesMatch(models[1]!);
    } finally {
      files.setFault(() => ({ rate: 1024 * KiB }));
      await dir.remove();
    }
  });
});
