import { join } from 'node:path';
import { createNoCache } from '../../src/cache/client.js';
import { mirror } from '../../src/mirror/run.js';
import { MemoryLogger } from '../../src/report/logger.js';
import { summaryMarkdown } from '../../src/report/summary.js';
import { buildSettings } from '../../src/settings/settings.js';
import { DEFAULT_SOURCES } from '../../src/sources/index.js';
import { cliInProcess } from '../helpers/cli-in-process.js';
import { startServer, tempDir } from '../helpers/http.js';

// A line whose pull fails is not pushed; the summary and the logs say so once. The origin
// answers 404 to everything, so the pull fails before any push could start; the target registry
// (port 9 on loopback: nothing listens) would fail differently had it been asked.

let origin: Awaited<ReturnType<typeof startServer>>;
let home: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  origin = await startServer(
    (_req, res) => void res.writeHead(404).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'),
  );
  home = await tempDir('model-pull-skipped-push-');
});
afterAll(async () => {
  await origin.close();
  await home.remove();
});

const line = () => `ollama:${origin.url}/team/absent:v1`;

test('the summary says "not pushed: the pull failed" once', async () => {
  const settings = buildSettings(
    {
      models: line(),
      'mirror-to': '127.0.0.1:9/mirror',
      'ollama-models': join(home.path, 'summary'),
      cache: 'false',
      retries: '0',
    },
    { env: {}, home: home.path, nameOf: (n) => n },
  );
  const report = await mirror(settings, {
    sources: DEFAULT_SOURCES,
    log: new MemoryLogger(),
    cache: createNoCache(),
  });
  expect(report.ok).toBe(false);
  expect(report.pushes).toEqual([{ line: line(), names: [], error: new Error('the pull failed') }]);
  const summary = summaryMarkdown(report, report.pushes);
  expect(summary).toContain(`\n**Pushed (mirror-to)**\n\n- \`${line()}\`: not pushed: \`the pull failed\``);
  expect(summary.match(/not pushed/g)).toHaveLength(1);
});

test('the CLI says "not pushed: the pull failed" once', async () => {
  const result = await cliInProcess(
    [
      'mirror',
      '--to',
      '127.0.0.1:9/mirror',
      '--ollama-models',
      join(home.path, 'cli'),
      '--retries',
      '0',
      line(),
    ],
    { HOME: home.path },
  );
  expect(result.code).toBe(1);
  expect(result.stderr).toContain(`\nerror: ${line()}: not pushed: the pull failed\n`);
  expect(result.stderr.match(/not pushed/g)).toHaveLength(1);
});
