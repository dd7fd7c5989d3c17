import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { fetchBlobs, fetchBlobsSettled } from '../../src/download/engine.js';
import { stagingPaths } from '../../src/download/staging.js';
import { ModelPullError } from '../../src/errors.js';
import type { HttpClient } from '../../src/http/client.js';
import { MemoryLogger } from '../../src/report/logger.js';
import type { BlobServer } from '../helpers/blob-server.js';
import { blobSpec, engineFixture, engineOptions, FAST_RETRY, randomBlob } from '../helpers/engine.js';

const KiB = 1024;
const SIZE = 1024 * KiB + 77;

describe('engine faults found in review', () => {
  const { data, hex } = randomBlob(SIZE);
  let server: BlobServer;
  let dir: { path: string; remove(): Promise<void> };
  let http: HttpClient;
  const options = (extra: object = {}) => engineOptions(http, 4, extra);

  engineFixture(data, (f) => {
    ({ server, dir, http } = f);
  });

  /** A blob the registry serves itself, located with the Bearer token `token` gives for the n-th locate. */
  const registryServed = (token: (n: number) => string) => {
    let locates = 0;
    const blob = blobSpec(dir.path, hex, SIZE, async () => {
      locates++;
      return {
        url: `${server.url}/v2/x/blobs/sha256:${hex}`,
        credentials: { origin: server.origin, headers: { authorization: `Bearer ${token(locates)}` } },
      };
    });
    return { blob, locates: () => locates };
  };

  it('gives two targets of one digest each the right bytes (one staging writer at a time)', async () => {
    const a = {
      ...blobSpec(dir.path, hex, SIZE, `${server.url}/a`),
      target: join(dir.path, 'files', 'a.gguf'),
    };
    const b = {
      ...blobSpec(dir.path, hex, SIZE, `${server.url}/b`),
      target: join(dir.path, 'files', 'b.gguf'),
    };
    const results = await fetchBlobsSettled([a, b], options());
    expect(
      results.map((r) => (r.status === 'rejected' ? String((r.reason as Error).stack) : r.status)),
    ).toEqual(['fulfilled', 'fulfilled']);
    expect(sha256Hex(await readFile(a.target))).toBe(hex);
    expect(sha256Hex(await readFile(b.target))).toBe(hex);
  });

  it('starts nothing after the signal is aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('interrupted'));
    const outcomes = await fetchBlobsSettled([blobSpec(dir.path, hex, SIZE, `${server.url}/blob`)], {
      ...options(),
      signal: controller.signal,
    });
    expect(outcomes[0]!.status).toBe('rejected');
    expect(((outcomes[0] as PromiseRejectedResult).reason as ModelPullError).code).toBe('ERR_ABORTED');
    expect(server.requests).toHaveLength(0);
  });

  it('asks the source again after a failed locate', async () => {
    let calls = 0;
    const blob = blobSpec(dir.path, hex, SIZE, async () => {
      calls++;
      if (calls === 1) throw new ModelPullError('ERR_NETWORK', 'token service hiccup');
      return { url: `${server.url}/blob` };
    });
    const [result] = await fetchBlobs([blob], options({ connections: 1 }));
    expect(sha256Hex(await readFile(result!.target))).toBe(hex);
    expect(calls).toBe(2);
  });

  it('renews an expired token when the registry itself serves the bytes (401, same origin)', async () => {
    let current = 'token-1';
    server.setFault((req, res, n) => {
      if (n === 3) current = 'token-2'; // the first token ages out after two requests
      if (req.headers.authorization !== `Bearer ${current}`) {
        res.writeHead(401).end('token expired');
        return true;
      }
      return undefined;
    });
    const { blob, locates } = registryServed(() => current);
    const [result] = await fetchBlobs([blob], options());
    expect(sha256Hex(await readFile(result!.target))).toBe(hex);
    expect(locates()).toBeGreaterThanOrEqual(2);
  });

  it('gives up with ERR_URL_REFRESH_LIMIT when every fresh URL is refused without a byte landing', async () => {
    // The registry's own 401 with credentials: each location the source mints is refused too.
    server.setFault((_req, res) => {
      res.writeHead(401).end('token expired');
      return true;
    });
    const { blob, locates } = registryServed((n) => `token-${n}`);
    const error = await fetchBlobs([blob], options({ connections: 1 })).catch((e: unknown) => e);
    expect((error as ModelPullError).code).toBe('ERR_URL_REFRESH_LIMIT');
    expect((error as Error).message).toBe('test blob: the download URL kept expiring (5 fresh URLs refused)');
    // The first location and five fresh ones, each asked once: no request after giving up.
    expect(locates()).toBe(6);
    expect(server.requests).toHaveLength(6);
  });

  it('a progress record whose write a kill cut short is cleared when the blob commits', async () => {
    const blob = blobSpec(dir.path, hex, SIZE, `${server.url}/blob`);
    const { record } = stagingPaths(blob.ingestDir, blob.digest);
    await mkdir(blob.ingestDir, { recursive: true });
    // What writeFileAtomic leaves when killed between writing its temporary file and the rename.
    await writeFile(join(blob.ingestDir, `.${basename(record)}.00112233aabb.tmp`), '{"version":1,"segm');
    const [result] = await fetchBlobs([blob], options());
    expect(sha256Hex(await readFile(result!.target))).toBe(hex);
    expect(await readdir(blob.ingestDir)).toEqual([]);
  });

  it('a progress record that cannot be saved costs resume distance only: logged at debug, the blob completes', async () => {
    const blob = blobSpec(dir.path, hex, SIZE, `${server.url}/blob`);
    const { record } = stagingPaths(blob.ingestDir, blob.digest);
    // A folder in the record's place: every rename onto it fails.
    await mkdir(join(record, 'in-the-way'), { recursive: true });
    const log = new MemoryLogger();
    const [result] = await fetchBlobs([blob], options({ log, flushBytes: 64 * KiB, connections: 1 }));
    expect(sha256Hex(await readFile(result!.target))).toBe(hex);
    const debug = log.lines.filter((l) =>
      l.startsWith('debug: test blob: could not save download progress: '),
    );
    expect(debug.length).toBeGreaterThan(0);
    expect(log.lines.filter((l) => !l.startsWith('debug: '))).toEqual([]);
  });

  it('restarts a whole-body stream that breaks, when the server ignores Range', async () => {
    server.setFault((_req, _res, n) =>
      n === 1 ? { ignoreRange: true, resetAfter: 200 * KiB } : { ignoreRange: true },
    );
    const [result] = await fetchBlobs(
      [blobSpec(dir.path, hex, SIZE, `${server.url}/blob`)],
      options({ connections: 1 }),
    );
    expect(sha256Hex(await readFile(result!.target))).toBe(hex);
  });

  it('asks a blob for another place once: after one fallback, failures there are final', async () => {
    // A source that always has "another place" (a mirror that is its own origin would): every
    // place serves other bytes than the digest, so the blob must end, not go back and forth.
    const other = randomBlob(SIZE);
    let gets = 0;
    server.setFault(() => {
      gets++;
      return undefined;
    });
    let fallbacks = 0;
    const blob = {
      ...blobSpec(dir.path, other.hex, SIZE, `${server.url}/blob`),
      fallback: () => {
        fallbacks++;
        return true;
      },
    };
    await expect(fetchBlobs([blob], options({ connections: 1 }))).rejects.toThrow(
      `test blob: sha256 mismatch from ${new URL(server.url).host}: expected ${other.hex}, got ${hex}`,
    );
    expect(fallbacks).toBe(1);
    // One try at the first place, then the other place's own two.
    expect(gets).toBe(3);
  });

  it('gives up with ERR_RANGE_IGNORED when whole-body streams keep breaking', async () => {
    server.setFault(() => ({ ignoreRange: true, resetAfter: 100 * KiB }));
    const error = await fetchBlobs(
      [blobSpec(dir.path, hex, SIZE, `${server.url}/blob`)],
      options({ connections: 1 }),
    ).catch((e: unknown) => e);
    expect((error as ModelPullError).code).toBe('ERR_RANGE_IGNORED');
    expect((error as Error).message).toBe(
      `test blob: the server ignores Range and its connection kept breaking; gave up after ${FAST_RETRY.retries + 1} full restarts`,
    );
  });
});
