import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isModelPullError } from '../../src/errors.js';
import {
  blobPath,
  commitOllamaModel,
  ingestDir,
  manifestPath,
  readStoredManifest,
} from '../../src/layouts/ollama.js';
import { tempDir } from '../helpers/http.js';
import { generateModel, sha256 } from '../helpers/registry.js';

const NAME = { host: '127.0.0.1:5000', namespace: 'team', model: 'tiny', tag: 'q4' };
let dir: { path: string; remove(): Promise<void> };

beforeEach(async () => {
  dir = await tempDir('model-pull-ollama-layout-');
});
afterEach(async () => {
  await dir.remove();
});

/** Places the blobs as the engine would (0600 and two hours old, like a cache restore). */
async function placeBlobs(root: string) {
  const model = generateModel(4096);
  const blobs = [model.config, ...model.layers].map((b) => ({
    hex: sha256(b.bytes),
    size: b.bytes.length,
    b,
  }));
  await mkdir(join(root, 'blobs'), { recursive: true });
  const old = new Date(Date.now() - 2 * 3600_000);
  for (const { hex, b } of blobs) {
    await writeFile(blobPath(root, hex), b.bytes, { mode: 0o600 });
    await utimes(blobPath(root, hex), old, old);
  }
  return { model, blobs: blobs.map(({ hex, size }) => ({ hex, size })) };
}

async function failure(promise: Promise<unknown>): Promise<Error & { code: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isModelPullError(error)).toBe(true);
  return error as Error & { code: string };
}

describe('Ollama store layout', () => {
  test('paths follow blobs/sha256-<hex> and manifests/<host>/<ns>/<model>/<tag>', () => {
    const hex = 'f'.repeat(64);
    expect(blobPath('/m', hex)).toBe(`/m/blobs/sha256-${hex}`);
    expect(manifestPath('/m', NAME)).toBe('/m/manifests/127.0.0.1:5000/team/tiny/q4');
    expect(ingestDir('/m')).toBe('/m/.model-pull-ingest');
    expect(() => blobPath('/m', '../x')).toThrow('not a sha256 digest: "../x"');
  });

  test('commit: blobs 0644 with mtime now, folders 0755 under a strict umask, manifest bytes exact', async () => {
    const root = join(dir.path, 'models');
    const { model, blobs } = await placeBlobs(root);
    const now = new Date(Date.now() + 5000);
    const previous = process.umask(0o077);
    try {
      await commitOllamaModel(root, NAME, model.manifest, blobs, now);
    } finally {
      process.umask(previous);
    }
    for (const { hex } of blobs) {
      const s = await stat(blobPath(root, hex));
      expect(s.mode & 0o777).toBe(0o644);
      expect(Math.abs(s.mtimeMs - now.getTime())).toBeLessThan(1000);
    }
    const file = manifestPath(root, NAME);
    expect((await readFile(file)).equals(model.manifest)).toBe(true);
    expect((await stat(file)).mode & 0o777).toBe(0o644);
    for (const folder of ['manifests', 'manifests/127.0.0.1:5000', 'manifests/127.0.0.1:5000/team/tiny']) {
      expect((await stat(join(root, folder))).mode & 0o777).toBe(0o755);
    }
    // Nothing but digests in blobs/ (Ollama deletes other names), no temp file left behind.
    expect((await readdir(join(root, 'blobs'))).every((n) => /^sha256-[0-9a-f]{64}$/.test(n))).toBe(true);
    expect(await readdir(ingestDir(root))).toEqual([]);
    expect((await readStoredManifest(root, NAME))?.equals(model.manifest)).toBe(true);
  });

  test('a missing blob stops the commit before the manifest exists', async () => {
    const root = dir.path;
    const { model, blobs } = await placeBlobs(root);
    const missing = { hex: 'd'.repeat(64), size: 3 };
    const error = await failure(commitOllamaModel(root, NAME, model.manifest, [...blobs, missing]));
    expect(error.code).toBe('ERR_NOT_FOUND');
    expect(error.message).toBe(
      `blob ${blobPath(root, missing.hex)} is missing; cannot write the manifest of 127.0.0.1:5000/team/tiny:q4`,
    );
    expect(await readStoredManifest(root, NAME)).toBeUndefined();
  });

  test('a blob of the wrong size stops the commit before the manifest exists', async () => {
    const root = dir.path;
    const { model, blobs } = await placeBlobs(root);
    const wrong = blobs.map((b, i) => (i === 1 ? { ...b, size: b.size + 1 } : b));
    const error = await failure(commitOllamaModel(root, NAME, model.manifest, wrong));
    expect(error.code).toBe('ERR_SIZE_MISMATCH');
    expect(error.message).toBe(
      `blob ${blobPath(root, blobs[1]!.hex)} has ${blobs[1]!.size} bytes, the manifest of 127.0.0.1:5000/team/tiny:q4 says ${blobs[1]!.size + 1}`,
    );
    expect(await readStoredManifest(root, NAME)).toBeUndefined();
  });

  test('a second commit replaces the manifest atomically with the new bytes', async () => {
    const root = dir.path;
    const { model, blobs } = await placeBlobs(root);
    await commitOllamaModel(root, NAME, Buffer.from('old'), blobs);
    await commitOllamaModel(root, NAME, model.manifest, blobs);
    expect((await readStoredManifest(root, NAME))?.equals(model.manifest)).toBe(true);
    expect(await readdir(join(root, 'manifests', NAME.host, 'team', 'tiny'))).toEqual(['q4']);
  });
});
