import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { tempDir } from '../helpers/http.js';
import { fileBytes, type HubFileSpec, type LocalHub, randomCommit, startHub } from '../helpers/hub.js';
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

let registry: RealRegistry;
let hub: LocalHub;
let model: GeneratedModel;
let home: Awaited<ReturnType<typeof tempDir>>;

const store = () => join(home.path, 'ollama');
const hfCache = () => join(home.path, 'hf');
const snapshot = () => join(hfCache(), 'models--org--tiny', 'snapshots', COMMIT);
const blob = (bytes: Uint8Array) => join(store(), 'blobs', `sha256-${sha256Hex(bytes)}`);
const verifyArgs = () => ['verify', '--ollama-models', store(), '--hf-cache', hfCache()];
const pullArgs = () => [
  'pull',
  '--ollama-models',
  store(),
  '--hf-cache',
  hfCache(),
  '--hf-endpoint',
  hub.url,
  `ollama:${registry.url}/team/tiny:v1`,
  'hf:org/tiny',
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
  hub = await startHub([{ id: 'org/tiny', refs: { main: COMMIT }, commits: { [COMMIT]: HF_FILES } }]);
  home = await tempDir('model-pull-cli-verify-');
  const pulled = await runCli(pullArgs(), { env: { HOME: home.path } });
  if (pulled.code !== 0) throw new Error(`setup pull failed: ${pulled.stderr}`);
});
afterAll(async () => {
  await Promise.all([registry?.close(), hub?.close()]);
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
    ]);
    const json = await runCli([...verifyArgs(), '--json'], { env: { HOME: home.path } });
    expect(JSON.parse(json.stdout)).toEqual({ damaged: [] });
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

    const result = await runCli([...verifyArgs(), '--json'], { env: { HOME: home.path } });
    expect(result.code).toBe(1);
    const { damaged } = JSON.parse(result.stdout) as {
      damaged: { model: string; path: string; problem: string }[];
    };
    const ollamaName = `${new URL(registry.url).host}/team/tiny:v1`;
    expect(damaged).toEqual([
      {
        model: ollamaName,
        path: blob(weights),
        problem: expect.stringMatching(new RegExp(`^sha256 [0-9a-f]{64}, expected ${sha256Hex(weights)}$`)),
      },
      { model: ollamaName, path: blob(template), problem: 'missing' },
      {
        model: `hf:org/tiny@${COMMIT}`,
        path: join(snapshot(), 'model.safetensors'),
        problem: expect.stringMatching(
          new RegExp(`^sha256 [0-9a-f]{64}, expected ${sha256Hex(lfs.content)}$`),
        ),
      },
      {
        model: `hf:org/tiny@${COMMIT}`,
        path: join(snapshot(), 'tokenizer.json'),
        problem: 'missing from the snapshot',
      },
    ]);

    // The text form lists the same four, under the store they belong to.
    const text = await runCli(verifyArgs(), { env: { HOME: home.path } });
    expect(text.code).toBe(1);
    const out = lines(text.stdout);
    expect(out[0]).toMatch(/: 3 files, .* checked, 2 damaged$/);
    expect(out.filter((l) => l.startsWith('  '))).toHaveLength(4);
    for (const d of damaged) expect(text.stdout).toContain(`  ${d.model}: ${d.path}: ${d.problem}\n`);
  });

  it('a pull repairs what verify found, and verify passes again', async () => {
    const repaired = await runCli(pullArgs(), { env: { HOME: home.path } });
    expect(repaired.code).toBe(0);
    const result = await runCli(verifyArgs(), { env: { HOME: home.path } });
    expect(lines(result.stdout)).toEqual([
      expect.stringMatching(/: 4 files, .* checked, 0 damaged$/),
      expect.stringMatching(/: 3 files, .* checked, 0 damaged$/),
    ]);
    expect(result.code).toBe(0);
  });
});
