import { createReadStream } from 'node:fs';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { createActionsCache } from '../../src/cache/actions-cache.js';
import { LAYOUT_VERSION } from '../../src/cache/key.js';
import { commandFlags } from '../../src/cli/args.js';
import { runCli } from '../../src/cli/main.js';
import { isSha256Hex, sha256Hex } from '../../src/digest.js';
import type { HttpClient } from '../../src/http/client.js';
import { type Identity, recordedIdentityError } from '../../src/plan.js';
import { pull } from '../../src/pull.js';
import { badLine, onlyOptions } from '../../src/refs/line.js';
import { MemoryLogger } from '../../src/report/logger.js';
import { settingsFromInputs } from '../../src/settings/action-inputs.js';
import { buildSettings, cacheService } from '../../src/settings/settings.js';
import { type SourceDescriptor, type SourceList, sourceOptions } from '../../src/sources/descriptor.js';
import { DEFAULT_SOURCES } from '../../src/sources/index.js';
import { writeActionYml, writeReadme } from '../../src/sources/reference.js';
import { fakeRunner, type Runner, recordStdout } from '../cache/env.js';
import { ROOT } from '../docs/examples.js';
import { type CacheService, startCacheService } from '../helpers/cache-service.js';
import { FAST_RETRY, randomBlob, testClient } from '../helpers/engine.js';
import { parseRange, startServer, type TestServer, tempDir } from '../helpers/http.js';

// Issue 14's proof: a source that no file in src/ knows, defined here, added to the default
// list, and pulled through the whole pipeline: parse, lock file, cache key, plan, the engine,
// the Actions cache (real client, local service) and the outputs; and through the CLI, flag too.

/** `file:/ABSOLUTE/PATH sha256=<64 hex>`: a file on this machine, landing in `--file-dest`. */
interface FileRef {
  readonly line: string;
  readonly path: string;
  readonly sha256: string;
}

/**
 * The engine fetches over HTTP, so this toy source hands it the file through a loopback server
 * of its own, serving only the paths its plans registered (with ranges, as the engine asks).
 */
interface FileServer {
  readonly server: TestServer;
  urlFor(path: string, sha256: string): string;
}

async function startFileServer(): Promise<FileServer> {
  const paths = new Map<string, string>();
  const server = await startServer(async (req, res) => {
    const path = paths.get(req.url ?? '');
    if (!path) return void res.writeHead(404).end();
    const size = (await stat(path)).size;
    const range = parseRange(req.headers.range, size);
    if (!range) {
      res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes' });
      createReadStream(path).pipe(res);
      return;
    }
    res.writeHead(206, {
      'content-length': range.end - range.start + 1,
      'content-range': `bytes ${range.start}-${range.end}/${size}`,
    });
    createReadStream(path, { start: range.start, end: range.end }).pipe(res);
  });
  return {
    server,
    urlFor(path, sha256) {
      paths.set(`/${sha256}`, path);
      return `${server.url}/${sha256}`;
    },
  };
}

function fileSource(files: FileServer, calls: { identify: number }): SourceDescriptor<FileRef> {
  const identityOf = (ref: FileRef): Identity => ({
    source: 'file',
    ref: ref.line,
    name: ref.path,
    pin: `sha256:${ref.sha256}`,
    contentDigest: ref.sha256,
  });
  return {
    kind: 'file',
    prefixes: ['file:'],
    syntax: 'file:/PATH sha256=HEX',
    usage: 'file:/PATH sha256=HEX',
    options: [{ name: 'file-dest', help: 'where file: lines land', type: 'path', default: '~/file-models' }],
    parse(parts) {
      onlyOptions(parts, ['sha256']);
      const path = parts.reference.slice('file:'.length);
      if (!isAbsolute(path)) throw badLine(parts.line, 'the path must be absolute');
      const sha256 = parts.options.get('sha256') ?? '';
      if (!isSha256Hex(sha256)) throw badLine(parts.line, 'sha256= must be 64 lowercase hex digits');
      return { line: parts.line, path, sha256 };
    },
    // The folder it writes: checked for writing before any request, and (here, by counting its
    // files, a toy has no records to re-hash against) listed by `model-pull verify`.
    stores: (settings) => [
      {
        what: 'the file: folder',
        path: settings.sourceOptions['file-dest']!,
        input: 'file-dest',
        verify: {
          label: 'file: folder',
          async check(root) {
            const names = (await readdir(root, { withFileTypes: true })).filter((e) => e.isFile());
            const sizes = await Promise.all(names.map(async (e) => (await stat(join(root, e.name))).size));
            const checkedBytes = sizes.reduce((a, b) => a + b, 0);
            return { checkedFiles: names.length, checkedBytes, damaged: [] };
          },
        },
      },
    ],
    create(settings) {
      const dest = settings.sourceOptions['file-dest']!;
      return {
        async identify(ref) {
          calls.identify++;
          return identityOf(ref);
        },
        async plan(ref, identity) {
          if (identity.pin !== identityOf(ref).pin) throw recordedIdentityError(identity, 'other bytes');
          const target = join(dest, basename(ref.path));
          const size = (await stat(ref.path)).size;
          return {
            identity,
            path: target,
            size,
            files: [{ path: target, digest: identity.pin, size }],
            blobs: [
              {
                digest: { algorithm: 'sha256', hex: ref.sha256 },
                size,
                label: basename(ref.path),
                target,
                ingestDir: join(dest, '.ingest'),
                locate: async () => ({ url: files.urlFor(ref.path, ref.sha256) }),
              },
            ],
            cachePaths: [target],
            commit: async () => undefined,
          };
        },
      };
    },
  };
}

