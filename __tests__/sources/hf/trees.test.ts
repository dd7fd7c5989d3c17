import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isModelPullError } from '../../../src/errors.js';
import type { HttpClient } from '../../../src/http/client.js';
import type { Identity } from '../../../src/plan.js';
import { tempDir } from '../../helpers/http.js';
import { fileBytes, type HubFileSpec, type LocalHub, randomCommit, startHub } from '../../helpers/hub.js';
import { pullIdentity, pullLine, testHttp } from './harness.js';

// trees/<commit>.json (issue 13): the commit's whole listing, whatever include= selected, from the
// Hub's listing or from the identity a lock file recorded, never shrunk by a narrower pull.

const COMMIT = randomCommit();
const FILES: HubFileSpec[] = [
  { path: 'config.json', content: fileBytes('{"a":1}') },
  { path: 'tokenizer.json', content: fileBytes('{"t":[]}') },
  { path: 'model.safetensors', content: fileBytes(50 * 1024), lfs: true },
  { path: 'onnx/model.onnx', content: fileBytes(20 * 1024), lfs: true },
];

type TreeRow = { path: string; digest: string; size: number; blobId?: string };

describe('trees/<commit>.json from the hf source', () => {
  let hub: LocalHub;
  let http: HttpClient;
  let cache: Awaited<ReturnType<typeof tempDir>>;
  const folder = () => join(cache.path, 'models--org--m');
  const treesFile = () => join(folder(), 'trees', `${COMMIT}.json`);
  const opts = () => ({ cacheRoot: cache.path, endpoint: hub.url });
  const treeRequests = () => hub.hub.requests.filter((r) => r.url.includes('/tree/')).length;

  beforeAll(async () => {
    hub = await startHub([{ id: 'org/m', refs: { main: COMMIT }, commits: { [COMMIT]: FILES } }], {
      pageSize: 1000,
    });
    http = testHttp();
  });
  afterAll(async () => {
    await http.close();
    await hub.close();
  });
  beforeEach(async () => {
    cache = await tempDir();
    hub.hub.requests.length = 0;
  });
  afterEach(async () => {
    await cache.remove();
  });

  test('an include= pull lists every file; another include= of the commit keeps the same listing', async () => {
    const json = await pullLine(http, `hf:org/m@${COMMIT} include=*.json`, opts());
    const full = await readFile(treesFile(), 'utf8');
    const listed = Object.keys(JSON.parse(full).files as object);
    expect(listed).toEqual(['config.json', 'model.safetensors', 'onnx/model.onnx', 'tokenizer.json']);
    expect(json.entry.files).toHaveLength(2);
    const tree = (json.identity.detail as { tree: TreeRow[] }).tree;
    expect(tree.map((r) => r.path)).toEqual(listed);
    expect(tree.filter((r) => r.blobId).map((r) => r.path)).toEqual(['model.safetensors', 'onnx/model.onnx']);

    await pullLine(http, `hf:org/m@${COMMIT} include=onnx/`, opts());
    expect(await readFile(treesFile(), 'utf8')).toBe(full);
    expect((await stat(treesFile())).mode & 0o777).toBe(0o600);
  });

  test('a pinned pull complete on disk with its listing makes no request; without the listing it asks once', async () => {
    const line = `hf:org/m@${COMMIT} include=*.safetensors`;
    await pullLine(http, line, opts());
    const full = await readFile(treesFile(), 'utf8');
    hub.hub.requests.length = 0;
    await pullLine(http, line, opts());
    expect(hub.hub.requests).toHaveLength(0);

    await rm(treesFile());
    await pullLine(http, line, opts());
    expect(treeRequests()).toBe(1);
    expect(await readFile(treesFile(), 'utf8')).toBe(full);
  });

  test('a recorded identity writes the listing with no request, even with the Hub gone', async () => {
    const line = `hf:org/m@${COMMIT} include=*.json`;
    const first = await pullLine(http, line, opts());
    const full = await readFile(treesFile(), 'utf8');
    await rm(join(folder(), 'trees'), { recursive: true });
    await rm(join(folder(), 'snapshots'), { recursive: true });
    hub.hub.requests.length = 0;

    const again = await pullIdentity(http, line, first.identity, {
      ...opts(),
      endpoint: 'http://127.0.0.1:1',
    });
    expect(again.results.every((r) => r.reused)).toBe(true);
    expect(hub.hub.requests).toHaveLength(0);
    expect(await readFile(treesFile(), 'utf8')).toBe(full);
  });

  test('an older lock entry without a listing: a fitting file on disk stays, else one listing, else a warning', async () => {
    const line = `hf:org/m@${COMMIT} include=*.json`;
    const first = await pullLine(http, line, opts());
    const full = await readFile(treesFile(), 'utf8');
    const { tree: _tree, ...detail } = first.identity.detail as Record<string, unknown>;
    const old: Identity = { ...first.identity, detail };

    hub.hub.requests.length = 0;
    const kept = await pullIdentity(http, line, old, opts());
    expect(hub.hub.requests).toHaveLength(0);
    expect(kept.log.lines.filter((l) => l.includes('trees/'))).toEqual([]);
    expect(await readFile(treesFile(), 'utf8')).toBe(full);

    await rm(treesFile());
    const listed = await pullIdentity(http, line, old, opts());
    expect(treeRequests()).toBe(1);
    expect(await readFile(treesFile(), 'utf8')).toBe(full);
    expect(listed.log.lines).toContain(
      `${line}: the recorded identity has no file listing (written by an older model-pull); listed commit ${COMMIT} once. Refresh the lock file to skip this request`,
    );

    // A listing on disk that does not fit (a file missing) is not trusted: the Hub is asked.
    const partial = JSON.parse(full) as { files: Record<string, unknown> };
    delete partial.files['tokenizer.json'];
    await writeFile(treesFile(), JSON.stringify(partial));
    hub.hub.requests.length = 0;
    await pullIdentity(http, line, old, opts());
    expect(treeRequests()).toBe(1);
    expect(await readFile(treesFile(), 'utf8')).toBe(full);

    await rm(treesFile());
    const offline = await pullIdentity(http, line, old, { ...opts(), endpoint: 'http://127.0.0.1:1' });
    await expect(stat(treesFile())).rejects.toThrow(/ENOENT/);
    expect(await readFile(join(folder(), 'snapshots', COMMIT, 'config.json'), 'utf8')).toBe('{"a":1}');
    const warning = offline.log.lines.find((l) => l.startsWith('warning: '));
    expect(warning).toMatch(
      new RegExp(
        `^warning: ${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: trees/${COMMIT}\\.json not written \\(.+\\): huggingface_hub will not load this snapshot offline by its commit\\. Refresh the lock file with this model-pull to record the listing$`,
      ),
    );
  });

  test('a recorded listing that does not fit its files is refused before any request', async () => {
    const line = `hf:org/m@${COMMIT} include=*.json`;
    const first = await pullLine(http, line, opts());
    const detail = first.identity.detail as { tree: TreeRow[] };
    const edit = (change: (tree: TreeRow[]) => void): Identity => {
      const tree = detail.tree.map((r) => ({ ...r }));
      change(tree);
      return { ...first.identity, detail: { ...first.identity.detail, tree } };
    };
    const cases: [(tree: TreeRow[]) => void, string][] = [
      [(t) => t.splice(0, 1), 'the tree does not list "config.json"'],
      [(t) => (t[0]!.size += 1), 'the tree lists "config.json" with other content'],
      [(t) => t.push({ ...t[0]!, path: 'extra.json' }), 'the filters select other files from the tree'],
      [(t) => t.push({ ...t[0]! }), '"config.json" is listed twice in the tree'],
      [
        (t) => t.push({ ...t[0]!, path: 'config.json/x' }),
        'the tree names both a file "config.json" and a file under it ("config.json/x"); no snapshot can hold both',
      ],
      [(t) => (t[1]!.blobId = 'nope'), '"model.safetensors" has an invalid git id'],
      [(t) => (t[0]!.path = '../x'), 'a tree entry has a path with an empty, "." or ".." part'],
    ];
    hub.hub.requests.length = 0;
    for (const [change, why] of cases) {
      const error = await pullIdentity(http, line, edit(change), opts()).catch((e: unknown) => e as Error);
      expect(isModelPullError(error, 'ERR_LOCKFILE')).toBe(true);
      expect((error as Error).message).toBe(`the recorded identity of "${line}" is invalid: ${why}`);
    }
    expect(hub.hub.requests).toHaveLength(0);
  });
});
