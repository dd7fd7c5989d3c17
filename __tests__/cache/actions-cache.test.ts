import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { createActionsCache } from '../../src/cache/actions-cache.js';
import { type CacheClient, createNoCache, type RestoreEntry } from '../../src/cache/client.js';
import type { HttpClient } from '../../src/http/client.js';
import { MemoryLogger } from '../../src/report/logger.js';
import { cacheService } from '../../src/settings/settings.js';
import { type CacheService, startCacheService } from '../helpers/cache-service.js';
import { FAST_RETRY, testClient } from '../helpers/engine.js';
import { startServer } from '../helpers/http.js';
import {
  fakeRunner,
  hashes,
  type Runner,
  recordStdout,
  removeAll,
  shrinkLongSleeps,
  writeModel,
} from './env.js';

const GET = 'GetCacheEntryDownloadURL';
const CREATE = 'CreateCacheEntry';
const FINALIZE = 'FinalizeCacheEntryUpload';

let service: CacheService;
let runner: Runner;
let stdout: ReturnType<typeof recordStdout>;
let log: MemoryLogger;
let client: CacheClient;
let http: HttpClient;

beforeAll(async () => {
  service = await startCacheService();
});
afterAll(async () => {
  await service.close();
});
beforeEach(async () => {
  service.setFault(undefined);
  service.calls.length = 0;
  runner = await fakeRunner(service);
  stdout = recordStdout();
  log = new CoreLikeLogger();
  http = testClient();
  // The client is made lazily: tests change the runner's variables first, as a job's would be.
  let real: CacheClient | undefined;
  const made = () =>
    (real ??= createActionsCache({
      log,
      service: cacheService(process.env).cacheService,
      http,
      retry: FAST_RETRY,
      connections: 4,
    }));
  client = {
    restore: (entry) => made().restore(entry),
    save: (paths, key) => made().save(paths, key),
    lookup: (entry) => made().lookup(entry),
  };
});
afterEach(async () => {
  stdout.restore();
  await http.close();
  await runner.dispose();
});

/** Logs like the action's @actions/core logger: warnings become `::warning::` lines on stdout. */
class CoreLikeLogger extends MemoryLogger {
  override warning(message: string): void {
    super.warning(message);
    process.stdout.write(`::warning::${message}\n`);
  }
}

const warnings = () => log.lines.filter((l) => l.startsWith('warning: '));
/** What the runner would have turned into annotations: must be exactly our own warnings. */
const annotations = () => stdout.lines.filter((l) => /^::(warning|error)/.test(l));
const ours = () => warnings().map((w) => `::warning::${w.slice('warning: '.length)}`);

async function model(
  name: string,
  files: Record<string, number> = { 'blobs/a.bin': 200_000, 'config.json': 300 },
) {
  const hashed = await writeModel(join(runner.root, name), files);
  const sizes = new Map(Object.entries(files).map(([file, size]) => [join(runner.root, name, file), size]));
  const paths = [...hashed.keys()];
  const ingestDir = join(runner.root, name, '.ingest');
  /** The entry as a plan would ask for it: these paths, each file with its digest and size. */
  const entry = (key: string, list: readonly string[] = paths): RestoreEntry => ({
    key,
    paths: list,
    blobs: list.map((path) => ({
      digest: { algorithm: 'sha256' as const, hex: hashed.get(path)! },
      size: sizes.get(path)!,
      label: path,
      target: path,
      ingestDir,
      locate: async () => ({ url: 'http://127.0.0.1:9/unused' }),
    })),
  });
  return { paths, hashed, entry };
}