let files: FileServer;
let service: CacheService;
let runner: Runner;
let stdout: ReturnType<typeof recordStdout>;
let dir: Awaited<ReturnType<typeof tempDir>>;
const calls = { identify: 0 };
let sources: SourceList;
const { data, hex } = randomBlob(3 * 1024 * 1024 + 17);

beforeAll(async () => {
  files = await startFileServer();
  service = await startCacheService();
  dir = await tempDir();
  await writeFile(join(dir.path, 'weights.bin'), data);
  sources = [...DEFAULT_SOURCES, fileSource(files, calls)];
});
afterAll(async () => {
  await files.server.close();
  await service.close();
  await dir.remove();
});
let http: HttpClient;
beforeEach(async () => {
  runner = await fakeRunner(service);
  stdout = recordStdout();
  http = testClient();
});
afterEach(async () => {
  stdout.restore();
  await http.close();
  await runner.dispose();
});

test('a file: source defined in a test pulls through lock, cache key, plan, engine and output', async () => {
  const line = `file:${join(dir.path, 'weights.bin')} sha256=${hex}`;
  const dest = join(runner.workspace, 'dest');
  const lockfile = join(dir.path, 'model-pull.lock');
  const settings = buildSettings(
    {
      models: `# the toy source\n${line}`,
      'file-dest': dest,
      lockfile,
      'lock-mode': 'update',
      cache: 'true',
      retries: '0',
    },
    { env: {}, home: dir.path, nameOf: (n) => n, sourceOptions: sourceOptions(sources) },
  );
  const target = join(dest, 'weights.bin');
  const expected = {
    ref: line,
    source: 'file',
    name: join(dir.path, 'weights.bin'),
    digest: `sha256:${hex}`,
    path: target,
    size: data.length,
    files: [{ path: target, digest: `sha256:${hex}`, size: data.length }],
  };
  const log = new MemoryLogger();
  const cache = () =>
    createActionsCache({
      log,
      service: cacheService(process.env).cacheService,
      http,
      retry: FAST_RETRY,
      connections: 4,
    });
  const run = () => pull(settings, { sources, log, cache: cache() });

  const first = await run();
  expect(first.models[0]!.error).toBeUndefined();
  expect(first.models[0]!.output).toEqual({ ...expected, cache: 'miss' });
  expect(first.downloadedBytes).toBe(data.length);
  expect(sha256Hex(await readFile(target))).toBe(hex);
  expect(calls.identify).toBe(1);
  const lock = JSON.parse(await readFile(lockfile, 'utf8')) as { models: Record<string, unknown> };
  expect(lock.models[line]).toEqual({
    source: 'file',
    ref: line,
    name: expected.name,
    digest: `sha256:${hex}`,
    contentDigest: hex,
  });
  const key = `model-pull-${LAYOUT_VERSION}-file-${hex}`;
  expect(service.entry(key)?.finalized).toBe(true);

  // Second run, the file gone: the lock answers without identify(), the cache restores the bytes,
  // the engine verifies them and fetches nothing.
  await rm(target);
  const served = files.server.requests.length;
  const second = await run();
  expect(second.models[0]!.output).toEqual({ ...expected, cache: 'hit' });
  expect(second.downloadedBytes).toBe(0);
  expect(second.cachedBytes).toBe(data.length);
  expect(calls.identify).toBe(1);
  expect(files.server.requests.length).toBe(served);
  expect(sha256Hex(await readFile(target))).toBe(hex);
});

