import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { COMMAND_FLAGS } from '../../src/cli/args.js';
import { tempDir } from '../helpers/http.js';
import { lines, requireBuiltCli, runCli, startCli } from './run.js';

// Usage errors are found before any request, so none of these needs a server: exit 2, one line
// on stderr that says what is wrong, nothing on stdout.

let home: Awaited<ReturnType<typeof tempDir>>;
const env = () => ({ HOME: home.path });

beforeAll(async () => {
  requireBuiltCli();
  home = await tempDir('model-pull-cli-home-');
  await writeFile(join(home.path, 'bad-lines.txt'), '# comment\n\nhf:owner/repo foo=bar\n');
});
afterAll(async () => {
  await home.remove();
});

const HEX = 'a'.repeat(64);

describe('bad usage exits 2 with one line on stderr', () => {
  test.each([
    [['bogus'], 'model-pull: unknown command "bogus" (try model-pull --help)'],
    [['pull', '--bogus', 'ollama:x'], 'model-pull pull: unknown option --bogus (see model-pull pull --help)'],
    [['pull', '-z', 'ollama:x'], 'model-pull pull: unknown option -z (see model-pull pull --help)'],
    [
      ['pull', 'ollama:x', '--concurrency'],
      'model-pull pull: option --concurrency needs a value (see model-pull pull --help)',
    ],
    [
      ['pull', '--json=yes', 'ollama:x'],
      'model-pull pull: option --json takes no value (see model-pull pull --help)',
    ],
    [['pull'], 'model-pull pull: no model line given: pass LINE... or -f FILE'],
    [['lock', '--json', 'ollama:x'], 'model-pull lock: unknown option --json (see model-pull lock --help)'],
    [
      ['verify', 'ollama:x'],
      'model-pull verify: takes no model lines, got "ollama:x" (see model-pull verify --help)',
    ],
    [
      ['verify', '--concurrency', '2'],
      'model-pull verify: unknown option --concurrency (see model-pull verify --help)',
    ],
    [['demo', '--json'], 'model-pull demo: unknown option --json (see model-pull demo --help)'],
    [
      ['pull', 'ollama:BAD!!name'],
      'model-pull pull: invalid model line "ollama:BAD!!name": model "BAD!!name" may only contain letters, digits, _, - and .',
    ],
    [
      ['pull', 'https://example.com/m.gguf'],
      'model-pull pull: invalid model line "https://example.com/m.gguf": a URL needs sha256=<64 hex> so the file can be verified',
    ],
    [
      ['pull', '--concurrency', '0', 'ollama:x'],
      'model-pull pull: --concurrency must be a whole number from 1 to 64, got "0"',
    ],
    [['pull', '--verify', 'fast', 'ollama:x'], 'model-pull pull: --verify must be full or size, got "fast"'],
    [
      ['pull', '-f', '/nonexistent/lines.txt'],
      'model-pull pull: cannot read -f /nonexistent/lines.txt: no such file',
    ],
    // A flag that needs a number does not swallow the model line after it (issue 11).
    [
      ['pull', '--concurrency', 'ollama:qwen2.5:0.5b'],
      'model-pull pull: --concurrency needs a number, got "ollama:qwen2.5:0.5b" (a model line? it needs a number first)',
    ],
    [['pull', '--retries', 'many', 'ollama:x'], 'model-pull pull: --retries needs a number, got "many"'],
    // `sha256:` as digests are written elsewhere: the line as typed, and the fix.
    [
      ['pull', 'https://example.com/m.gguf', `sha256:${HEX}`],
      `model-pull pull: invalid model line "https://example.com/m.gguf sha256:${HEX}": did you mean sha256=${HEX}? (options are key=value)`,
    ],
    [
      ['pull', `https://example.com/m.gguf sha256:${HEX}`],
      `model-pull pull: invalid model line "https://example.com/m.gguf sha256:${HEX}": did you mean sha256=${HEX}? (options are key=value)`,
    ],
    // Plain http to another machine needs --insecure: a usage error before any request.
    [
      ['pull', 'http://models.example.com/m.gguf', `sha256=${HEX}`],
      `model-pull pull: model line "http://models.example.com/m.gguf sha256=${HEX}": plain http to models.example.com needs --insecure (or use https)`,
    ],
    [
      ['pull', 'ollama:http://registry.example.com:5000/team/m:1'],
      'model-pull pull: model line "ollama:http://registry.example.com:5000/team/m:1": plain http to registry.example.com needs --insecure (or use https)',
    ],
    [
      ['lock', '--hf-endpoint', 'http://mirror.example.com', 'hf:a/b'],
      'model-pull lock: --hf-endpoint http://mirror.example.com: plain http to mirror.example.com needs --insecure (or use https)',
    ],
    // lock resolves lines: the download flags are not its own.
    [
      ['lock', '--concurrency', '4', 'ollama:x'],
      'model-pull lock: unknown option --concurrency (see model-pull lock --help)',
    ],
    [['help', 'bogus'], 'model-pull: unknown command "bogus" (try model-pull --help)'],
  ])('%j', async (args, message) => {
    const result = await runCli(args, { env: env() });
    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual([message]);
    expect(result.stdout).toBe('');
  });

  it('checks every line, from arguments and -f files, before any download', async () => {
    // The first line is fine and names a loopback port nobody listens on: had it been fetched,
    // the run would fail with a network error (exit 1), not the usage error of the file's line.
    const result = await runCli(
      ['pull', `http://127.0.0.1:9/m.gguf`, `sha256=${HEX}`, '-f', join(home.path, 'bad-lines.txt')],
      { env: env() },
    );
    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual([
      'model-pull pull: invalid model line "hf:owner/repo foo=bar": unknown option foo= (allowed here: include=, exclude=)',
    ]);
  });

  it('prints the overview on stderr when no command is given', async () => {
    const result = await runCli([], { env: env() });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^model-pull: .*\n\nUsage:\n {2}model-pull pull /);
    expect(result.stdout).toBe('');
  });
});

