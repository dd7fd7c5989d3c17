import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { type ActionRun, createRunner, listFiles, type Runner } from '../helpers/action.js';
import { type BlobServer, startBlobServer } from '../helpers/blob-server.js';
import { type CacheService, startCacheService } from '../helpers/cache-service.js';
import { fileBytes, type HubFileSpec, type LocalHub, randomCommit, startHub } from '../helpers/hub.js';

/**
 * Failing steps: a bad line stops the run before any request and before anything is written;
 * a model that cannot be pulled fails the step with a message the user can act on, while the
 * others still land; the failed model leaves no manifest, ref, snapshot or file behind.
 */

const TOKEN = `hf_${randomBytes(12).toString('hex')}`;
const COMMIT = randomCommit();
const FILES: HubFileSpec[] = [
  { path: 'config.json', content: fileBytes('{"model_type":"tiny"}') },
  { path: 'model.safetensors', content: fileBytes(768 * 1024), lfs: true },
];
const weights = Buffer.from(randomBytes(640 * 1024));

let hub: LocalHub;
let files: BlobServer;
let service: CacheService;
let runner: Runner;

beforeAll(async () => {
  const repo = { refs: { main: COMMIT }, commits: { [COMMIT]: FILES } };
  hub = await startHub([
    { id: 'org/public', ...repo },
    { id: 'org/private', private: true, acceptedTokens: [TOKEN], ...repo },
    { id: 'org/gated', gated: true, acceptedTokens: ['hf_someone_else'], ...repo },
  ]);
  files = await startBlobServer(weights);
  service = await startCacheService();
});
afterAll(async () => {
  await hub?.close();
  await files?.close();
  await service?.close();
});
beforeEach(async () => {
  runner = await createRunner();
  hub.faults.corrupt.clear();
});
afterEach(async () => {
  await runner.dispose();
});

const urlLine = () => `${files.url}/w/tiny.gguf sha256=${sha256Hex(weights)}`;
const hfRoot = () => join(runner.home, '.cache', 'huggingface', 'hub');
const filesDir = () => join(runner.home, '.cache', 'model-pull', 'files');
/** Requests any model server saw: registry-like servers and the cache service alike. */
const requests = () => hub.requestCount() + files.requests.length + service.calls.length;

function pull(lines: readonly string[], inputs: Record<string, string> = {}): Promise<ActionRun> {
  return runner.run({ models: lines.join('\n'), 'hf-endpoint': hub.url, ...inputs }, service.env);
}

describe('the action fails a bad line before any request', () => {
  const cases: [string, string][] = [
    ['foo:bar', 'expected ollama:NAME, hf:OWNER/REPO, oci:[HOST/]REPO[:TAG] or an https:// URL with sha256='],
    ['https://example.test/m/tiny.gguf', 'a URL needs sha256=<64 hex> so the file can be verified'],
    ['https://example.test/m/tiny.gguf sha256=abc', 'sha256= must be 64 hexadecimal characters'],
    ['ollama:llama3.2 include=*.gguf', 'unknown option include='],
    ['ollama:llama3.2:', 'the tag after ":" is empty'],
    ['hf:org/public include=', 'include= holds an empty pattern (write include=GLOB[,GLOB…])'],
  ];
  test.each(cases)('%s', async (line, reason) => {
    const before = requests();
    // The good lines come first: a parser that fetched as it went would have made requests.
    const run = await pull([urlLine(), 'hf:org/public', `  ${line}  `]);
    expect(run.code).toBe(1);
    expect(run.errors()).toEqual([`invalid model line "${line}": ${reason}`]);
    expect(requests()).toBe(before);
    expect(await readdir(runner.home)).toEqual([]);
    expect(run.outputs).toEqual({});
  });

  test('a bad input value names the input', async () => {
    const run = await pull([urlLine()], { concurrency: '0' });
    expect(run.code).toBe(1);
    expect(run.errors()).toEqual(['input "concurrency" must be a whole number from 1 to 64, got "0"']);
    expect(await readdir(runner.home)).toEqual([]);
  });
});

