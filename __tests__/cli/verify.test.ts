import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { sha256Hex } from '../../src/digest.js';
import { type BlobServer, startBlobServer } from '../helpers/blob-server.js';
import { buildTar } from '../helpers/cache-archive.js';
import { tempDir } from '../helpers/http.js';
import { fileBytes, type HubFileSpec, type LocalHub, randomCommit, startHub } from '../helpers/hub.js';
import { FILEPATH, gguf, modelPack, pushArtifact } from '../helpers/oci-artifacts.js';
import {
  type GeneratedModel,
  generateModel,
  pushModel,
  type RealRegistry,
  startRegistry,
} from '../helpers/registry.js';
import { lines, requireBuiltCli, runCli } from './run.js';

const COMMIT = randomCommit();
const HF_FILES: HubFileSpec[] = [
  { path: 'config.json', content: fileBytes('{"model_type":"tiny"}') },
  { path: 'tokenizer.json', content: fileBytes('{"vocab":["a","b"]}') },
  { path: 'model.safetensors', content: fileBytes(256 * 1024), lfs: true },
];

const URL_FILE = Buffer.from(fileBytes(100 * 1024));

// An oci: model (issue 15): a raw GGUF layer (hard-linked into its folder) and a tar+gzip doc layer.
const OCI_README = Buffer.from('# tiny\n');
const OCI_PACK = modelPack([
  {
    mediaType: 'application/vnd.cncf.model.weight.v1.raw',
    bytes: gguf(128 * 1024),
    annotations: { [FILEPATH]: 'tiny.gguf' },
  },
  {
    mediaType: 'application/vnd.cncf.model.doc.v1.tar+gzip',
    bytes: gzipSync(buildTar([{ name: 'README.md', data: OCI_README }])),
  },
]);

let registry: RealRegistry;
let hub: LocalHub;
let files: BlobServer;
let model: GeneratedModel;
let home: Awaited<ReturnType<typeof tempDir>>;

const store = () => join(home.path, 'ollama');
const hfCache = () => join(home.path, 'hf');
const filesDir = () => join(home.path, 'files');
const ociDir = () => join(home.path, 'oci');
const ociName = () => `${new URL(registry.url).host}/team/pack:v1`;
const ociFolder = () => join(ociDir(), 'models', new URL(registry.url).host, 'team', 'pack', OCI_PACK.hex);
const urlLine = () => `${files.url}/weights/tiny.gguf sha256=${sha256Hex(URL_FILE)}`;
const snapshot = () => join(hfCache(), 'models--org--tiny', 'snapshots', COMMIT);
const trees = () => join(hfCache(), 'models--org--tiny', 'trees', `${COMMIT}.json`);
const blob = (bytes: Uint8Array) => join(store(), 'blobs', `sha256-${sha256Hex(bytes)}`);
const verifyArgs = () => [
  'verify',
  '--ollama-models',
  store(),
  '--hf-cache',
  hfCache(),
  '--files-dir',
  filesDir(),
  '--oci-dir',
  ociDir(),
];
const pullArgs = () => [
  'pull',
  '--ollama-models',
  store(),
  '--hf-cache',
  hfCache(),
  '--files-dir',
  filesDir(),
  '--oci-dir',
  ociDir(),
  '--hf-endpoint',
  hub.url,
  `ollama:${registry.url}/team/tiny:v1`,
  'hf:org/tiny',
  urlLine(),
  `oci:${registry.url}/team/pack:v1`,
];

async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset] = bytes[offset]! ^ 0xff;
  await writeFile(path, bytes);
}

beforeAll(async () => {
  requireBuiltCli();
  registry = await startRegistry();
  model = generateModel(300 * 1024);
  await pushModel(registry.url, 'team/tiny', 'v1', model);
  await pushArtifact(registry.url, 'team/pack', 'v1', OCI_PACK);
  hub = await startHub([{ id: 'org/tiny', refs: { main: COMMIT }, commits: { [COMMIT]: HF_FILES } }]);
  files = await startBlobServer(URL_FILE);
  home = await tempDir('model-pull-cli-verify-');
  const pulled = await runCli(pullArgs(), { env: { HOME: home.path } });
  if (pulled.code !== 0) throw new Error(`setup pull failed: ${pulled.stderr}`);
});
afterAll(async () => {
  await Promise.all([registry?.close(), hub?.close(), files?.close()]);
  await home?.remove();
});

