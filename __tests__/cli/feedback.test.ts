import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { type BlobServer, startBlobServer } from '../helpers/blob-server.js';
import { startServer, type TestServer, tempDir } from '../helpers/http.js';
import { type LocalHub, startHub } from '../helpers/hub.js';
import { CLI_PATH, lines, requireBuiltCli, runCli } from './run.js';

// What the CLI says while it works and when things go wrong (issue 11): failures as they
// happen and once each, retries with their cause and wait, repaired files, unwritable folders.

const MiB = 1024 * 1024;
const slowBytes = randomBytes(4 * MiB);

let slow: BlobServer;
let hub: LocalHub;
let dir: Awaited<ReturnType<typeof tempDir>>;

const slowLine = () => `${slow.url}/slow.gguf sha256=${sha256Hex(slowBytes)}`;
const run = (args: string[]) =>
  runCli(['pull', '--files-dir', join(dir.path, 'files'), '--hf-cache', join(dir.path, 'hf'), ...args], {
    env: { HOME: dir.path },
    timeoutMs: 30_000,
  });

beforeAll(async () => {
  requireBuiltCli();
  // 1 MiB/s: the slow file takes about 4 s, long after any early failure.
  slow = await startBlobServer(slowBytes, () => ({ rate: MiB }));
  hub = await startHub([]);
  dir = await tempDir('model-pull-cli-feedback-');
});
afterAll(async () => {
  await Promise.all([slow?.close(), hub?.close()]);
  await dir?.remove();
});

describe('failures are told as they happen, once per model', () => {
  it('a line that fails to resolve is reported before the other model downloads', async () => {
    const result = await run([
      '--hf-endpoint',
      hub.url,
      '--connections',
      '1',
      'hf:org/absent@v9',
      slowLine(),
    ]);
    expect(result.code).toBe(1);
    const err = lines(result.stderr);
    const failure = err.findIndex((l) => l.startsWith('error: hf:org/absent@v9: '));
    const started = err.indexOf(`${slowLine()}: downloading 1 file`);
    const done = err.findIndex((l) => l.startsWith(`${slowLine()}: done, 4.0 MiB at `));
    expect(failure).toBeGreaterThanOrEqual(0);
    expect(started).toBeGreaterThan(failure);
    expect(done).toBeGreaterThan(started);
    // One error line for the model, its line named once.
    expect(err.filter((l) => l.startsWith('error: '))).toEqual([err[failure]]);
    expect(err[failure]!.split('hf:org/absent@v9')).toHaveLength(2);
  });

  it('a file that fails during the download is reported while another still downloads', async () => {
    const missing = await startServer((_req, res) => {
      res.writeHead(404);
      res.end('no such file');
    });
    try {
      const bad = `${missing.url}/gone.gguf sha256=${'e'.repeat(64)}`;
      const result = await run(['--connections', '1', bad, slowLine()]);
      expect(result.code).toBe(1);
      const err = lines(result.stderr);
      const failure = err.indexOf(
        `error: ${bad}: gone.gguf: HTTP 404 from ${missing.url}/gone.gguf: no such file`,
      );
      const done = err.findIndex((l) => l.startsWith(`${slowLine()}: done, `));
      expect(failure).toBeGreaterThanOrEqual(0);
      expect(done).toBeGreaterThan(failure);
      expect(err.filter((l) => l.startsWith('error: '))).toHaveLength(1);
    } finally {
      await missing.close();
    }
  });
});

it('says why it waits: each retry with host, cause, attempt and wait; a refused connection gives up soon', async () => {
  // Port 1 on loopback: nothing listens there, every connection is refused.
  const line = `http://127.0.0.1:1/x.gguf sha256=${'a'.repeat(64)}`;
  const result = await run([line]);
  expect(result.code).toBe(1);
  const err = lines(result.stderr);
  const retries = err.filter((l) => l.includes('retry'));
  expect(retries).toEqual([
    expect.stringMatching(/^127\.0\.0\.1:1: connection refused, retry 1\/2 in \d+\.\d s \(x\.gguf\)$/),
    expect.stringMatching(/^127\.0\.0\.1:1: connection refused, retry 2\/2 in \d+\.\d s \(x\.gguf\)$/),
  ]);
  // The waits it announced add up to seconds, not a minute.
  const waited = retries.reduce((sum, l) => sum + Number(/in (\d+\.\d) s/.exec(l)![1]), 0);
  expect(waited).toBeLessThan(10);
  expect(err.indexOf(retries[0]!)).toBeLessThan(err.findIndex((l) => l.startsWith('error: ')));
  expect(err.filter((l) => l.startsWith('error: '))).toEqual([
    expect.stringMatching(new RegExp(`^error: ${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: x\\.gguf: `)),
  ]);
});

it('a file on disk that fails verification is downloaded again, with a warning', async () => {
  const fast = await startBlobServer(Buffer.from(randomBytes(64 * 1024)));
  try {
    const bytes = await (await fetch(`${fast.url}/f.gguf`)).arrayBuffer();
    const line = `${fast.url}/f.gguf sha256=${sha256Hex(new Uint8Array(bytes))}`;
    expect((await run([line])).code).toBe(0);
    const path = join(dir.path, 'files', 'f.gguf');
    const damaged = await readFile(path);
    damaged[10] = damaged[10]! ^ 0xff;
    await writeFile(path, damaged);
    const again = await run([line]);
    expect(again.code).toBe(0);
    expect(lines(again.stderr)).toContain(
      `warning: ${line}: 1 file on disk failed verification and was downloaded again`,
    );
    expect(sha256Hex(await readFile(path))).toBe(sha256Hex(new Uint8Array(bytes)));
  } finally {
    await fast.close();
  }
});

it('a folder it cannot write is named with its option, before any request', async () => {
  const registry: TestServer = await startServer((_req, res) => {
    res.writeHead(500);
    res.end();
  });
  // Run as an unprivileged user: root writes anywhere. The test folder must be reachable by it.
  const base = join(dir.path, 'unwritable');
  await mkdir(join(base, 'ollama'), { recursive: true });
  await chmod(dir.path, 0o755);
  await chmod(base, 0o755);
  await chmod(join(base, 'ollama'), 0o555);
  try {
    const { spawn } = await import('node:child_process');
    const child = spawn(
      process.execPath,
      [
        CLI_PATH,
        'pull',
        '--ollama-models',
        join(base, 'ollama', 'models'),
        `ollama:${registry.url}/team/x:1`,
      ],
      {
        uid: 65534,
        gid: 65534,
        env: { PATH: process.env.PATH!, HOME: base },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(1);
    expect(lines(stderr).filter((l) => l.startsWith('error: '))).toEqual([
      `error: ollama:${registry.url}/team/x:1: cannot write the Ollama store ${join(base, 'ollama', 'models')} (ollama-models / --ollama-models): permission denied`,
    ]);
    expect(registry.requests).toHaveLength(0);
  } finally {
    await chmod(join(base, 'ollama'), 0o755);
    await chmod(dir.path, 0o700);
    await registry.close();
  }
});
