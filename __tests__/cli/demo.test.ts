import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/http.js';
import { lines, requireBuiltCli, runCli } from './run.js';

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

/** The stdout lines of one round, from its heading to the next blank line. */
function round(stdout: string, heading: string): string[] {
  const all = lines(stdout);
  const start = all.findIndex((l) => l.startsWith(heading));
  expect(start).toBeGreaterThanOrEqual(0);
  const end = all.indexOf('', start);
  return all.slice(start + 1, end < 0 ? undefined : end);
}

it('pulls both models in seconds; the second round downloads 0 B; nothing is left behind', async () => {
  const env = { HOME: tmp.path, TMPDIR: tmp.path };
  const result = await runCli(['demo'], { env, timeoutMs: 15_000 });
  expect(result.code).toBe(0);
  expect(result.ms).toBeLessThan(10_000);
  for (const heading of ['first pull', 'second pull']) {
    const models = round(result.stdout, heading);
    expect(models.filter((l) => /^ {2}\S/.test(l))).toEqual([
      expect.stringMatching(/^ {2}127\.0\.0\.1:\d+\/demo\/tiny:latest$/),
      '  demo/tiny',
    ]);
    const downloaded = models.map((l) => /downloaded (.+) in /.exec(l)?.[1]).filter(Boolean);
    expect(downloaded).toEqual(heading === 'first pull' ? ['8.0 MiB', '8.0 MiB'] : ['0 B', '0 B']);
  }
  expect(await readdir(tmp.path)).toEqual([]);
});

it('--keep keeps a store and cache that verify finds intact', async () => {
  const env = { HOME: tmp.path, TMPDIR: tmp.path };
  const result = await runCli(['demo', '--keep'], { env, timeoutMs: 15_000 });
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
    `files ${join(tmp.path, '.cache', 'model-pull', 'files')}: not there, nothing to check`,
  ]);
});