describe('createActionsCache against a local cache service v2', () => {
  test('saves a model then restores it byte for byte, signatures masked, nothing annotated', async () => {
    const { paths, hashed, entry } = await model('m1', {
      'blobs/w.bin': 300_000,
      'snap/a[1].json': 100,
      'x?.txt': 10,
    });
    expect(await client.save(paths, 'k-roundtrip')).toBe('saved');
    expect(service.calls.map((c) => c.call)).toEqual([CREATE, 'PUT blob', FINALIZE]);
    const sizes = await Promise.all(paths.map(async (p) => (await stat(p)).size));
    await removeAll(paths);

    expect(await client.restore(entry('k-roundtrip'))).toMatchObject({ state: 'hit', missing: 0 });
    expect(await hashes(paths)).toEqual(hashed);
    expect(await Promise.all(paths.map(async (p) => (await stat(p)).size))).toEqual(sizes);
    // One lookup, the archive's size, then the archive in ranges.
    expect(service.calls.slice(3, 5).map((c) => c.call)).toEqual([GET, 'HEAD archive']);
    expect(service.calls.slice(5).every((c) => c.call === 'GET archive' && c.status === 206)).toBe(true);
    expect(service.calls[3]?.body).toEqual({
      key: 'k-roundtrip',
      restore_keys: [],
      version: service.calls[0]?.body?.['version'],
    });
    // The library masks the signed upload URL's `sig`; that command must still reach the runner.
    expect(stdout.lines.some((l) => l.startsWith('::add-mask::'))).toBe(true);
    expect(annotations()).toEqual(ours());
    expect(warnings()).toEqual([]);
  });

  test('restores several entries in parallel, each its own files', async () => {
    const models = await Promise.all(['p1', 'p2', 'p3'].map((n) => model(n)));
    const saved = await Promise.all(models.map((m, i) => client.save(m.paths, `k-par-${i}`)));
    expect(saved).toEqual(['saved', 'saved', 'saved']);
    for (const m of models) await removeAll(m.paths);
    const restored = await Promise.all(models.map((m, i) => client.restore(m.entry(`k-par-${i}`))));
    expect(restored.map((r) => r.state)).toEqual(['hit', 'hit', 'hit']);
    for (const m of models) expect(await hashes(m.paths)).toEqual(m.hashed);
    expect(annotations()).toEqual(ours());
  });

  test('lookup asks for the entry and downloads nothing; the restore after it asks no second time', async () => {
    const { paths, hashed, entry } = await model('look');
    expect(await client.save(paths, 'k-look')).toBe('saved');
    const saved = service.calls.length;
    expect(await client.lookup(entry('k-look'))).toBe('found');
    expect(await client.lookup(entry('k-nope'))).toBe('missing');
    // Another path list is another version, so another entry: missing too.
    expect(await client.lookup(entry('k-look', paths.slice(0, 1)))).toBe('missing');
    expect(service.calls.slice(saved).map((c) => [c.call, c.body?.['key']])).toEqual([
      [GET, 'k-look'],
      [GET, 'k-nope'],
      [GET, 'k-look'],
    ]);
    await removeAll(paths);
    const looked = service.calls.length;
    expect(await client.restore(entry('k-look'))).toMatchObject({ state: 'hit' });
    expect(service.calls.slice(looked).filter((c) => c.call === GET)).toEqual([]);
    expect(await hashes(paths)).toEqual(hashed);
    expect(warnings()).toEqual([]);
  });

  test('a key never saved is a quiet miss', async () => {
    const { paths, hashed, entry } = await model('miss');
    expect(await client.restore(entry('k-never-saved'))).toMatchObject({ state: 'miss' });
    expect(service.calls.map((c) => [c.call, c.body?.['key']])).toEqual([[GET, 'k-never-saved']]);
    expect(await hashes(paths)).toEqual(hashed);
    expect(warnings()).toEqual([]);
    expect(annotations()).toEqual(ours());
  });

  test('another path list is another version: a miss; the same list in another order still hits', async () => {
    const { paths, hashed, entry } = await model('ver', { 'a.bin': 1000, 'b.bin': 1000 });
    expect(await client.save(paths, 'k-version')).toBe('saved');
    await removeAll(paths);
    expect(await client.restore(entry('k-version', paths.slice(0, 1)))).toMatchObject({ state: 'miss' });
    const versions = service.calls
      .filter((c) => c.body?.['key'] === 'k-version')
      .map((c) => c.body?.['version']);
    expect(versions[0]).toBe(versions[1]); // create and finalize
    expect(versions[2]).not.toBe(versions[0]);
    expect(service.count('GET archive')).toBe(0);
    expect(await client.restore(entry('k-version', [...paths].reverse()))).toMatchObject({ state: 'hit' });
    expect(await hashes(paths)).toEqual(hashed);
  });

  test('reserve conflicts are "exists", never thrown, and warned once', async () => {
    const { paths } = await model('conflict');
    expect(await client.save(paths, 'k-conflict')).toBe('saved');
    expect(await client.save(paths, 'k-conflict')).toBe('exists'); // the entry is there: 409
    service.setFault({ kind: 'reserve-conflict' });
    expect(await client.save(paths, 'k-conflict-2')).toBe('exists');
    service.setFault({ kind: 'reserve-not-ok', message: 'entry locked by another job' });
    expect(await client.save(paths, 'k-conflict-3')).toBe('exists');
    expect(warnings()).toEqual([
      'warning: Cache entry k-conflict is already saved or being saved by another job; not saved here.',
    ]);
    expect(service.count('PUT blob')).toBe(1);
    expect(service.count(CREATE)).toBe(4);
    expect(annotations()).toEqual(ours());
  });

  test('no service configured: one warning, no request, restore false, save unavailable', async () => {
    delete process.env['ACTIONS_RESULTS_URL'];
    const { paths, entry } = await model('absent');
    // Nothing was looked up: `off`, not `miss`.
    expect(await client.restore(entry('k-a'))).toMatchObject({ state: 'off' });
    expect(await client.restore(entry('k-b'))).toMatchObject({ state: 'off' });
    expect(await client.lookup(entry('k-a'))).toBe('off');
    expect(await client.save(paths, 'k-a')).toBe('unavailable');
    expect(await client.save(paths, 'k-b')).toBe('unavailable');
    expect(warnings()).toEqual([
      'warning: Actions cache unavailable: no Actions cache service is configured for this job; ' +
        'models are downloaded and not cached.',
    ]);
    expect(service.calls).toEqual([]);
    expect(annotations()).toEqual(ours());
  });

  test('no runtime token: one warning naming it, then no more attempts', async () => {
    delete process.env['ACTIONS_RUNTIME_TOKEN'];
    const { paths, entry } = await model('token');
    expect(await client.restore(entry('k-t1'))).toMatchObject({ state: 'off' });
    expect(await client.restore(entry('k-t2'))).toMatchObject({ state: 'off' });
    expect(await client.save(paths, 'k-t1')).toBe('unavailable');
    expect(warnings()).toEqual([
      'warning: Actions cache service failing (ACTIONS_RUNTIME_TOKEN is not set); ' +
        'continuing without the cache for the rest of this run.',
    ]);
    expect(service.calls).toEqual([]);
    expect(annotations()).toEqual(ours());
  });

  test('nothing listening at the service URL: one warning, restore false, then no more attempts', async () => {
    const gone = await startServer((_req, res) => {
      res.end();
    });
    await gone.close();
    process.env['ACTIONS_RESULTS_URL'] = `${gone.url}/`;
    const { paths, entry } = await model('refused');
    const restoreSleeps = shrinkLongSleeps();
    try {
      expect(await client.restore(entry('k-refused'))).toMatchObject({ state: 'off' });
    } finally {
      restoreSleeps();
    }
    expect(await client.save(paths, 'k-refused')).toBe('unavailable');
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatch(/^warning: Actions cache service failing \(.*ECONNREFUSED.*\); continuing/);
    expect(gone.requests).toEqual([]);
    expect(annotations()).toEqual(ours());
  });

  test('429: the first call fails without retry, one warning, later calls skip the service', async () => {
    service.setFault({ kind: 'status', status: 429, retryAfterSeconds: 60 });
    const { paths, entry } = await model('limited');
    const results = await Promise.all([client.restore(entry('k-r1')), client.restore(entry('k-r2'))]);
    expect(results.map((r) => r.state)).toEqual(['off', 'off']);
    expect(service.count(GET)).toBe(2); // both were in flight; neither retried
    expect(await client.restore(entry('k-r3'))).toMatchObject({ state: 'off' });
    expect(await client.save(paths, 'k-r3')).toBe('unavailable');
    expect(service.calls).toHaveLength(2);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatch(
      /^warning: Actions cache service failing \(GetCacheEntryDownloadURL answered HTTP 429: .*injected 429.*\); continuing without/,
    );
    expect(annotations()).toEqual(ours()); // not the library's own "You've hit a rate limit" nor its errors
  });

  test('500: retried a few times, then one warning and no more requests', async () => {
    service.setFault({ kind: 'status', status: 500 });
    const { paths, entry } = await model('broken');
    const restoreSleeps = shrinkLongSleeps();
    let first: Awaited<ReturnType<CacheClient['restore']>>;
    try {
      first = await client.restore(entry('k-500'));
    } finally {
      restoreSleeps();
    }
    expect(first.state).toBe('off');
    expect(service.count(GET)).toBe(4); // three retries, as the client caps them for the service
    expect(await client.restore(entry('k-500b'))).toMatchObject({ state: 'off' });
    expect(await client.save(paths, 'k-500')).toBe('unavailable');
    expect(service.calls).toHaveLength(4);
    expect(warnings()).toEqual([
      'warning: Actions cache service failing (GetCacheEntryDownloadURL answered HTTP 500: ' +
        '{"code":"internal","msg":"injected 500"}); continuing without the cache for the rest of this run.',
    ]);
    expect(annotations()).toEqual(ours());
  });

  test('a failing CreateCacheEntry is a failing service, not a conflict', async () => {
    const { paths, entry } = await model('create-429');
    expect(await client.restore(entry('k-c'))).toMatchObject({ state: 'miss' }); // a plain miss first
    service.setFault({ kind: 'status', status: 429, methods: [CREATE] });
    expect(await client.save(paths, 'k-c')).toBe('failed');
    expect(await client.save(paths, 'k-d')).toBe('unavailable');
    // The service is off for the rest of the run: not even looked up.
    expect(await client.restore(entry('k-c'))).toMatchObject({ state: 'off' });
    expect(service.calls.map((c) => c.call)).toEqual([GET, CREATE]);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatch(
      /^warning: Actions cache service failing \(Failed to CreateCacheEntry: Rate limited/,
    );
    expect(annotations()).toEqual(ours());
  });

  test('a rejected upload fails that save only; the next one is saved', async () => {
    const { paths } = await model('upload');
    service.setFault({ kind: 'blob-status', status: 403, methods: ['PUT'] });
    expect(await client.save(paths, 'k-up1')).toBe('failed');
    expect(service.count(FINALIZE)).toBe(0);
    service.setFault(undefined);
    expect(await client.save(paths, 'k-up2')).toBe('saved');
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatch(/^warning: Could not save cache entry k-up1 \(.*403/);
    expect(annotations()).toEqual(ours());
  });

  test('an archive that cannot be read is a miss for that entry only', async () => {
    const { paths, hashed, entry } = await model('unreadable');
    expect(await client.save(paths, 'k-bad')).toBe('saved');
    await removeAll(paths);
    service.setFault({ kind: 'blob-status', status: 404, methods: ['GET'] });
    expect(await client.restore(entry('k-bad'))).toMatchObject({ state: 'miss', found: true, missing: 2 });
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatch(
      /^warning: Could not restore cache entry k-bad \(.*HTTP 404.*\); its files are downloaded instead\.$/,
    );
    service.setFault(undefined);
    expect(await client.restore(entry('k-bad'))).toMatchObject({ state: 'hit' });
    expect(await hashes(paths)).toEqual(hashed);
    expect(annotations()).toEqual(ours());
  });

  test('a read-only cache mode skips saves with one notice, no warning; restores still work', async () => {
    const { paths, hashed, entry } = await model('read-only');
    expect(await client.save(paths, 'k-ro')).toBe('saved');
    await removeAll(paths);
    process.env['ACTIONS_CACHE_MODE'] = 'read';
    expect(await client.save(paths, 'k-ro2')).toBe('unavailable');
    expect(await client.save(paths, 'k-ro3')).toBe('unavailable');
    expect(await client.restore(entry('k-ro'))).toMatchObject({ state: 'hit' });
    expect(await hashes(paths)).toEqual(hashed);
    expect(service.count(CREATE)).toBe(1);
    expect(warnings()).toEqual([]);
    expect(log.lines.filter((l) => l.startsWith('Actions cache save is not allowed'))).toEqual([
      "Actions cache save is not allowed in this run (Cache save skipped: the effective cache-mode 'read' " +
        'does not permit writes.).',
    ]);
  });

  test('a symlink member is refused: nothing is linked, the planned file still restores', async () => {
    const root = join(runner.root, 'hf');
    const { paths, hashed, entry } = await model('hf', { 'blobs/abc': 4000 });
    const link = join(root, 'snapshots', 'c0ffee', 'model.bin');
    await mkdir(dirname(link), { recursive: true });
    await symlink('../../blobs/abc', link);
    expect(await client.save([...paths, link], 'k-link')).toBe('saved');
    await rm(root, { recursive: true });
    // The plan names the link's path, but only as a blob it would fill with verified bytes.
    const asked = entry('k-link');
    const result = await client.restore({ ...asked, paths: [link, ...paths] });
    expect(result).toMatchObject({ state: 'partial', missing: 0 });
    await expect(lstat(link)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await hashes(paths)).toEqual(hashed);
    expect(warnings()).toEqual([
      `warning: Cache entry k-link: refused 1 archive member: 1 × a symlink (${JSON.stringify(relative(runner.workspace, link))}); ` +
        '0 of 1 files are downloaded from the origin instead.',
    ]);
  });

  test('a tampered entry: the changed file never reaches its path, the others restore, one warning', async () => {
    const { paths, hashed, entry } = await model('tamper', { 'blobs/w.bin': 50_000, 'config.json': 200 });
    expect(await client.save(paths, 'k-tamper')).toBe('saved');
    const changed = service.tamper('k-tamper', (name) => name.endsWith('/w.bin'));
    expect(changed).toHaveLength(1);
    await removeAll(paths);
    expect(await client.restore(entry('k-tamper'))).toMatchObject({ state: 'partial', missing: 1 });
    const weights = paths.find((p) => p.endsWith('w.bin'))!;
    const config = paths.find((p) => p.endsWith('config.json'))!;
    await expect(stat(weights)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await hashes([config])).get(config)).toBe(hashed.get(config));
    expect(warnings()).toEqual([
      `warning: Cache entry k-tamper: refused 1 archive member: 1 × not the planned bytes (${JSON.stringify(changed[0])}); ` +
        '1 of 2 files are downloaded from the origin instead.',
    ]);
  });
});

describe('restoring around what is on disk already', () => {
  const archiveGets = () => service.calls.filter((c) => c.call === 'GET archive').length;

  test('every planned file in place and verified: the archive is not fetched, a hit', async () => {
    const { paths, hashed, entry } = await model('present', { 'blobs/w.bin': 300_000, 'config.json': 300 });
    expect(await client.save(paths, 'k-present')).toBe('saved');
    const before = await Promise.all(paths.map(async (p) => (await stat(p)).ino));
    service.calls.length = 0;
    const result = await client.restore({ ...entry('k-present'), verify: 'full' });
    expect(result).toMatchObject({ state: 'hit', found: true, missing: 0, fetched: 0 });
    expect(result.restored.size).toBe(0);
    expect([...(result.present ?? new Map()).keys()].sort()).toEqual([...paths].sort());
    // One lookup (the entry exists: not saved again), no HEAD, no archive byte.
    expect(service.calls.map((c) => c.call)).toEqual([GET]);
    expect(await Promise.all(paths.map(async (p) => (await stat(p)).ino))).toEqual(before);
    expect(await hashes(paths)).toEqual(hashed);
  });

  test('a restore that stopped resumes by what it committed: files in place are kept, the rest restored', async () => {
    const { paths, hashed, entry } = await model('resume', { 'blobs/w.bin': 300_000, 'config.json': 300 });
    expect(await client.save(paths, 'k-resume')).toBe('saved');
    const weights = paths.find((p) => p.endsWith('w.bin'))!;
    const config = paths.find((p) => p.endsWith('config.json'))!;
    await rm(config);
    const kept = (await stat(weights)).ino;
    service.calls.length = 0;
    const result = await client.restore({ ...entry('k-resume'), verify: 'size' });
    expect(result).toMatchObject({ state: 'hit', missing: 0 });
    expect([...result.restored.keys()]).toEqual([config]);
    expect([...(result.present ?? new Map()).keys()]).toEqual([weights]);
    expect(archiveGets()).toBeGreaterThan(0);
    // The file in place was not written again (same inode); the missing one came verified.
    expect((await stat(weights)).ino).toBe(kept);
    expect(await hashes(paths)).toEqual(hashed);
  });

  test('a stop (Ctrl-C) during a restore keeps the files committed before it and says so; no warning', async () => {
    const { paths, hashed, entry } = await model('stop', {
      'a-config.json': 300,
      'z/w.bin': 8 * 1024 * 1024,
    });
    expect(await client.save(paths, 'k-stop')).toBe('saved');
    const [config, weights] = paths.sort();
    await rm(config!);
    await rm(weights!);
    // Random weights do not compress: the archive comes at 1 MiB/s per connection, for seconds.
    service.setFault({ kind: 'blob-rate', bytesPerSecond: 1024 * 1024 });
    const stop = new AbortController();
    const stopping = createActionsCache({
      log,
      service: cacheService(process.env).cacheService,
      http,
      retry: FAST_RETRY,
      connections: 4,
      signal: stop.signal,
    });
    const restoring: number[] = [];
    const result = await stopping.restore({
      ...entry('k-stop'),
      progress: {
        start: () => restoring.push(stopping.restoring),
        size: () => undefined,
        // The config member comes first: once it is committed, the next bytes bring the stop.
        bytes: () => {
          if (existsSync(config!)) stop.abort(new Error('stopped by the test'));
        },
        end: () => undefined,
      },
    });
    expect(restoring).toEqual([1]);
    expect(stopping.restoring).toBe(0);
    expect(result).toMatchObject({
      state: 'partial',
      missing: 1,
      failure: expect.stringContaining('stopped'),
    });
    expect([...result.restored.keys()]).toEqual([config]);
    expect(await hashes([config!])).toEqual(new Map([[config, hashed.get(config!)]]));
    expect(existsSync(weights!)).toBe(false);
    // The weights' staging went with the stop: nothing but the (empty) ingest folder is left.
    expect(await readdir(join(runner.root, 'stop', '.ingest'))).toEqual([]);
    expect(log.lines).toContain(
      'Cache entry k-stop: stopped with 1 of 2 files in place (verified; they are kept). The next run fetches the archive again from its start for the others.',
    );
    expect(warnings()).toEqual([]);
    expect(annotations()).toEqual([]);
  });

  test('a file in place with other bytes is not trusted: the archive restores it', async () => {
    const { paths, hashed, entry } = await model('wrong', { 'blobs/w.bin': 100_000 });
    expect(await client.save(paths, 'k-wrong')).toBe('saved');
    await writeFile(paths[0]!, Buffer.alloc(100_000, 1));
    const result = await client.restore({ ...entry('k-wrong'), verify: 'full' });
    expect(result).toMatchObject({ state: 'hit', missing: 0 });
    expect(result.restored.size).toBe(1);
    expect(await hashes(paths)).toEqual(hashed);
  });

  test('not enough room for the files: one warning naming the folder and sizes, no archive byte fetched', async () => {
    const { paths, entry } = await model('room', { 'blobs/w.bin': 100_000 });
    expect(await client.save(paths, 'k-room')).toBe('saved');
    await removeAll(paths);
    service.calls.length = 0;
    const asked = entry('k-room');
    // A plan naming a file larger than any disk here.
    const huge = { ...asked, blobs: asked.blobs.map((b) => ({ ...b, size: 2 ** 52 })) };
    const result = await client.restore(huge);
    expect(result).toMatchObject({ state: 'miss', found: true, missing: 1 });
    expect(archiveGets()).toBe(0);
    const lines = warnings();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^warning: Could not restore cache entry k-room \(not enough disk space under \/\S*: 4096\.0 TiB of files to restore from a [\d.]+ KiB archive, [\d.]+ [KMGT]?i?B free\); its files are downloaded instead\.$/,
    );
  });

  test("progress: the archive's size first, then its bytes as they come, then the end", async () => {
    const { paths, entry } = await model('progress', { 'blobs/w.bin': 3_000_000, 'config.json': 300 });
    expect(await client.save(paths, 'k-progress')).toBe('saved');
    await removeAll(paths);
    const told: string[] = [];
    let bytes = 0;
    const result = await client.restore({
      ...entry('k-progress'),
      progress: {
        start: (size) => told.push(`start ${size}`),
        size: (size) => told.push(`size ${size}`),
        bytes: (n) => {
          bytes += n;
        },
        end: (ok) => told.push(`end ${ok}`),
      },
    });
    expect(result.state).toBe('hit');
    const head = service.calls.find((c) => c.call === 'HEAD archive');
    expect(head).toBeDefined();
    expect(told).toEqual([`start ${result.fetched}`, 'end true']);
    expect(bytes).toBe(result.fetched);
  });
});

