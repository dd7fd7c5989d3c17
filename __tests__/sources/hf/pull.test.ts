import { readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scanCacheDir } from '@huggingface/hub';
import { gitBlobSha1Hex, sha256Hex } from '../../../src/digest.js';
import { isModelPullError } from '../../../src/errors.js';
import type { HttpClient } from '../../../src/http/client.js';
import { MemoryLogger } from '../../../src/report/logger.js';
import { tempDir } from '../../helpers/http.js';
import {
  fileBytes,
  type HubFileSpec,
  type LocalHub,
  lfsPointer,
  randomCommit,
  startHub,
} from '../../helpers/hub.js';
import { identifyLine, pullLine, testHttp } from './harness.js';

const TOKEN = 'hf_test_token_123';
const MAIN = randomCommit();
const OLD = randomCommit();
const DATA = randomCommit();

const FILES: HubFileSpec[] = [
  { path: 'config.json', content: fileBytes('{"model_type":"test"}') },
  { path: 'tokenizer.json', content: fileBytes('{"vocab":[]}') },
  { path: 'README.md', content: fileBytes('# test model\n') },
  { path: 'model.safetensors', content: fileBytes(300 * 1024), lfs: true },
  { path: 'onnx/model q.onnx', content: fileBytes(40 * 1024), lfs: true },
  { path: 'copy/config.json', content: fileBytes('{"model_type":"test"}') },
];
const BIG: HubFileSpec = { path: 'big.safetensors', content: fileBytes(1024 * 1024), lfs: true };

const etag = (f: HubFileSpec) => (f.lfs ? sha256Hex(f.content) : gitBlobSha1Hex(f.content));

/** trees/<commit>.json as huggingface_hub writes it (json.dump, indent=1, sorted paths, ASCII). */
function expectedTrees(files: readonly HubFileSpec[]): string {
  const entries = [...files]
    .sort((a, b) => (a.path < b.path ? -1 : 1))
    .map((f) => {
      const size = f.content.length;
      const lfs = f.lfs ? { lfs_sha256: sha256Hex(f.content), lfs_size: size } : {};
      return [f.path, { size, blob_id: gitBlobSha1Hex(f.lfs ? lfsPointer(f.content) : f.content), ...lfs }];
    });
  return JSON.stringify({ format_version: 1, files: Object.fromEntries(entries) }, null, 1);
}

