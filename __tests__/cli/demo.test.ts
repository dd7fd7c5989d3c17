import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/http.js';
import { lines, requireBuiltCli, runCli } from './run.js';
import { cliInTerminal, type Terminal } from './tty.js';

// The demo needs no network beyond loopback: its own registry and hub serve a generated model.
// TMPDIR points into a folder of the test, so what the demo leaves behind can be checked.

let tmp: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  requireBuiltCli();
  tmp = await tempDir('model-pull-cli-demo-');
});
afterAll(async () => {
  await tmp.remove();
});

it('pulls both models, then re-checks them downloading 0 B; prints real next commands and no path it deletes', async () => {
  const env = { HOME: tmp.path, TMPDIR: tmp.path };
  const result = await runCli(['demo'], { env, timeoutMs: 30_000 });
  expect(result.code).toBe(0);
  const out = lines(result.stdout);
  expect(out).toContain('first pull (downloads everything):');
  expect(out).toContainEqual(expect.stringMatching(/^ {2}downloaded 16\.0 MiB in \d/));
  expect(out).toContain('second pull (verifies what is on disk, downloads nothing):');
  expect(out).toContain('  downloaded 0 B: 16.0 MiB verified on disk');
  expect(out.slice(out.indexOf('next:'))).toEqual([
    'next:',
    '  npx model-pull pull ollama:qwen2.5:0.5b   # a real model (needs the internet)',
    "  npx model-pull demo --keep                # the same, keeping the demo's files to try them",
  ]);
  // The phases are on stderr; nothing names the folder the demo removes when it ends.
  expect(result.stderr).toMatch(/^hf:demo\/tiny: linking snapshot$/m);
  expect(`${result.stdout}${result.stderr}`).not.toContain(tmp.path);
  expect(await readdir(tmp.path)).toEqual([]);
});

it('run through `npm run demo`, it suggests `npm run demo -- --keep`', async () => {
  const env = { HOME: tmp.path, TMPDIR: tmp.path, npm_lifecycle_event: 'demo' };
  const result = await runCli(['demo'], { env, timeoutMs: 30_000 });
  expect(result.code).toBe(0);
  expect(result.stdout).toMatch(/^ {2}npm run demo -- --keep +# /m);
});

it('--keep keeps a store and cache that verify finds intact', async () => {
  const env = { HOME: tmp.path, TMPDIR: tmp.path };
  const result = await runCli(['demo', '--keep'], { env, timeoutMs: 30_000 });
  expect(result.code).toBe(0);
  const root = /^kept in (.+):$/m.exec(result.stdout)?.[1];
  expect(root?.startsWith(join(tmp.path, 'model-pull-demo-'))).toBe(true);
  const verify = await runCli(
    ['verify', '--ollama-models', join(root!, 'ollama'), '--hf-cache', join(root!, 'hf')],
    { env },
  );
  expect(verify.code).toBe(0);
  expect(lines(verify.stdout)).toEqual([
    expect.stringMatching(/: 4 files, 8\.0 MiB checked, 0 damaged$/),
    expect.stringMatching(/: 2 files, 8\.0 MiB checked, 0 damaged$/),
    `OCI layout ${join(tmp.path, '.cache', 'model-pull', 'oci')}: not there, nothing to check`,
    `files ${join(tmp.path, '.cache', 'model-pull', 'files')}: not there, nothing to check`,
  ]);
});

it('on a terminal it shows bars, stops on Ctrl-C keeping its bytes, and the rerun resumes', async () => {
  const folder = await tempDir('model-pull-cli-demo-tty-');
  const env = { HOME: folder.path, TMPDIR: folder.path };
  const terminals: Terminal[] = [];
  try {
    const first = await cliInTerminal(['demo'], { env });
    terminals.push(first);
    // Slowed down on a terminal: the bars are there to be seen, and stopped.
    await first.waitFor(/^ total +\S+ +([1-9]\d)% /m);
    await first.keys('C-c');
    const stopped = await first.waitFor(/\[exit \d+\]/);
    expect(stopped).toContain('[exit 1]');
    expect(stopped).toMatch(/^stopping: progress is kept for the next run/m);
    expect(stopped).toMatch(/^stopped: run npx model-pull demo again and it resumes from what is on disk$/m);

    const second = await cliInTerminal(['demo'], { env });
    terminals.push(second);
    const done = await second.waitFor(/\[exit \d+\]/, 30_000);
    expect(done).toContain('[exit 0]');
    // The first round of the rerun fetched only what the interrupted one had not.
    const fetched = /^ {2}downloaded ([\d.]+) MiB in /m.exec(done);
    expect(fetched).not.toBeNull();
    expect(Number(fetched![1])).toBeLessThan(16);
    expect(done).toMatch(/^ ✓ hf:demo\/tiny model\.safetensors 8\.0 MiB /m);
    expect(await readdir(folder.path)).toEqual([]); // done: the demo's folder is gone
  } finally {
    for (const terminal of terminals) await terminal.close();
    await folder.remove();
  }
});
