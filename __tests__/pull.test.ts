import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createNoCache } from '../src/cache/client.js';
import { sha256Hex } from '../src/digest.js';
import { pull } from '../src/pull.js';
import { MemoryLogger } from '../src/report/logger.js';
import { buildSettings } from '../src/settings/settings.js';
import { DEFAULT_SOURCES } from '../src/sources/index.js';
import { startBlobServer } from './helpers/blob-server.js';
import { randomBlob } from './helpers/engine.js';
import { tempDir } from './helpers/http.js';

describe('pull (library) with plain URLs', () => {
  it('pulls verified files, reports each line, and keeps going past a failed one', async () => {
    const { data, hex } = randomBlob(300_000);
    const server = await startBlobServer(data, (req, res) => {
      if (req.url?.startsWith('/missing')) {
        res.writeHead(404).end('no such file');
        return true;
      }
      return undefined;
    });
    const dir = await tempDir();
    try {
      const good = `${server.url}/models/tiny.gguf sha256=${hex}`;
      const bad = `${server.url}/missing/other.gguf sha256=${'0'.repeat(64)}`;
      const settings = buildSettings(
        { models: `${good}\n${bad}`, 'files-dir': join(dir.path, 'files'), cache: 'false', retries: '0' },
        { env: {}, home: dir.path, nameOf: (n) => n },
      );
      const report = await pull(settings, {
        sources: DEFAULT_SOURCES,
        log: new MemoryLogger(),
        cache: createNoCache(),
      });
      expect(report.ok).toBe(false);
      expect(report.downloadedBytes).toBe(data.length);
      const [first, second] = report.models;
      const path = join(dir.path, 'files', 'tiny.gguf');
      expect(first!.output).toEqual({
        ref: good,
        source: 'url',
        name: `${server.url}/models/tiny.gguf`,
        digest: `sha256:${hex}`,
        path,
        size: data.length,
        cache: 'off',
        files: [{ path, digest: `sha256:${hex}`, size: data.length }],
      });
      expect(sha256Hex(await readFile(path))).toBe(hex);
      expect(second!.output).toBeUndefined();
      expect(second!.error?.message).toBe(
        `other.gguf: HTTP 404 from ${server.url}/missing/other.gguf: no such file`,
      );
    } finally {
      await server.close();
      await dir.remove();
    }
  });
});

// The pipeline runs on the clock it is given: with the default retry policy (waits of a second
// and more), two 503s cost this test no real time; the waits are recorded instead.
test('retry waits go through the injected clock, with the default policy', async () => {
  const { data, hex } = randomBlob(100_000);
  const server = await startBlobServer(data, (_req, res, n) => {
    if (n > 2) return undefined;
    res.writeHead(503).end('busy');
    return true;
  });
  const dir = await tempDir();
  try {
    const settings = buildSettings(
      { models: `${server.url}/m.gguf sha256=${hex}`, 'files-dir': dir.path, cache: 'false' },
      { env: {}, home: dir.path, nameOf: (n) => n },
    );
    const waits: number[] = [];
    const clock = { now: () => 1_000, sleep: async (ms: number) => void waits.push(ms) };
    const log = new MemoryLogger();
    const report = await pull(settings, { sources: DEFAULT_SOURCES, log, cache: createNoCache(), clock });
    expect(report.ok).toBe(true);
    expect(sha256Hex(await readFile(join(dir.path, 'm.gguf')))).toBe(hex);
    expect(waits).toHaveLength(2);
    expect(waits[0]).toBeGreaterThanOrEqual(500); // DEFAULT_RETRY_POLICY: 1 s base, full jitter above half
    expect(waits[1]).toBeGreaterThanOrEqual(1000);
    expect(report.models[0]!.durationMs).toBe(0); // measured on the same clock
  } finally {
    await server.close();
    await dir.remove();
  }
});
