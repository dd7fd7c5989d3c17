import { join } from 'node:path';
import { lines, requireBuiltCli, runCli, startCli } from '../cli/run.js';
import { forward, startServer, type TestServer, tempDir } from '../helpers/http.js';
import {
  type GeneratedModel,
  generateModel,
  pushModel,
  type RealRegistry,
  send,
  sha256,
  startRegistry,
  storedBlobs,
} from '../helpers/registry.js';

// Issue 16: "kill the push mid-upload and rerun: it resumes and the registry holds exactly one
// copy of each blob". The bundled CLI mirrors a model whose weights take three 64 MiB chunks; the
// org registry's front holds the second chunk (the registry has whole chunks only), the CLI is
// killed with SIGKILL there, and the rerun goes on from the registry's count.

const MiB = 1024 * 1024;
const CHUNK = 64 * MiB;

let source: RealRegistry;
let org: RealRegistry;
let model: GeneratedModel;
let home: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  requireBuiltCli();
  [source, org] = await Promise.all([startRegistry(), startRegistry()]);
  model = generateModel(150 * MiB);
  await pushModel(source.url, 'team/big', 'v1', model);
  home = await tempDir('model-pull-mirror-kill-');
}, 120_000);
afterAll(async () => {
  await Promise.all([source?.close(), org?.close()]);
  await home?.remove();
});

/** Passes requests to the registry; while `hold` is on, the second PATCH is kept, never passed. */
async function startHoldingFront(
  target: string,
): Promise<TestServer & { held: Promise<void>; release(): void }> {
  let patches = 0;
  let holding = true;
  let onHeld = (): void => undefined;
  const held = new Promise<void>((resolve) => {
    onHeld = resolve;
  });
  const server = await startServer(
    (req, res) =>
      new Promise<void>((resolve) => {
        if (req.method === 'PATCH' && holding && ++patches === 2) {
          req.pause();
          onHeld();
          req.socket.on('close', resolve);
          return;
        }
        req.pipe(forward(target, req, res, resolve));
      }),
  );
  const release = () => {
    holding = false;
  };
  return Object.assign(server, { held, release });
}

test('SIGKILL mid-push, then the same command: the upload resumes at the registry count, one copy of each blob', async () => {
  const front = await startHoldingFront(org.url);
  try {
    const host = new URL(front.url).host;
    const line = `ollama:${source.url}/team/big:v1`;
    const args = ['mirror', '--to', `${host}/mirror`, '--ollama-models', join(home.path, 'store'), line];
    const env = { HOME: home.path };
    const first = startCli(args, { env, timeoutMs: 120_000 });
    await Promise.race([front.held, first.done]);
    first.child.kill('SIGKILL');
    const killed = await first.done;
    expect(killed.signal).toBe('SIGKILL');
    const open = (await storedBlobs(org)).uploads;
    expect(open).toHaveLength(1);

    front.release();
    front.requests.length = 0;
    const second = await runCli(args, { env, timeoutMs: 120_000 });
    expect(second.code).toBe(0);
    const weights = model.layers[0]!.bytes;
    const hex = sha256(weights);
    expect(lines(second.stderr)).toContain(
      `${line} model: resuming the upload to ${host} at byte ${CHUNK} of ${weights.length}`,
    );
    // Only the rest went over the wire, from the registry's count on.
    const ranges = front.requests.filter((r) => r.method === 'PATCH').map((r) => r.headers['content-range']);
    expect(ranges).toEqual([`${CHUNK}-${2 * CHUNK - 1}`, `${2 * CHUNK}-${weights.length - 1}`]);
    expect(front.requests.filter((r) => r.method === 'POST')).toHaveLength(0);

    const stored = await storedBlobs(org);
    expect(stored.uploads).toEqual([]);
    const blobs = [model.config, ...model.layers].map((b) => sha256(b.bytes));
    expect(stored.blobs).toEqual([...blobs, sha256(model.manifest)].sort());
    const back = await send('GET', `${org.url}/v2/mirror/big/blobs/sha256:${hex}`);
    expect(sha256(back.body)).toBe(hex);
  } finally {
    await front.close();
  }
}, 240_000);
