import { isModelPullError } from '../../../src/errors.js';
import type { HttpClient } from '../../../src/http/client.js';
import type { Identity } from '../../../src/plan.js';
import { hubEndpoint, nextLink, quotePath, resolveUrl, treeFile } from '../../../src/sources/hf/api.js';
import { hubError } from '../../../src/sources/hf/errors.js';
import { createHfSource } from '../../../src/sources/hf/source.js';
import { startServer, tempDir } from '../../helpers/http.js';
import { fileBytes, type LocalHub, randomCommit, startHub } from '../../helpers/hub.js';
import { context, hfRef, identifyLine, testHttp } from './harness.js';

const OPEN = randomCommit();
const GOOD = 'hf_accepted';

async function failure(promise: Promise<unknown>): Promise<Error & { code?: string; status?: number }> {
  const outcome = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!outcome) throw new Error('expected a failure');
  return outcome as Error;
}

describe('identify against a local hub', () => {
  let hub: LocalHub;
  let http: HttpClient;
  let cache: Awaited<ReturnType<typeof tempDir>>;
  const files = [
    { path: 'config.json', content: fileBytes('{}') },
    { path: 'a/b/weights.bin', content: fileBytes(1000), lfs: true },
    { path: 'same.json', content: fileBytes('{}') },
  ];

  beforeAll(async () => {
    const commits = { [OPEN]: files };
    hub = await startHub([
      { id: 'org/open', refs: { main: OPEN }, commits },
      { id: 'org/gated', gated: true, acceptedTokens: [GOOD], refs: { main: OPEN }, commits },
      { id: 'org/secret', private: true, acceptedTokens: [GOOD], refs: { main: OPEN }, commits },
    ]);
    http = testHttp();
    cache = await tempDir();
  });
  afterAll(async () => {
    await http.close();
    await hub.close();
    await cache.remove();
  });
  beforeEach(() => {
    hub.hub.requests.length = 0;
    hub.faults.rateLimits.length = 0;
  });
  const opts = (token?: string) => ({
    cacheRoot: cache.path,
    endpoint: hub.url,
    ...(token ? { token } : {}),
  });

  test('a gated repo without a token says to accept the terms and provide a token', async () => {
    const error = await failure(identifyLine(http, 'hf:org/gated', opts()));
    expect(isModelPullError(error, 'ERR_GATED_REPO')).toBe(true);
    expect(error.status).toBe(401);
    expect(error.message).toBe(
      `Hugging Face model org/gated is gated: accept the terms on the model page (${hub.url}/org/gated) ` +
        'and provide a token (hf-token or HF_TOKEN)',
    );
  });

  test('a gated repo with a token that was not granted gets 403 and says whose terms', async () => {
    const error = await failure(identifyLine(http, 'hf:org/gated', opts('hf_other')));
    expect(isModelPullError(error, 'ERR_GATED_REPO')).toBe(true);
    expect(error.status).toBe(403);
    expect(error.message).toBe(
      `Hugging Face model org/gated is gated: accept the terms on the model page (${hub.url}/org/gated) ` +
        'and check that the token (hf-token or HF_TOKEN) belongs to the account that accepted them',
    );
    const identity = await identifyLine(http, 'hf:org/gated', opts(GOOD));
    expect(identity.pin).toBe(OPEN);
  });

  test('private or missing repos: one message, worded by whether a token was given', async () => {
    const anonymous = await failure(identifyLine(http, 'hf:org/secret', opts()));
    expect(isModelPullError(anonymous, 'ERR_NOT_FOUND')).toBe(true);
    expect(anonymous.message).toBe(
      'Hugging Face model org/secret not found, or private: check the name, or provide a token with access (hf-token or HF_TOKEN)',
    );
    const withToken = await failure(identifyLine(http, 'hf:org/nothing', opts('hf_other')));
    expect(isModelPullError(withToken, 'ERR_NOT_FOUND')).toBe(true);
    expect(withToken.status).toBe(404);
    expect(withToken.message).toBe(
      'Hugging Face model org/nothing not found, or private: check the name, or that the token given has access',
    );
  });

  test('an unknown revision is named', async () => {
    const error = await failure(identifyLine(http, 'hf:org/open@v9', opts()));
    expect(isModelPullError(error, 'ERR_REVISION_NOT_FOUND')).toBe(true);
    expect(error.message).toBe(
      'revision "v9" not found in Hugging Face model org/open: check the branch, tag or commit',
    );
    expect(hub.hub.requests.map((r) => r.url)).toEqual(['/api/models/org/open/revision/v9']);
  });

  test('429 bursts wait as Retry-After and RateLimit t= say, then succeed', async () => {
    hub.faults.rateLimits.push({ 'retry-after': '1' }, { ratelimit: '"api";r=0;t=1' });
    // On fake time: the waits are recorded, not slept (FAST_RETRY's jitter is under 1 ms).
    const waits: number[] = [];
    const clock = { now: () => 0, sleep: async (ms: number) => void waits.push(ms) };
    const identity = await identifyLine(http, 'hf:org/open', opts(), undefined, clock);
    expect(waits).toEqual([1000, 1000]);
    expect(identity.pin).toBe(OPEN);
    expect(hub.hub.requests.slice(0, 3).map((r) => r.url)).toEqual(
      Array(3).fill('/api/models/org/open/revision/main'),
    );
  });

  test('a wait longer than the policy accepts fails at once with the wait in the message', async () => {
    hub.faults.rateLimits.push({ 'retry-after': '3600' });
    const error = await failure(identifyLine(http, 'hf:org/open', opts()));
    expect(isModelPullError(error, 'ERR_RATE_LIMITED')).toBe(true);
    expect(error.message).toBe(
      `${new URL(hub.url).host} rate-limited this runner (HTTP 429, retry after 3600 s); a token (hf-token or HF_TOKEN) raises the limit`,
    );
    expect(hub.hub.requests).toHaveLength(1);
  });

  test('429 past the retry budget gives up after retries + 1 requests', async () => {
    for (let i = 0; i < 6; i++) hub.faults.rateLimits.push({ ratelimit: '"api";r=0;t=0' });
    const error = await failure(identifyLine(http, `hf:org/open@${OPEN}`, opts()));
    expect(isModelPullError(error, 'ERR_RATE_LIMITED')).toBe(true);
    expect(hub.hub.requests).toHaveLength(4);
  });

  test('a commit needs no revision lookup; filters apply to the full recursive listing', async () => {
    const identity = await identifyLine(
      http,
      `hf:org/open@${OPEN} include=*.bin,*.json exclude=same*`,
      opts(),
    );
    expect(hub.hub.requests[0]!.url).toBe(`/api/models/org/open/tree/${OPEN}?recursive=true`);
    expect(hub.hub.requests.some((r) => r.url.includes('/revision/'))).toBe(false);
    const detail = identity.detail as { files: { path: string }[]; revision: string };
    expect(detail.files.map((f) => f.path).sort()).toEqual(['a/b/weights.bin', 'config.json']);
    expect(detail.revision).toBe(OPEN);
  });

  test('filters that select nothing fail with the filters named', async () => {
    const error = await failure(identifyLine(http, 'hf:org/open include=*.gguf exclude=x', opts()));
    expect(isModelPullError(error, 'ERR_NOT_FOUND')).toBe(true);
    expect(error.message).toBe(
      `Hugging Face model org/open has no file matching include=*.gguf exclude=x at commit ${OPEN}`,
    );
  });

  test('plan: no request, shared blobs, token bound to the hub origin, edited identities refused', async () => {
    const source = createHfSource({
      cacheRoot: cache.path,
      endpoint: `${hub.url}/`,
      token: GOOD,
    });
    const identity = await identifyLine(http, 'hf:org/open', opts());
    hub.hub.requests.length = 0;
    const entry = await source.plan(hfRef('hf:org/open'), identity, context(http));
    expect(hub.hub.requests).toHaveLength(0);
    expect(entry.files).toHaveLength(3);
    expect(entry.blobs).toHaveLength(2); // config.json and same.json hold the same bytes
    const location = await entry.blobs.find((b) => b.digest.algorithm === 'sha256')!.locate();
    expect(location).toEqual({
      url: `${hub.url}/org/open/resolve/${OPEN}/a/b/weights.bin`,
      credentials: { origin: hub.url, headers: { authorization: `Bearer ${GOOD}` } },
    });
    expect(entry.cachePaths).toHaveLength(3);
    expect(entry.cachePaths[2]).toMatch(
      new RegExp(`/models--org--open/\\.model-pull/${OPEN}\\.[0-9a-f]{16}\\.json$`),
    );
    expect(
      entry.blobs.every((b) => b.ingestDir === `${cache.path}/models--org--open/.model-pull/ingest`),
    ).toBe(true);

    const anonymous = createHfSource({ cacheRoot: cache.path, endpoint: hub.url });
    const plain = await anonymous.plan(hfRef('hf:org/open'), identity, context(http));
    expect(await plain.blobs[0]!.locate()).toEqual({ url: expect.stringContaining('/resolve/') });

    const detail = identity.detail as { files: { path: string; digest: string; size: number }[] };
    const edited = (change: (files: { path: string; digest: string; size: number }[]) => void): Identity => {
      const files = detail.files.map((f) => ({ ...f }));
      change(files);
      return { ...identity, detail: { ...identity.detail, files } };
    };
    const outside = await failure(
      anonymous.plan(
        hfRef('hf:org/open'),
        edited((f) => (f[0]!.path = '../../x')),
        context(http),
      ),
    );
    expect(isModelPullError(outside, 'ERR_LOCKFILE')).toBe(true);
    expect(outside.message).toBe(
      'the recorded identity of "hf:org/open" is invalid: a file entry has a path with an empty, "." or ".." part',
    );
    const resized = await failure(
      anonymous.plan(
        hfRef('hf:org/open'),
        edited((f) => (f[0]!.size += 1)),
        context(http),
      ),
    );
    expect(resized.message).toBe(
      'the recorded identity of "hf:org/open" is invalid: contentDigest does not match the files',
    );
  });
});