describe('model-pull verify', () => {
  it('a good store and cache: exit 0, every file counted, nothing damaged', async () => {
    const result = await runCli(verifyArgs(), { env: { HOME: home.path } });
    expect(result.code).toBe(0);
    const ollamaBytes = [model.config, ...model.layers].reduce((s, b) => s + b.bytes.length, 0);
    expect(lines(result.stdout)).toEqual([
      expect.stringMatching(new RegExp(`^Ollama store ${store()}: 4 files, .* checked, 0 damaged$`)),
      expect.stringMatching(new RegExp(`^Hugging Face cache ${hfCache()}: 3 files, .* checked, 0 damaged$`)),
      // manifest, config and 2 layers in the layout; the GGUF and README.md in the model folder
      expect.stringMatching(new RegExp(`^OCI layout ${ociDir()}: 6 files, .* checked, 0 damaged$`)),
      `files ${filesDir()}: 1 files, 100.0 KiB checked, 0 damaged`,
    ]);
    const json = await runCli([...verifyArgs(), '--json'], { env: { HOME: home.path } });
    expect(JSON.parse(json.stdout)).toEqual({ damaged: [], missing: [] });
    expect(ollamaBytes).toBeGreaterThan(300 * 1024); // the store really held the weights
  });

  it('lists exactly the damaged files: a flipped byte, a deleted blob, a broken snapshot', async () => {
    const weights = model.layers[0]!.bytes;
    const template = model.layers[1]!.bytes;
    const lfs = HF_FILES[2]!;
    await flipByte(blob(weights), 1000);
    await rm(blob(template));
    await flipByte(join(snapshot(), 'model.safetensors'), 7); // writes through the link into the blob
    await rm(join(snapshot(), 'tokenizer.json'));
    await flipByte(join(filesDir(), 'tiny.gguf'), 5);
    await rm(trees());
    await flipByte(join(ociFolder(), 'README.md'), 2);
    await rm(join(ociDir(), 'blobs', 'sha256', sha256Hex(OCI_PACK.config.bytes)));

    const result = await runCli([...verifyArgs(), '--json'], { env: { HOME: home.path } });
    expect(result.code).toBe(1);
    const { damaged } = JSON.parse(result.stdout) as {
      damaged: { model: string; line: string; path: string; problem: string }[];
    };
    const ollamaName = `${new URL(registry.url).host}/team/tiny:v1`;
    const hfLine = `hf:org/tiny@${COMMIT}`;
    expect(damaged).toEqual([
      {
        model: ollamaName,
        line: `ollama:http://${ollamaName}`,
        path: blob(weights),
        problem: expect.stringMatching(new RegExp(`^sha256 [0-9a-f]{64}, expected ${sha256Hex(weights)}$`)),
      },
      { model: ollamaName, line: `ollama:http://${ollamaName}`, path: blob(template), problem: 'missing' },
      {
        model: hfLine,
        line: hfLine,
        path: join(snapshot(), 'model.safetensors'),
        problem: expect.stringMatching(
          new RegExp(`^sha256 [0-9a-f]{64}, expected ${sha256Hex(lfs.content)}$`),
        ),
      },
      {
        model: hfLine,
        line: hfLine,
        path: join(snapshot(), 'tokenizer.json'),
        problem: 'missing from the snapshot',
      },
      {
        model: hfLine,
        line: hfLine,
        path: trees(),
        problem: 'missing (huggingface_hub cannot load this commit offline)',
      },
      {
        model: `oci:${ociName()}`,
        line: `oci:${ociName()}`,
        path: join(ociDir(), 'blobs', 'sha256', sha256Hex(OCI_PACK.config.bytes)),
        problem: 'missing',
      },
      {
        model: `oci:${ociName()}`,
        line: `oci:${ociName()}`,
        path: join(ociFolder(), 'README.md'),
        problem: `sha256 ${sha256Hex(await readFile(join(ociFolder(), 'README.md')))}, expected ${sha256Hex(OCI_README)}`,
      },
      {
        model: urlLine(),
        line: urlLine(),
        path: join(filesDir(), 'tiny.gguf'),
        problem: expect.stringMatching(new RegExp(`^sha256 [0-9a-f]{64}, expected ${sha256Hex(URL_FILE)}$`)),
      },
    ]);

    // The text form lists the same eight by line, under the folder they belong to, then one
    // command per damaged model that repairs it.
    const text = await runCli(verifyArgs(), { env: { HOME: home.path } });
    expect(text.code).toBe(1);
    const out = lines(text.stdout);
    expect(out[0]).toMatch(/: 3 files, .* checked, 2 damaged$/);
    expect(out.filter((l) => l.startsWith('  ') && !l.startsWith('  model-pull '))).toHaveLength(8);
    for (const d of damaged) expect(text.stdout).toContain(`  ${d.line}: ${d.path}: ${d.problem}\n`);
    expect(out.slice(out.indexOf('to repair them, run:'))).toEqual([
      'to repair them, run:',
      `  model-pull pull --ollama-models ${store()} ollama:http://${ollamaName}`,
      `  model-pull pull --hf-cache ${hfCache()} ${hfLine}`,
      `  model-pull pull --oci-dir ${ociDir()} oci:${ociName()}`,
      `  model-pull pull --files-dir ${filesDir()} '${urlLine()}'`,
    ]);
    repairCommands = out.filter((l) => l.startsWith('  model-pull pull '));
  });

  it('the commands verify printed repair the damage, and verify passes again', async () => {
    for (const command of repairCommands) {
      const args = command
        .trim()
        .split(/ (?=(?:[^']*'[^']*')*[^']*$)/)
        .slice(1)
        .map((w) => w.replace(/^'|'$/g, ''));
      // The hub's endpoint is the one setting the line cannot carry.
      const repaired = await runCli([...args, '--hf-endpoint', hub.url], { env: { HOME: home.path } });
      expect(repaired.code).toBe(0);
    }
    const result = await runCli(verifyArgs(), { env: { HOME: home.path } });
    expect(lines(result.stdout)).toEqual([
      expect.stringMatching(/: 4 files, .* checked, 0 damaged$/),
      expect.stringMatching(/: 3 files, .* checked, 0 damaged$/),
      expect.stringMatching(/^OCI layout .*: 6 files, .* checked, 0 damaged$/),
      expect.stringMatching(/^files .*: 1 files, .* checked, 0 damaged$/),
    ]);
    expect(result.code).toBe(0);
    expect(await readFile(join(ociFolder(), 'README.md'))).toEqual(OCI_README);
  });

  it('a folder named on the command line that does not exist fails, naming it', async () => {
    const absent = join(home.path, 'no-such-store');
    const result = await runCli(['verify', '--ollama-models', absent, '--hf-cache', hfCache()], {
      env: { HOME: home.path },
    });
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([`model-pull verify: --ollama-models ${absent}: no such folder`]);
    expect(result.stdout).toMatch(/^Hugging Face cache .*: 3 files, .* checked, 0 damaged\n/);
  });

  it('nothing to check at all (no folder exists) fails instead of "0 files checked"', async () => {
    const empty = await tempDir('model-pull-cli-verify-empty-');
    try {
      const result = await runCli(['verify'], { env: { HOME: empty.path } });
      expect(result.code).toBe(1);
      expect(lines(result.stderr)).toEqual([
        'model-pull verify: none of the folders exists, nothing was checked',
      ]);
      expect(lines(result.stdout)).toEqual([
        `Ollama store ${join(empty.path, '.ollama', 'models')}: not there, nothing to check`,
        `Hugging Face cache ${join(empty.path, '.cache', 'huggingface', 'hub')}: not there, nothing to check`,
        `OCI layout ${join(empty.path, '.cache', 'model-pull', 'oci')}: not there, nothing to check`,
        `files ${join(empty.path, '.cache', 'model-pull', 'files')}: not there, nothing to check`,
      ]);
    } finally {
      await empty.remove();
    }
  });
});

let repairCommands: string[] = [];