describe('hf source end to end against a local hub and CDN', () => {
  let hub: LocalHub;
  let http: HttpClient;
  let cache: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    hub = await startHub([
      {
        id: 'org/model',
        private: true,
        acceptedTokens: [TOKEN],
        refs: { main: MAIN, 'refs/pr/1': OLD },
        commits: { [MAIN]: FILES, [OLD]: [FILES[0]!, BIG] },
      },
      { type: 'dataset', id: 'org/data', refs: { v1: DATA }, commits: { [DATA]: [FILES[0]!, FILES[3]!] } },
    ]);
    http = testHttp();
  });
  afterAll(async () => {
    await http.close();
    await hub.close();
  });
  beforeEach(async () => {
    cache = await tempDir();
    hub.hub.requests.length = 0;
    hub.cdn.requests.length = 0;
    hub.faults.expireFirstUrl = false;
    hub.faults.corrupt.clear();
  });
  afterEach(async () => {
    await cache.remove();
  });

  test('pulls every file verified into a layout scanCacheDir accepts; the token never reaches the CDN', async () => {
    const { identity, entry } = await pullLine(http, 'hf:org/model', {
      cacheRoot: cache.path,
      endpoint: hub.url,
      token: TOKEN,
    });
    const folder = join(cache.path, 'models--org--model');
    const snap = join(folder, 'snapshots', MAIN);
    expect(identity.pin).toBe(MAIN);
    expect(identity.name).toBe('org/model');
    expect(entry.path).toBe(snap);
    expect(entry.size).toBe(FILES.reduce((s, f) => s + f.content.length, 0));
    // Same bytes at two paths share one blob.
    expect(entry.blobs).toHaveLength(FILES.length - 1);

    for (const f of FILES) {
      const bytes = await readFile(join(snap, f.path));
      expect(sha256Hex(bytes)).toBe(sha256Hex(f.content));
      const depth = f.path.split('/').length - 1;
      expect(await readlink(join(snap, f.path))).toBe(`${'../'.repeat(depth + 2)}blobs/${etag(f)}`);
      const listed = entry.files.find((m) => m.path === join(snap, f.path));
      expect(listed).toEqual({
        path: join(snap, f.path),
        digest: f.lfs ? `sha256:${etag(f)}` : `git-sha1:${etag(f)}`,
        size: f.content.length,
      });
    }
    expect(await readFile(join(folder, 'refs', 'main'), 'utf8')).toBe(MAIN);
    expect((await readdir(folder)).sort()).toEqual(['.model-pull', 'blobs', 'refs', 'snapshots', 'trees']);
    expect((await readdir(join(folder, 'snapshots'))).sort()).toEqual([MAIN]);
    // The commit's listing as huggingface_hub caches it: every file, sorted, git ids from the tree.
    expect(await readdir(join(folder, 'trees'))).toEqual([`${MAIN}.json`]);
    const trees = join(folder, 'trees', `${MAIN}.json`);
    expect((await stat(trees)).mode & 0o777).toBe(0o600);
    expect(await readFile(trees, 'utf8')).toBe(expectedTrees(FILES));

    const scan = await scanCacheDir(cache.path);
    expect(scan.warnings).toEqual([]);
    expect(scan.repos.map((r) => r.id)).toEqual([{ name: 'org/model', type: 'model' }]);
    const revision = scan.repos[0]!.revisions[0]!;
    expect([revision.commitOid, revision.refs]).toEqual([MAIN, ['main']]);
    const topLevel = FILES.filter((f) => !f.path.includes('/'));
    expect(revision.files.map((f) => [f.path, f.blob.size]).sort()).toEqual(
      topLevel.map((f) => [join(snap, f.path), f.content.length]).sort(),
    );

    // Every hub request carried the token; the CDN (another origin) got none.
    expect(hub.hub.requests.every((r) => r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(hub.cdn.requests.length).toBeGreaterThanOrEqual(2);
    expect(hub.cdnAuthorizations()).toEqual([]);
    // 6 files + 2 folders at 2 entries a page: 4 pages, each asked once.
    expect(hub.hub.requests.filter((r) => r.url.includes('/tree/')).length).toBe(4);
    expect(hub.hub.requests.filter((r) => r.url.includes('/resolve/')).map((r) => r.url)).toContain(
      `/org/model/resolve/${MAIN}/onnx/model%20q.onnx`,
    );
  });

  test('a large file comes in parallel ranges, and an expired signed URL is resolved again', async () => {
    hub.faults.expireFirstUrl = true;
    const { entry, results } = await pullLine(http, 'hf:org/model@refs/pr/1 include=big.*', {
      cacheRoot: cache.path,
      endpoint: hub.url,
      token: TOKEN,
    });
    expect(results.map((r) => r.downloadedBytes)).toEqual([BIG.content.length]);
    const bytes = await readFile(join(entry.path, 'big.safetensors'));
    expect(sha256Hex(bytes)).toBe(sha256Hex(BIG.content));
    const cdn = hub.cdn.requests.filter((r) => r.url.startsWith(`/blobs/${etag(BIG)}`));
    expect(cdn.some((r) => r.url.includes('sig=1'))).toBe(true); // refused as expired
    expect(cdn.filter((r) => r.headers.range !== undefined).length).toBeGreaterThan(1);
    const resolves = hub.hub.requests.filter((r) => r.url.endsWith('/big.safetensors'));
    expect(resolves.length).toBeGreaterThanOrEqual(2);
    expect(await readFile(join(cache.path, 'models--org--model', 'refs', 'refs', 'pr', '1'), 'utf8')).toBe(
      OLD,
    );
    expect(hub.cdnAuthorizations()).toEqual([]);
  });

  test('a second pull of a pinned commit makes no request at all', async () => {
    const line = `hf:org/model@${MAIN} include=*.json,*.safetensors exclude=copy/`;
    const options = { cacheRoot: cache.path, endpoint: hub.url, token: TOKEN };
    const first = await pullLine(http, line, options);
    expect(first.entry.files.map((f) => f.path.slice(first.entry.path.length + 1)).sort()).toEqual([
      'config.json',
      'model.safetensors',
      'tokenizer.json',
    ]);
    const before = hub.requestCount();
    expect(before).toBeGreaterThan(0);

    for (const verify of ['full', 'size'] as const) {
      const second = await pullLine(http, line, { ...options, verify });
      expect(hub.requestCount()).toBe(before);
      expect(second.identity).toEqual(first.identity);
      expect(second.results.every((r) => r.reused)).toBe(true);
    }
    expect((await scanCacheDir(cache.path)).repos[0]!.revisions[0]!.refs).toEqual([]);

    // Another filter at the same commit is another record: that one asks the hub.
    await identifyLine(http, `hf:org/model@${MAIN} include=*.md`, options);
    expect(hub.requestCount()).toBeGreaterThan(before);
  });

  test('offline reuse trusts sizes, and the engine catches and repairs a damaged blob', async () => {
    const line = `hf:org/model@${MAIN} include=*.json`;
    const options = { cacheRoot: cache.path, endpoint: hub.url, token: TOKEN };
    const first = await pullLine(http, line, options);
    const blob = first.entry.blobs[0]!.target;
    const original = await readFile(blob);
    const damaged = Buffer.from(original);
    damaged[0] = damaged[0]! ^ 1;
    await writeFile(blob, damaged); // same size: only hashing notices

    const before = hub.requestCount();
    await identifyLine(http, line, { ...options, verify: 'full' });
    expect(hub.requestCount()).toBe(before); // one read of each file, by the engine, not two
    const repaired = await pullLine(http, line, { ...options, verify: 'full' });
    expect(hub.requestCount()).toBeGreaterThan(before);
    expect(repaired.results[0]).toMatchObject({ reused: false, replaced: true });
    expect(Buffer.compare(await readFile(blob), original)).toBe(0);
  });

  test('a corrupted CDN byte fails with a digest mismatch and links nothing', async () => {
    hub.faults.corrupt.add(etag(FILES[3]!));
    const error = await pullLine(http, 'hf:org/model include=model.safetensors', {
      cacheRoot: cache.path,
      endpoint: hub.url,
      token: TOKEN,
    }).catch((e: unknown) => e);
    expect(isModelPullError(error, 'ERR_DIGEST_MISMATCH')).toBe(true);
    expect((error as Error).message).toContain(`expected ${etag(FILES[3]!)}`);
    await expect(readFile(join(cache.path, 'models--org--model', 'blobs', etag(FILES[3]!)))).rejects.toThrow(
      /ENOENT/,
    );
    await expect(readFile(join(cache.path, 'models--org--model', 'refs', 'main'))).rejects.toThrow(/ENOENT/);
  });

  test('a dataset lands in datasets--owner--name with its ref', async () => {
    const { identity, entry } = await pullLine(http, 'hf:datasets/org/data@v1', {
      cacheRoot: cache.path,
      endpoint: hub.url,
    });
    expect(identity.name).toBe('datasets/org/data');
    expect(entry.path).toBe(join(cache.path, 'datasets--org--data', 'snapshots', DATA));
    expect(hub.hub.requests[0]!.url).toBe('/api/datasets/org/data/revision/v1');
    expect(hub.hub.requests.some((r) => r.url === `/datasets/org/data/resolve/${DATA}/config.json`)).toBe(
      true,
    );
    expect(hub.hub.requests.every((r) => r.headers.authorization === undefined)).toBe(true);
    const scan = await scanCacheDir(cache.path);
    expect(scan.repos.map((r) => [r.id, r.revisions.map((v) => v.refs)])).toEqual([
      [{ name: 'org/data', type: 'dataset' }, [['v1']]],
    ]);
  });
});

