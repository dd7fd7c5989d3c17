import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireBuiltCli, runCli, startCli } from '../../cli/run.js';
import { startBlobServer } from '../../helpers/blob-server.js';
import { recordedBytes } from '../../helpers/engine.js';
import { parseRange, type TestServer, tempDir } from '../../helpers/http.js';
import { FILEPATH, modelPack, pushArtifact } from '../../helpers/oci-artifacts.js';
import { type RealRegistry, sha256, startRecordingProxy, startRegistry } from '../../helpers/registry.js';

// The bundled CLI pulling an oci: artifact is killed with SIGKILL mid-download; the rerun fetches
// only what the progress record had not kept, and the folder ends exactly right.

const MiB = 1024 * 1024;
const SIZE = 24 * MiB;
/** What the storage sends before it holds its responses (the rest comes after the kill). */
const HELD = 16 * MiB;

let registry: RealRegistry;
let front: TestServer;
beforeAll(() => requireBuiltCli());
afterAll(async () => {
  await front?.close();
  await registry?.close();
});

it('resumes after kill -9, fetching only what was not recorded', async () => {
  const weights = Buffer.concat([Buffer.from('GGUF'), randomBytes(SIZE - 4)]);
  const hex = sha256(weights);
  const artifact = modelPack([
    {
      mediaType: 'application/vnd.cncf.model.weight.v1.raw',
      bytes: weights,
      annotations: { [FILEPATH]: 'big.gguf' },
    },
  ]);
  registry = await startRegistry();
  await pushArtifact(registry.url, 'team/big', 'v1', artifact);
  // The storage sends HELD bytes in all, then holds its responses open: the kill lands
  // mid-download however slowly the machine runs. Each response may send what is left of HELD
  // (up to its range), so two connections together cannot pass it.
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let budget = HELD;
  const storage = await startBlobServer(weights, (req) => {
    if (req.method !== 'GET') return undefined;
    const range = parseRange(req.headers.range, SIZE);
    const asked = range ? range.end - range.start + 1 : SIZE;
    const after = Math.min(asked, budget);
    budget -= after;
    return after === asked ? undefined : { hold: { after, release: released } };
  });
  // The registry, except that the big layer is redirected to the storage.
  front = await startRecordingProxy(registry.url, {
    answer(req, res) {
      if (req.method !== 'GET' || req.url !== `/v2/team/big/blobs/sha256:${hex}`) return false;
      res.writeHead(307, { location: `${storage.url}/big` }).end();
      return true;
    },
  });
  const dir = await tempDir('model-pull-oci-resume-');
  const ociDir = join(dir.path, 'oci');
  const record = join(ociDir, '.model-pull-ingest', `sha256-${hex}.progress.json`);
  const line = `oci:${new URL(front.url).host}/team/big:v1`;
  const args = ['pull', '--oci-dir', ociDir, '--connections', '2', '--json', line];
  try {
    const run = startCli(args, { env: { HOME: dir.path } });
    // The record is saved at least every 8 MiB received, so once HELD arrived it keeps at least
    // HELD - 8 MiB: killed then (the test's own timeout bounds the wait).
    while ((await recordedBytes(record).catch(() => 0)) < HELD - 8 * MiB) {
      if (run.child.exitCode !== null) throw new Error(`ended before the kill: ${run.stderr()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    run.child.kill('SIGKILL');
    const killed = await run.done;
    expect(killed.signal).toBe('SIGKILL');

    const kept = await recordedBytes(record);
    expect(kept).toBeGreaterThanOrEqual(HELD - 8 * MiB);
    expect(kept).toBeLessThanOrEqual(HELD);
    const sentBefore = storage.sentBytes();

    storage.setFault(undefined);
    release();
    const rerun = await runCli(args, { env: { HOME: dir.path }, timeoutMs: 60_000 });
    expect(rerun.code).toBe(0);
    const served = storage.sentBytes() - sentBefore;
    expect(served).toBeGreaterThanOrEqual(SIZE - kept);
    expect(served).toBeLessThanOrEqual(SIZE - kept + 4 * MiB);
    const [model] = JSON.parse(rerun.stdout) as { path: string; digest: string }[];
    expect(model!.digest).toBe(`sha256:${artifact.hex}`);
    expect(model!.path).toBe(
      join(ociDir, 'models', new URL(front.url).host, 'team', 'big', artifact.hex, 'big.gguf'),
    );
    expect(sha256(await readFile(model!.path))).toBe(hex);
  } finally {
    await storage.close();
    await dir.remove();
  }
});
