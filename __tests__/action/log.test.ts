import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { createRunner, type Runner } from '../helpers/action.js';
import { type BlobServer, startBlobServer } from '../helpers/blob-server.js';
import { fileBytes, type HubFileSpec, type LocalHub, randomCommit, startHub } from '../helpers/hub.js';

// The action's log as a user reads it in the Actions UI (issue 11): each model's phases, why it
// waits, one annotation per failed model and one plain summary line, folders named by input.

const COMMIT = randomCommit();
const FILES: HubFileSpec[] = [
  { path: 'config.json', content: fileBytes('{"model_type":"tiny"}') },
  { path: 'model.safetensors', content: fileBytes(256 * 1024), lfs: true },
];
const weights = Buffer.from(randomBytes(128 * 1024));

let hub: LocalHub;
let files: BlobServer;
let runner: Runner;

beforeAll(async () => {
  hub = await startHub([{ id: 'org/tiny', refs: { main: COMMIT }, commits: { [COMMIT]: FILES } }]);
  files = await startBlobServer(weights);
});
afterAll(async () => {
  await Promise.all([hub?.close(), files?.close()]);
});
beforeEach(async () => {
  runner = await createRunner();
});
afterEach(async () => {
  await runner.dispose();
});

const urlLine = () => `${files.url}/w/tiny.gguf sha256=${sha256Hex(weights)}`;
/** The plain log lines (no workflow commands) that start with `<line>: `, that prefix cut off. */
const said = (stdout: string, line: string) =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith(`${line}: `))
    .map((l) => l.slice(line.length + 2));

test('each model tells its phases, then done; a re-run says verifying, not downloading', async () => {
  const inputs = { models: `hf:org/tiny\n${urlLine()}`, 'hf-endpoint': hub.url, cache: 'false' };
  const run = await runner.run(inputs);
  expect(run.code).toBe(0);
  expect(said(run.stdout, 'hf:org/tiny')).toEqual([
    'resolving revision',
    'listing files (2)',
    expect.stringMatching(/^downloading 2 files, 256\.0 KiB$/),
    'linking snapshot',
    expect.stringMatching(
      /^done, 256\.0 KiB at .*\/snapshots\/[0-9a-f]{40} \(downloaded 256\.0 KiB in .+\)$/,
    ),
  ]);
  expect(said(run.stdout, urlLine())).toEqual([
    'downloading 1 file',
    expect.stringMatching(/^done, 128\.0 KiB at .*tiny\.gguf \(downloaded 128\.0 KiB in .+\)$/),
  ]);
  const again = await runner.run(inputs);
  expect(said(again.stdout, 'hf:org/tiny')).toEqual([
    'resolving revision',
    'listing files (2)',
    'verifying',
    'linking snapshot',
    expect.stringMatching(/^done, 256\.0 KiB at .* \(already on disk, verified\)$/),
  ]);
  expect(again.stdout).not.toMatch(/downloading/);
});

test('one annotation per failed model, one plain summary line, and the step fails', async () => {
  const bad = `${files.url}/w/other.gguf sha256=${'0'.repeat(64)}`;
  const run = await runner.run({ models: `hf:org/absent\n${bad}\n${urlLine()}`, 'hf-endpoint': hub.url });
  expect(run.code).toBe(1);
  expect(run.errors()).toEqual([
    expect.stringMatching(/^hf:org\/absent: Hugging Face model org\/absent not found/),
    expect.stringMatching(
      new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: other\\.gguf: sha256 mismatch`),
    ),
  ]);
  const log = run.stdout.split('\n');
  expect(log).toContain('2 of 3 models could not be pulled and verified');
  // The early failure is in the log before the other models' downloads start.
  const failure = log.findIndex((l) => l.startsWith('::error') && l.includes('hf:org/absent'));
  expect(failure).toBeLessThan(log.indexOf(`${urlLine()}: downloading 1 file`));
});

test('why it waits: every retry is a log line with host, cause, attempt and wait', async () => {
  const line = `http://127.0.0.1:1/x.gguf sha256=${'a'.repeat(64)}`;
  const run = await runner.run({ models: line, cache: 'false' });
  expect(run.code).toBe(1);
  expect(run.stdout.split('\n').filter((l) => l.includes(' retry '))).toEqual([
    expect.stringMatching(/^127\.0\.0\.1:1: connection refused, retry 1\/2 in \d+\.\d s \(x\.gguf\)$/),
    expect.stringMatching(/^127\.0\.0\.1:1: connection refused, retry 2\/2 in \d+\.\d s \(x\.gguf\)$/),
  ]);
  expect(run.errors()).toEqual([
    expect.stringMatching(/^http:\/\/127\.0\.0\.1:1\/x\.gguf sha256=a+: x\.gguf: /),
  ]);
});

test('a folder the action cannot write names its input, and only its models fail', async () => {
  // A file where the store's parent folder should be: no one can create the store there.
  const blocker = join(runner.home, 'not-a-folder');
  await writeFile(blocker, 'x');
  const store = join(blocker, 'models');
  const run = await runner.run({
    models: `ollama:${files.url}/team/x:1\n${urlLine()}`,
    'ollama-models': store,
    cache: 'false',
  });
  expect(run.code).toBe(1);
  expect(run.errors()).toEqual([
    `ollama:${files.url}/team/x:1: cannot write the Ollama store ${store} (ollama-models / --ollama-models): a file is in the way where a folder must be`,
  ]);
  const models = JSON.parse(run.outputs.models!) as { ref: string; error?: string }[];
  expect(models.map((m) => m.error === undefined)).toEqual([false, true]);
  // No request for the refused line (a registry request would ask for /v2/…).
  expect(files.requests.filter((r) => r.url.startsWith('/v2/'))).toEqual([]);
});
