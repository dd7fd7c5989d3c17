import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatBytes } from '../../src/report/format.js';
import { createRunner, type Runner } from '../helpers/action.js';
import type { TestServer } from '../helpers/http.js';
import { fileBytes, type HubFileSpec, type LocalHub, randomCommit, startHub } from '../helpers/hub.js';
import {
  generateModel,
  pushModel,
  type RealRegistry,
  sha256,
  startRecordingProxy,
  startRegistry,
} from '../helpers/registry.js';

/**
 * The bundled action with the mirror inputs, end to end on loopback (docs/scale-out.md): a
 * warming job pulls an Ollama model from its registry and an HF repo from the Hub, writes the
 * lock file and pushes both to the org's registry (`mirror-to`, the real docker-registry); a job
 * on a fresh machine then reads them through `registry-mirror` and `hf-oci-mirror` with that
 * lock, and neither the origin registry nor the Hub hears a single request. The outputs and the
 * job summary say which host served the bytes, and what the push sent.
 */

const KiB = 1024;
const COMMIT = randomCommit();
const FILES: HubFileSpec[] = [
  { path: 'config.json', content: fileBytes('{"model_type":"tiny"}') },
  { path: 'model.safetensors', content: fileBytes(300 * KiB), lfs: true },
];
const model = generateModel(400 * KiB);
const modelBytes = [model.config, ...model.layers].reduce((n, b) => n + b.bytes.length, 0);
const hfBytes = FILES.reduce((n, f) => n + f.content.length, 0);

let upstream: RealRegistry;
let origin: TestServer;
let org: RealRegistry;
let hub: LocalHub;
const runners: Runner[] = [];

beforeAll(async () => {
  upstream = await startRegistry();
  await pushModel(upstream.url, 'team/tiny', 'v1', model);
  origin = await startRecordingProxy(upstream.url);
  org = await startRegistry();
  hub = await startHub([{ id: 'Team/Tiny-Model', refs: { main: COMMIT }, commits: { [COMMIT]: FILES } }]);
});
afterAll(async () => {
  for (const r of runners) await r.dispose();
  await hub?.close();
  await org?.close();
  await origin?.close();
  await upstream?.close();
});

async function runner(): Promise<Runner> {
  const r = await createRunner({ timeoutMs: 60_000 });
  runners.push(r);
  return r;
}

test('a warming job mirrors with mirror-to; a fresh job reads through registry-mirror and hf-oci-mirror, asking the origins nothing', async () => {
  const originHost = new URL(origin.url).host;
  const orgHost = new URL(org.url).host;
  const ollamaLine = `ollama:${originHost}/team/tiny:v1`;
  const hfLine = 'hf:Team/Tiny-Model';
  const models = `${ollamaLine}\n${hfLine}`;

  const warm = await runner();
  const first = await warm.run({
    models,
    'hf-endpoint': hub.url,
    cache: 'false',
    lockfile: 'model-pull.lock',
    'lock-mode': 'update',
    'mirror-to': orgHost,
  });
  expect(first.errors()).toEqual([]);
  expect(first.code).toBe(0);
  // The warming job downloaded from the origins, and says so.
  const firstFrom = JSON.parse(first.outputs['downloaded-from']!) as Record<string, Record<string, number>>;
  expect(firstFrom[ollamaLine]).toEqual({ [originHost]: modelBytes });
  expect(Object.values(firstFrom[hfLine]!).reduce((a, b) => a + b, 0)).toBe(hfBytes);
  expect(Object.keys(firstFrom[hfLine]!)).not.toContain(orgHost);
  expect(first.summary).toContain('**Pushed (mirror-to)**');
  expect(first.summary).toContain(
    `- \`${ollamaLine}\` → \`${orgHost}/team/tiny:v1\`: 4 of 4 blobs uploaded (`,
  );
  expect(first.summary).toContain(
    `- \`${hfLine}\` → \`${orgHost}/team/tiny-model:${COMMIT}\`, \`${orgHost}/team/tiny-model:main\`: `,
  );

  // Another machine: an empty store, the lock file from the repository, the mirrors.
  const fresh = await runner();
  await copyFile(join(warm.workspace, 'model-pull.lock'), join(fresh.workspace, 'model-pull.lock'));
  const originBefore = origin.requests.length;
  const hubBefore = hub.requestCount();
  const second = await fresh.run({
    models,
    'hf-endpoint': hub.url,
    cache: 'false',
    lockfile: 'model-pull.lock',
    'registry-mirror': `${originHost}=${org.url}`,
    'hf-oci-mirror': orgHost,
  });
  expect(second.errors()).toEqual([]);
  expect(second.warnings()).toEqual([]);
  expect(second.code).toBe(0);
  expect(origin.requests.slice(originBefore)).toEqual([]);
  expect(hub.requestCount()).toBe(hubBefore);
  expect(JSON.parse(second.outputs['downloaded-from']!)).toEqual({
    [ollamaLine]: { [orgHost]: modelBytes },
    [hfLine]: { [orgHost]: hfBytes },
  });
  expect(second.outputs['downloaded-bytes']).toBe(String(modelBytes + hfBytes));
  expect(second.summary).toContain(
    `**Downloaded from**\n\n- \`${orgHost}\`: ${formatBytes(modelBytes + hfBytes)} (\`${ollamaLine}\`, \`${hfLine}\`)`,
  );

  // The same verified bytes as from the origins, where the consumers look.
  const blobs = join(fresh.home, '.ollama', 'models', 'blobs');
  for (const blob of [model.config, ...model.layers])
    expect((await readFile(join(blobs, `sha256-${sha256(blob.bytes)}`))).equals(blob.bytes)).toBe(true);
  const snapshot = join(
    fresh.home,
    '.cache',
    'huggingface',
    'hub',
    'models--Team--Tiny-Model',
    'snapshots',
    COMMIT,
  );
  for (const f of FILES)
    expect(Buffer.from(await readFile(join(snapshot, f.path))).equals(Buffer.from(f.content))).toBe(true);
  const parsed = JSON.parse(second.outputs.models!) as { ref: string; digest: string }[];
  expect(parsed.map((m) => m.ref)).toEqual([ollamaLine, hfLine]);
  expect(parsed[1]!.digest).toBe(COMMIT);
});