describe('the legacy v1 service (GitHub Enterprise Server)', () => {
  test('looks the entry up with the same version @actions/cache files it under, and restores it', async () => {
    const { paths, hashed, entry } = await model('ghes');
    expect(await client.save(paths, 'k-ghes')).toBe('saved');
    const saved = service.entry('k-ghes')!;
    await removeAll(paths);
    const asked: string[] = [];
    // GHES's artifact cache: GET {ACTIONS_CACHE_URL}_apis/artifactcache/cache?keys=…&version=…,
    // 204 on a miss, else the entry with its archive's location.
    const ghes = await startServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/archive') return void res.writeHead(200).end(saved.archive);
      asked.push(`${req.headers.authorization} ${req.headers.accept} ${url.pathname}?${url.searchParams}`);
      const hit =
        url.searchParams.get('keys') === 'k-ghes' && url.searchParams.get('version') === saved.version;
      if (!hit) return void res.writeHead(204).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ cacheKey: 'k-ghes', archiveLocation: `${ghesUrl()}/archive?sig=x` }));
    });
    const ghesUrl = () => ghes.url;
    try {
      process.env['GITHUB_SERVER_URL'] = 'https://ghes.example.com';
      process.env['ACTIONS_CACHE_URL'] = `${ghes.url}/`;
      const config = cacheService(process.env).cacheService;
      expect(config?.protocol).toBe('v1');
      const ghesClient = createActionsCache({
        log,
        service: config,
        http,
        retry: FAST_RETRY,
        connections: 4,
      });
      expect(await ghesClient.restore(entry('k-ghes'))).toMatchObject({ state: 'hit' });
      expect(await hashes(paths)).toEqual(hashed);
      expect(await ghesClient.restore(entry('k-other'))).toMatchObject({ state: 'miss', found: false });
      expect(asked).toEqual([
        `Bearer ${service.token} application/json;api-version=6.0-preview.1 /_apis/artifactcache/cache?keys=k-ghes&version=${saved.version}`,
        `Bearer ${service.token} application/json;api-version=6.0-preview.1 /_apis/artifactcache/cache?keys=k-other&version=${saved.version}`,
      ]);
      expect(warnings()).toEqual([]);
    } finally {
      await ghes.close();
    }
  });
});

describe('createNoCache', () => {
  test('restores nothing, saves nothing, says nothing', async () => {
    const none = createNoCache();
    const { paths, entry } = await model('none');
    expect(await none.restore(entry('k'))).toMatchObject({ state: 'off', missing: 2 });
    expect(await none.lookup(entry('k'))).toBe('off');
    expect(await none.save(paths, 'k')).toBe('unavailable');
    expect(service.calls).toEqual([]);
    expect(log.lines).toEqual([]);
  });
});
