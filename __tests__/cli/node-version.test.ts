import { spawn, spawnSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MIN_NODE, nodeTooOld } from '../../src/cli/node-version.js';
import { tempDir } from '../helpers/http.js';
import { CLI_PATH, lines, requireBuiltCli } from './run.js';

// An old Node used to crash while loading the bundle (undici 8, zlib's zstd) with a stack trace,
// even for --help. The entry now checks the version before anything else is evaluated.

const needed = `${MIN_NODE[0]}.${MIN_NODE[1]}`;

/** A Node on this machine older than the minimum (the Debian image's /usr/bin/node is 20). */
function oldNode(): { path: string; version: string } | undefined {
  const which = spawnSync('which', ['-a', 'node'], { encoding: 'utf8' }).stdout.split('\n');
  for (const path of new Set(['/usr/bin/node', ...which.filter(Boolean)])) {
    const probe = spawnSync(path, ['-p', 'process.versions.node'], { encoding: 'utf8' });
    const version = probe.stdout?.trim();
    if (probe.status === 0 && version && nodeTooOld(version)) return { path, version };
  }
  return undefined;
}

function run(command: string, args: string[], env: Record<string, string>, cwd?: string) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

beforeAll(() => requireBuiltCli());

test.each([
  ['20.20.2', `model-pull needs Node ≥ ${needed} (this is 20.20.2)\n`],
  ['22.18.0', `model-pull needs Node ≥ ${needed} (this is 22.18.0)\n`],
  ['22.19.0', undefined],
  ['24.1.0', undefined],
])('nodeTooOld(%s)', (version, message) => {
  expect(nodeTooOld(version)).toBe(message);
});

it('package.json engines says the same minimum', async () => {
  const pkg = JSON.parse(await import('node:fs').then((fs) => fs.readFileSync('package.json', 'utf8')));
  expect(pkg.engines.node).toBe(`>=${needed}`);
});

it('the bundled CLI says so in one line, exit 2, before loading anything else (version faked)', async () => {
  const fake = `data:text/javascript,Object.defineProperty(process,"versions",{value:{...process.versions,node:"22.18.0"}})`;
  const result = await run(process.execPath, ['--import', fake, CLI_PATH, '--help'], {
    PATH: process.env.PATH!,
  });
  expect(result.code).toBe(2);
  expect(result.stderr).toBe(`model-pull needs Node ≥ ${needed} (this is 22.18.0)\n`);
  expect(result.stdout).toBe('');
});

const old = oldNode();
// The machine image ships Node 20 as /usr/bin/node; a machine without an older Node cannot run these.
const withOldNode = old ? describe : describe.skip;

withOldNode(`a real older Node (${old?.path} ${old?.version})`, () => {
  it('dist/cli/index.js run by it: one line, exit 2, no stack trace', async () => {
    for (const args of [['--help'], ['pull', 'ollama:x']]) {
      const result = await run(old!.path, [CLI_PATH, ...args], { PATH: process.env.PATH! });
      expect(result.code).toBe(2);
      expect(lines(result.stderr)).toEqual([`model-pull needs Node ≥ ${needed} (this is ${old!.version})`]);
      expect(result.stdout).toBe('');
    }
  });

  it('the bin link, through npx, with the older Node first on PATH', async () => {
    // An install as npm makes it: node_modules/model-pull and the .bin link to its `bin`.
    const project = await tempDir('model-pull-old-node-');
    try {
      const repo = join(CLI_PATH, '..', '..', '..');
      await mkdir(join(project.path, 'node_modules', '.bin'), { recursive: true });
      await symlink(repo, join(project.path, 'node_modules', 'model-pull'));
      await symlink(
        join('..', 'model-pull', 'dist', 'cli', 'index.js'),
        join(project.path, 'node_modules', '.bin', 'model-pull'),
      );
      await writeFile(join(project.path, 'package.json'), '{"name":"user-project","private":true}\n');
      const bin = join(old!.path, '..');
      const env = { PATH: `${bin}:/usr/bin:/bin`, HOME: project.path, npm_config_update_notifier: 'false' };
      const linked = await run(join(project.path, 'node_modules', '.bin', 'model-pull'), ['--help'], env);
      expect(linked.code).toBe(2);
      expect(lines(linked.stderr)).toEqual([`model-pull needs Node ≥ ${needed} (this is ${old!.version})`]);
      const npx = await run(
        join(bin, 'npx'),
        ['--offline', '--no-install', 'model-pull', '--help'],
        env,
        project.path,
      );
      expect(npx.code).toBe(2);
      expect(npx.stderr).toContain(`model-pull needs Node ≥ ${needed} (this is ${old!.version})\n`);
      expect(npx.stderr).not.toMatch(/at |TypeError|createZstd/);
    } finally {
      await project.remove();
    }
  });
});