describe('a model that cannot be pulled fails the step, the others still land', () => {
  const repoFolder = (repo: string) => join(hfRoot(), `models--org--${repo}`);

  async function expectUrlModelPulled(run: ActionRun): Promise<void> {
    expect(sha256Hex(await readFile(join(filesDir(), 'tiny.gguf')))).toBe(sha256Hex(weights));
    const models = JSON.parse(run.outputs.models!) as { ref: string; error?: string }[];
    expect(models.filter((m) => m.error === undefined).map((m) => m.ref)).toEqual([urlLine()]);
    // Every line has its object, in input order; a failed one carries its error.
    expect(models.filter((m) => m.error !== undefined)).toHaveLength(models.length - 1);
  }

  const notFound = 'check the name, or provide a token with access (hf-token or HF_TOKEN)';
  const gated = (how: string) =>
    `Hugging Face model org/gated is gated: accept the terms on the model page (${hub.url}/org/gated) ${how}`;
  const repoCases: [string, string, string | undefined, () => string][] = [
    [
      'a private repo without a token',
      'private',
      undefined,
      () => `Hugging Face model org/private not found, or private: ${notFound}`,
    ],
    [
      'a private repo with a token that has no access',
      'private',
      'hf_no_access',
      () =>
        'Hugging Face model org/private not found, or private: check the name, or that the token given has access',
    ],
    [
      'a gated repo without a token',
      'gated',
      undefined,
      () => gated('and provide a token (hf-token or HF_TOKEN)'),
    ],
    [
      'a gated repo whose terms the token did not accept',
      'gated',
      TOKEN,
      () =>
        gated('and check that the token (hf-token or HF_TOKEN) belongs to the account that accepted them'),
    ],
  ];
  test.each(repoCases)('%s', async (_name, repo, token, message) => {
    const run = await pull([urlLine(), `hf:org/${repo}`], token ? { 'hf-token': token } : {});
    expect(run.code).toBe(1);
    // One annotation for the one failure; the count is a plain line of the log.
    expect(run.errors()).toEqual([`hf:org/${repo}: ${message()}`]);
    expect(run.stdout).toContain('\n1 of 2 models could not be pulled and verified\n');
    await expectUrlModelPulled(run);
    expect(existsSync(repoFolder(repo))).toBe(false);
    expect(run.summary).toContain(`| \`hf:org/${repo}\` | – | – | failed |`);
    if (token) expect(run.masks).toContain(token);
  });

  test('a file that never verifies leaves no snapshot, ref or record, only verified blobs', async () => {
    hub.faults.corrupt.add(sha256Hex(FILES[1]!.content));
    const mark = service.calls.length;
    const run = await pull([urlLine(), 'hf:org/public']);
    expect(run.code).toBe(1);
    expect(run.errors()).toHaveLength(1);
    // The line is named once, then the file.
    expect(run.errors()[0]).toMatch(
      new RegExp(
        `^hf:org/public: model\\.safetensors: sha256 mismatch from 127\\.0\\.0\\.1:\\d+: expected ${sha256Hex(FILES[1]!.content)}, got [0-9a-f]{64}$`,
      ),
    );
    await expectUrlModelPulled(run);
    // The small file verified and may stay as a blob; nothing a reader follows was written.
    expect(await listFiles(repoFolder('public'))).toEqual([`blobs/${gitSha1(FILES[0]!)}`]);
    expect(existsSync(join(repoFolder('public'), 'snapshots'))).toBe(false);
    expect(existsSync(join(repoFolder('public'), 'refs'))).toBe(false);
    // Nothing was saved for the failed model: its entry would hold a broken snapshot.
    const keys = service.calls
      .slice(mark)
      .filter((c) => c.call === 'CreateCacheEntry')
      .map((c) => String(c.body?.['key']));
    expect(keys).toEqual([`model-pull-v1-url-${sha256Hex(weights)}`]);
  });

  test('a URL whose bytes do not match its sha256 leaves no file', async () => {
    const line = `${files.url}/w/other.gguf sha256=${'0'.repeat(64)}`;
    const run = await pull([line]);
    expect(run.code).toBe(1);
    expect(run.errors()).toEqual([
      `${line}: other.gguf: sha256 mismatch from ${new URL(files.url).host}: expected ${'0'.repeat(64)}, got ${sha256Hex(weights)}`,
    ]);
    expect(await listFiles(filesDir())).toEqual([]);
    expect(JSON.parse(run.outputs.models!)).toEqual([
      { ref: line, source: 'url', error: run.errors()[0]!.slice(`${line}: `.length) },
    ]);
  });
});

/** git's blob id, computed here independently of src/digest.ts. */
function gitSha1(file: HubFileSpec): string {
  const header = `blob ${file.content.length}\0`;
  return createHash('sha1').update(header).update(file.content).digest('hex');
}