test('the CLI takes the source list: its lines, its --file-dest flag, its --help', async () => {
  const dest = join(dir.path, 'cli-dest');
  const line = `file:${join(dir.path, 'weights.bin')}`;
  let out = '';
  let err = '';
  const stream = (write: (s: string) => void) =>
    ({
      isTTY: false,
      write: (s: string) => {
        write(s);
        return true;
      },
    }) as unknown as NodeJS.WriteStream;
  const io = {
    env: { HOME: dir.path },
    stdout: stream((s) => (out += s)),
    stderr: stream((s) => (err += s)),
    sources,
  };
  expect(await runCli(['pull', '--file-dest', dest, '--json', line, `sha256=${hex}`], io)).toBe(0);
  const models = JSON.parse(out) as { source: string; path: string; digest: string }[];
  expect(models.map((m) => [m.source, m.path, m.digest])).toEqual([
    ['file', join(dest, 'weights.bin'), `sha256:${hex}`],
  ]);
  expect(sha256Hex(await readFile(join(dest, 'weights.bin')))).toBe(hex);

  out = '';
  expect(await runCli(['pull', '--help'], io)).toBe(0);
  expect(out).toContain('\nOptions of the sources:\n');
  expect(out).toContain('\n  --file-dest DIR         where file: lines land (~/file-models)\n');
  out = '';
  expect(await runCli(['--help'], io)).toBe(0);
  expect(out).toContain(
    '\n       | oci:[HOST/]REPO[:TAG][@sha256:HEX] | https://HOST/PATH/FILE sha256=HEX\n       | file:/PATH sha256=HEX\n',
  );
  out = '';
  expect(await runCli(['verify', '--file-dest', dest], io)).toBe(0);
  expect(out).toContain(`file: folder ${dest}: 1 files, 3.0 MiB checked, 0 damaged\n`);

  err = '';
  expect(await runCli(['pull', 'nonsense:x'], io)).toBe(2);
  expect(err).toBe(
    'model-pull pull: invalid model line "nonsense:x": expected ollama:NAME, hf:OWNER/REPO, oci:[HOST/]REPO[:TAG], an https:// URL with sha256= or file:/PATH sha256=HEX\n',
  );
  // Without the toy in the list, the same line is not a model line at all.
  err = '';
  expect(await runCli(['pull', `${line} sha256=${hex}`], { ...io, sources: DEFAULT_SOURCES })).toBe(2);
  expect(err).toContain(
    'expected ollama:NAME, hf:OWNER/REPO, oci:[HOST/]REPO[:TAG] or an https:// URL with sha256=',
  );
});

test('its input reaches action.yml, the README reference tables and the action settings', async () => {
  // What `npm run build` would write with the toy in the default list.
  const action = writeActionYml(await readFile(join(ROOT, 'action.yml'), 'utf8'), sources);
  const inputs = (parseYaml(action) as { inputs: Record<string, { description: string }> }).inputs;
  expect(inputs['file-dest']).toEqual({
    description: 'where file: lines land (default ~/file-models)',
    required: false,
  });
  expect(inputs.models!.description).toContain(' or file:/PATH sha256=HEX. ');
  const flags = commandFlags(sources);
  const commandsOf = (flag: string) =>
    Object.keys(flags).filter((command) => Object.hasOwn(flags[command]!, flag));
  const readme = writeReadme(await readFile(join(ROOT, 'README.md'), 'utf8'), sources, commandsOf);
  expect(readme).toContain('\n| `file-dest` | `~/file-models` | where file: lines land |\n');
  expect(readme).toContain(
    '\n| `--file-dest DIR` | `pull` `lock` `mirror` `verify` | `~/file-models` | where file: lines land |\n',
  );

  // The action reads it with the shared inputs (the runner hands every input as INPUT_<NAME>).
  const given = { INPUT_MODELS: `file:/x sha256=${hex}`, 'INPUT_FILE-DEST': join(dir.path, 'from-input') };
  Object.assign(process.env, given);
  try {
    const settings = settingsFromInputs({ HOME: dir.path }, sources);
    expect(settings.sourceOptions['file-dest']).toBe(join(dir.path, 'from-input'));
  } finally {
    for (const name of Object.keys(given)) delete process.env[name];
  }
});