describe('--help', () => {
  test.each([[['--help']], [['-h']], [['help']]])('%j prints the overview on stdout', async (args) => {
    const result = await runCli(args, { env: env() });
    expect(result.code).toBe(0);
    for (const command of Object.keys(COMMAND_FLAGS))
      expect(result.stdout).toContain(`model-pull ${command} `);
    expect(result.stderr).toBe('');
  });

  test.each(Object.keys(COMMAND_FLAGS))('%s --help names every flag the command accepts', async (command) => {
    const result = await runCli([command, '--help'], { env: env() });
    expect(result.code).toBe(0);
    expect(result.stdout.startsWith(`Usage: model-pull ${command} `)).toBe(true);
    for (const [flag, spec] of Object.entries(COMMAND_FLAGS[command]!)) {
      expect(result.stdout).toContain(`--${flag}`);
      if (spec.short) expect(result.stdout).toContain(`-${spec.short}, --${flag}`);
    }
    expect(result.stderr).toBe('');
  });

  it("model-pull help COMMAND prints that command's help", async () => {
    for (const command of Object.keys(COMMAND_FLAGS)) {
      const [viaHelp, viaFlag] = await Promise.all([
        runCli(['help', command], { env: env() }),
        runCli([command, '--help'], { env: env() }),
      ]);
      expect(viaHelp.code).toBe(0);
      expect(viaHelp.stdout.startsWith(`Usage: model-pull ${command} `)).toBe(true);
      expect(viaHelp.stdout).toBe(viaFlag.stdout);
    }
  });

  it('lock --help lists only what lock uses', async () => {
    const result = await runCli(['lock', '--help'], { env: env() });
    for (const unused of ['--concurrency', '--connections', '--verify', '--files-dir', '--json'])
      expect(result.stdout).not.toContain(unused);
    for (const used of [
      '--lockfile',
      '--hf-endpoint',
      '--hf-token',
      '--ollama-models',
      '--hf-cache',
      '--retries',
    ])
      expect(result.stdout).toContain(used);
  });

  it('wins over other arguments, even bad lines', async () => {
    const result = await runCli(['pull', 'ollama:BAD!!name', '-h'], { env: env() });
    expect(result.code).toBe(0);
    expect(result.stdout.startsWith('Usage: model-pull pull ')).toBe(true);
  });
});

describe('a closed stdout', () => {
  it('`verify | head -1`: the reader goes away, the CLI ends quietly', async () => {
    const folders = [join(home.path, 'epipe-ollama'), join(home.path, 'epipe-hf')];
    await Promise.all(folders.map((f) => mkdir(f, { recursive: true })));
    const cli = startCli(['verify', '--ollama-models', folders[0]!, '--hf-cache', folders[1]!], {
      env: env(),
    });
    // Closed before the CLI has written anything: every write it makes meets EPIPE.
    cli.child.stdout!.destroy();
    const result = await cli.done;
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });
});