describe('a branch when the hub cannot be reached', () => {
  test('refs/<branch> naming a complete snapshot is used with a warning; without one the error stands', async () => {
    const commit = randomCommit();
    const hub = await startHub([
      { id: 'o/r', refs: { main: commit }, commits: { [commit]: FILES.slice(0, 2) } },
    ]);
    const http = testHttp();
    const cache = await tempDir();
    try {
      const options = { cacheRoot: cache.path, endpoint: hub.url };
      await pullLine(http, 'hf:o/r', options);
      await hub.close(); // connections to its port are now refused

      const log = new MemoryLogger();
      const identity = await identifyLine(http, 'hf:o/r', options, log);
      expect(identity.pin).toBe(commit);
      expect(log.lines.filter((l) => l.startsWith('warning: '))).toEqual([
        expect.stringMatching(
          new RegExp(
            `^warning: hf:o/r: network error from .*; using main = ${commit} from the local cache, which may be behind the Hub$`,
          ),
        ),
      ]);

      const error = await identifyLine(http, 'hf:o/r include=*.md', options).catch((e: unknown) => e);
      expect(isModelPullError(error, 'ERR_CONNECTION_REFUSED')).toBe(true);
    } finally {
      await http.close();
      await hub.close();
      await cache.remove();
    }
  });
});