describe('Hub protocol pieces', () => {
  /** identify() of each line against a server whose tree listing is `entries`: the errors. */
  async function listingFailures(
    entries: unknown[],
    lines: string[],
  ): Promise<Awaited<ReturnType<typeof failure>>[]> {
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(entries));
    });
    const http = testHttp();
    const cache = await tempDir();
    try {
      const errors = [];
      for (const line of lines) {
        errors.push(await failure(identifyLine(http, line, { cacheRoot: cache.path, endpoint: server.url })));
      }
      return errors;
    } finally {
      await http.close();
      await server.close();
      await cache.remove();
    }
  }

  test('a listing entry that would escape the snapshot folder is refused before use', async () => {
    const [error] = await listingFailures(
      [{ type: 'file', path: 'ok/../../../evil', oid: 'a'.repeat(40), size: 1 }],
      [`hf:o/r@${randomCommit()}`],
    );
    expect(isModelPullError(error, 'ERR_BAD_MANIFEST')).toBe(true);
    expect(error!.message).toBe(
      'the file listing of Hugging Face model o/r has an invalid entry: a path with an empty, "." or ".." part ("ok/../../../evil")',
    );
  });

  test('a listing with both a file "a" and "a/b.json" is refused, whatever include= selects', async () => {
    const commit = randomCommit();
    const errors = await listingFailures(
      [
        { type: 'file', path: 'a', oid: 'a'.repeat(40), size: 1 },
        { type: 'file', path: 'c.json', oid: 'c'.repeat(40), size: 1 },
        { type: 'file', path: 'a/b.json', oid: 'b'.repeat(40), size: 1 },
      ],
      [`hf:o/r@${commit}`, `hf:o/r@${commit} include=*.json`],
    );
    for (const error of errors) {
      expect(isModelPullError(error, 'ERR_BAD_MANIFEST')).toBe(true);
      expect(error.message).toBe(
        'the file listing of Hugging Face model o/r names both a file "a" and a file under it ("a/b.json"); no snapshot can hold both',
      );
    }
  });

  const SHA1 = 'b'.repeat(40);
  const SHA256 = 'c'.repeat(64);
  test.each([
    [{ type: 'directory', path: 'd', oid: SHA1, size: 0 }, undefined],
    [
      { type: 'file', path: 'a.json', oid: SHA1, size: 5 },
      { path: 'a.json', digest: { algorithm: 'git-sha1', hex: SHA1 }, size: 5, blobId: SHA1 },
    ],
    [
      { type: 'file', path: 'w.bin', oid: SHA1, size: 9, lfs: { oid: SHA256, size: 9 } },
      { path: 'w.bin', digest: { algorithm: 'sha256', hex: SHA256 }, size: 9, blobId: SHA1 },
    ],
    [
      { type: 'file', path: 'w.bin', oid: SHA1, size: 9, lfs: { oid: SHA256, size: 8 } },
      '"w.bin" has two different sizes',
    ],
    [
      { type: 'file', path: 'w.bin', oid: SHA1, size: 9, lfs: { oid: 'C'.repeat(64) } },
      '"w.bin" has no valid LFS sha256',
    ],
    [{ type: 'file', path: 'a', oid: 'xyz', size: 1 }, '"a" has no valid git blob id'],
    [{ type: 'file', path: 'a', oid: SHA1, size: -1 }, '"a" has no valid size'],
    [{ type: 'file', path: 'a', oid: SHA1, size: 1.5 }, '"a" has no valid size'],
    [{ type: 'file', path: '/abs', oid: SHA1, size: 1 }, 'an absolute path ("/abs")'],
    [{ type: 'file', path: 'a\\b', oid: SHA1, size: 1 }, 'a path with a backslash ("a\\\\b")'],
  ])('treeFile(%j)', (raw, expected) => {
    if (typeof expected === 'string') {
      expect(() => treeFile(raw, 'X')).toThrow(`the file listing of X has an invalid entry: ${expected}`);
    } else {
      expect(treeFile(raw, 'X')).toEqual(expected);
    }
  });

  test.each([
    ['<https://h/api?cursor=2>; rel="next"', 'https://h/api?cursor=2'],
    ['<https://h/p1>; rel="prev", <https://h/p3>; rel="next"', 'https://h/p3'],
    ['</api/x?cursor=a,b>; rel=next', 'https://hub.test/api/x?cursor=a,b'],
    ['<https://h/x>; title="next"; rel="last"', undefined],
    [undefined, undefined],
  ])('nextLink(%j)', (header, expected) => {
    expect(nextLink(header, 'https://hub.test/api/models/o/r/tree/c')).toBe(expected);
  });

  test('resolve URLs quote each path segment like Python and keep a mirror path', () => {
    expect(quotePath("dir/a b+c(1)!'*~.json")).toBe('dir/a%20b%2Bc%281%29%21%27%2A~.json');
    const ep = hubEndpoint('https://mirror.example/hf/', 'tok');
    expect(resolveUrl(ep, 'space', 'o/r', 'c'.repeat(40), 'x/é.json')).toBe(
      `https://mirror.example/hf/spaces/o/r/resolve/${'c'.repeat(40)}/x/%C3%A9.json`,
    );
    expect(ep.credentials).toEqual({
      origin: 'https://mirror.example',
      headers: { authorization: 'Bearer tok' },
    });
    expect(() => hubEndpoint('not a url')).toThrow('hf-endpoint is not a valid URL');
  });

  test('a refused token (401) and a token without permission (403) are auth errors', async () => {
    const server = await startServer((req, res) => {
      const status = req.url?.includes('/revision/') ? 401 : 403;
      res.writeHead(status, { 'x-error-message': 'Invalid credentials in Authorization header' });
      res.end();
    });
    const http = testHttp();
    const cache = await tempDir();
    try {
      const options = { cacheRoot: cache.path, endpoint: server.url, token: 'hf_bad' };
      const refused = await failure(identifyLine(http, 'hf:o/r', options));
      expect(isModelPullError(refused, 'ERR_AUTH')).toBe(true);
      expect(refused.message).toBe(
        `${new URL(server.url).host} refused the token (HTTP 401: Invalid credentials in Authorization header): ` +
          'check hf-token or HF_TOKEN',
      );
      const denied = await failure(identifyLine(http, `hf:o/r@${randomCommit()}`, options));
      expect(isModelPullError(denied, 'ERR_AUTH')).toBe(true);
      expect(denied.message).toBe(
        `${new URL(server.url).host} denied access to Hugging Face model o/r (HTTP 403: Invalid credentials in ` +
          'Authorization header): the token lacks permission for this repository',
      );
      expect(server.requests.every((r) => r.headers.authorization === 'Bearer hf_bad')).toBe(true);
    } finally {
      await http.close();
      await server.close();
      await cache.remove();
    }
  });

  test('EntryNotFound from a resolve answer names the file', async () => {
    const commit = randomCommit();
    const hub = await startHub([{ id: 'o/r', refs: { main: commit }, commits: { [commit]: [] } }]);
    const http = testHttp();
    try {
      const response = await http.request(`${hub.url}/o/r/resolve/${commit}/missing.json`);
      const error = await hubError(response, {
        label: 'Hugging Face model o/r',
        pageUrl: `${hub.url}/o/r`,
        path: 'missing.json',
        tokenGiven: false,
      });
      expect(isModelPullError(error, 'ERR_NOT_FOUND')).toBe(true);
      expect(error.message).toBe('file "missing.json" not found in Hugging Face model o/r');
    } finally {
      await http.close();
      await hub.close();
    }
  });
});
