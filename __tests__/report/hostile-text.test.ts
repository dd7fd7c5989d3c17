import { printable } from '../../src/report/text.js';
import { lines, requireBuiltCli, runCli } from '../cli/run.js';
import { createRunner, type Runner } from '../helpers/action.js';
import { startServer, type TestServer } from '../helpers/http.js';

// Issue 10, item 14: what a server says (here, an error body) reaches the terminal, the CI log
// and the job summary as text, never as terminal control, workflow commands or live markup.

const HEX = 'c'.repeat(64);
const BODY =
  '\u001b]0;owned\u0007\u001b[2J\u001b[1A<img src=x onerror=alert(1)> [click](https://evil.example) `tick` | pipe \u202eevil\r\n::add-mask::x';
/** What statusError keeps of the body (whitespace runs become one space), then made printable. */
const SHOWN = printable(BODY.replace(/\s+/g, ' ').trim());

let server: TestServer;
const line = () => `${server.url}/m/tiny.gguf sha256=${HEX}`;

beforeAll(async () => {
  requireBuiltCli();
  server = await startServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'text/html' });
    res.end(BODY);
  });
});
afterAll(async () => {
  await server.close();
});

test('printable shows controls instead of sending them', () => {
  expect(printable('a\u001b[31mb\u0007c\u009bd\u202ee\tf\ng')).toBe('a\\x1b[31mb\\x07c\\x9bd\\u202ee f g');
});

test('the CLI prints the body with its controls shown, not sent', async () => {
  const home = await import('../helpers/http.js').then((h) => h.tempDir('model-pull-hostile-'));
  try {
    const result = await runCli(['pull', '--files-dir', home.path, line()], { env: { HOME: home.path } });
    expect(result.code).toBe(1);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence
    expect(result.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(lines(result.stderr).filter((l) => l.includes('HTTP 404'))).toEqual([
      `error: ${line()}: tiny.gguf: HTTP 404 from ${server.url}/m/tiny.gguf: ${SHOWN}`,
    ]);
  } finally {
    await home.remove();
  }
});

describe('the action', () => {
  let runner: Runner;
  beforeEach(async () => {
    runner = await createRunner();
  });
  afterEach(async () => {
    await runner.dispose();
  });

  test('log, annotation and job summary carry the body as inert text', async () => {
    const run = await runner.run({ models: line(), cache: 'false' });
    expect(run.code).toBe(1);
    // No control character in the log, so no line of the body can start a workflow command.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence
    expect(run.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(run.masks).toEqual([]);
    expect(run.errors()[0]).toBe(`${line()}: tiny.gguf: HTTP 404 from ${server.url}/m/tiny.gguf: ${SHOWN}`);
    // In the summary the body sits in a code span: no HTML, no link, and it cannot close the span
    // or the table cell early.
    const failure = run.summary.split('\n').find((l) => l.startsWith('- `'));
    // A list item, not a table cell: its `|` stays as it is (escaped, the backslash would show).
    const inert = SHOWN.replace(/`/g, "'");
    expect(failure).toBe(`- \`${line()}\`: \`tiny.gguf: HTTP 404 from ${server.url}/m/tiny.gguf: ${inert}\``);
    expect(run.summary.replace(/`[^`]*`/g, '')).not.toMatch(/<img|\]\(|evil/);
  });
});
