import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createNoCache } from '../../src/cache/client.js';
import type { ModelPullError } from '../../src/errors.js';
import { pull } from '../../src/pull.js';
import { MemoryLogger } from '../../src/report/logger.js';
import { buildSettings } from '../../src/settings/settings.js';
import { sourceOptions } from '../../src/sources/descriptor.js';
import { DEFAULT_SOURCES } from '../../src/sources/index.js';
import { tempDir } from '../helpers/http.js';
import { fileBytes, type LocalHub, randomCommit, startHub } from '../helpers/hub.js';

// Issue 10, item 16: a lock entry is looked up by its line, but what it names must be what the
// line names. An entry keyed `hf:acme/tiny` that records `datasets/acme/data` once pulled the
// dataset for that line; now every source re-derives its reference from the line and refuses it.

const TINY = randomCommit();
const DATA = randomCommit();
const hex = (c: string) => c.repeat(64);

let hub: LocalHub;
let dir: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  hub = await startHub([
    {
      id: 'acme/tiny',
      refs: { main: TINY },
      commits: { [TINY]: [{ path: 'a.json', content: fileBytes('{}') }] },
    },
    {
      id: 'acme/data',
      type: 'dataset',
      refs: { main: DATA },
      commits: { [DATA]: [{ path: 'rows.csv', content: fileBytes('x,y\n') }] },
    },
  ]);
  dir = await tempDir();
});
afterAll(async () => {
  await hub.close();
  await dir.remove();
});

function settingsFor(lines: string[], lockfile: string, lockMode: 'frozen' | 'update') {
  return buildSettings(
    {
      models: lines.join('\n'),
      lockfile,
      'lock-mode': lockMode,
      'hf-cache': join(dir.path, 'hf'),
      'ollama-models': join(dir.path, 'ollama'),
      'files-dir': join(dir.path, 'files'),
      'oci-dir': join(dir.path, 'oci'),
      'hf-endpoint': hub.url,
      cache: 'false',
      retries: '0',
    },
    { env: {}, home: dir.path, nameOf: (n) => n, sourceOptions: sourceOptions(DEFAULT_SOURCES) },
  );
}

const run = (lines: string[], lockfile: string, lockMode: 'frozen' | 'update' = 'frozen') =>
  pull(settingsFor(lines, lockfile, lockMode), {
    sources: DEFAULT_SOURCES,
    log: new MemoryLogger(),
    cache: createNoCache(),
  });

type LockJson = { version: 1; models: Record<string, Record<string, unknown>> };

test('an hf: entry that records another repository is refused before any request', async () => {
  const lockfile = join(dir.path, 'hf.lock');
  const written = await run(['hf:datasets/acme/data'], lockfile, 'update');
  expect(written.ok).toBe(true);
  const lock = JSON.parse(await readFile(lockfile, 'utf8')) as LockJson;
  // The dataset's entry, copied under the model's line (as a hand edit or a bad merge would).
  lock.models['hf:acme/tiny'] = { ...lock.models['hf:datasets/acme/data@main']!, ref: 'hf:acme/tiny' };
  await writeFile(lockfile, JSON.stringify(lock));

  const before = hub.requestCount();
  const report = await run(['hf:acme/tiny'], lockfile);
  expect(report.ok).toBe(false);
  const error = report.models[0]!.error as ModelPullError;
  expect(error.code).toBe('ERR_LOCKFILE');
  expect(error.reason).toBe(
    `lock file ${lockfile}: the recorded identity of "hf:acme/tiny" is invalid: it names datasets/acme/data, not acme/tiny`,
  );
  expect(error.fix).toBe(
    `look the line up again with \`model-pull lock --lockfile ${lockfile} hf:acme/tiny\``,
  );
  expect(hub.requestCount()).toBe(before);
  await expect(stat(join(dir.path, 'hf', 'models--acme--tiny'))).rejects.toThrow('ENOENT');

  // lock-mode: update looks the line up again and replaces the entry, under its canonical key.
  const refreshed = await run(['hf:acme/tiny'], lockfile, 'update');
  expect(refreshed.models[0]!.error).toBeUndefined();
  expect(refreshed.models[0]!.output).toMatchObject({ name: 'acme/tiny', digest: TINY });
  const after = JSON.parse(await readFile(lockfile, 'utf8')) as LockJson;
  expect(Object.keys(after.models)).toEqual(['hf:acme/tiny@main', 'hf:datasets/acme/data@main']);
  expect(after.models['hf:acme/tiny@main']).toMatchObject({
    ref: 'hf:acme/tiny@main',
    name: 'acme/tiny',
    digest: TINY,
  });
});

test.each([
  [
    'an hf: entry for another revision',
    'hf:acme/tiny@v2',
    (e: Record<string, unknown>) => e,
    'it is for revision main, not v2',
  ],
  [
    'an hf: entry with other filters',
    'hf:acme/tiny include=*.json',
    (e: Record<string, unknown>) => e,
    "its include= / exclude= filters are not the line's",
  ],
])('%s is refused', async (_what, line, edit, why) => {
  const lockfile = join(dir.path, `hf-${line.length}.lock`);
  expect((await run(['hf:acme/tiny'], lockfile, 'update')).ok).toBe(true);
  const lock = JSON.parse(await readFile(lockfile, 'utf8')) as LockJson;
  lock.models[line] = { ...edit(lock.models['hf:acme/tiny@main']!), ref: line };
  await writeFile(lockfile, JSON.stringify(lock));
  const report = await run([line], lockfile);
  expect((report.models[0]!.error as { code?: string }).code).toBe('ERR_LOCKFILE');
  expect((report.models[0]!.error as ModelPullError).reason).toBe(
    `lock file ${lockfile}: the recorded identity of "${line}" is invalid: ${why}`,
  );
});

// These never reach a server (the oci: ones included, issue 15): the refusal comes from the line and the entry alone (port 9 on
// loopback has no listener, so a request would fail with another message).
test.each([
  [
    'an ollama: entry for another model',
    'ollama:http://127.0.0.1:9/team/a:v1',
    { name: '127.0.0.1:9/team/b:v1', digest: `sha256:${hex('1')}`, contentDigest: hex('1') },
    'it names 127.0.0.1:9/team/b:v1, not 127.0.0.1:9/team/a:v1',
  ],
  // model-pull always writes the name: an entry without one was edited, whatever its pin says.
  [
    'an ollama: entry with an empty name',
    'ollama:http://127.0.0.1:9/team/a:v1',
    { name: '', digest: `sha256:${hex('1')}`, contentDigest: hex('1') },
    'its name is empty, not 127.0.0.1:9/team/a:v1',
  ],
  [
    'an oci: entry with an empty name',
    'oci:http://127.0.0.1:9/team/a:v1',
    { name: '', digest: `sha256:${hex('5')}`, contentDigest: hex('5'), detail: { manifest: '{}' } },
    'its name is empty, not 127.0.0.1:9/team/a:v1',
  ],
  [
    'a URL entry with an empty name',
    `http://127.0.0.1:9/m.gguf sha256=${hex('3')}`,
    { name: '', digest: `sha256:${hex('3')}`, contentDigest: hex('3') },
    'its name is empty, not http://127.0.0.1:9/m.gguf',
  ],
  [
    'an ollama: entry that breaks the line pin',
    `ollama:http://127.0.0.1:9/team/a:v1@sha256:${hex('2')}`,
    { name: '127.0.0.1:9/team/a:v1', digest: `sha256:${hex('1')}`, contentDigest: hex('1') },
    `it is pinned to sha256:${hex('1')}, the line to sha256:${hex('2')}`,
  ],
  [
    'a URL entry with other bytes',
    `http://127.0.0.1:9/m.gguf sha256=${hex('3')}`,
    { name: 'http://127.0.0.1:9/m.gguf', digest: `sha256:${hex('4')}`, contentDigest: hex('4') },
    `it names http://127.0.0.1:9/m.gguf sha256:${hex('4')}, not the line's file`,
  ],
  [
    'an oci: entry for another repository',
    'oci:http://127.0.0.1:9/team/a:v1',
    {
      name: '127.0.0.1:9/team/b:v1',
      digest: `sha256:${hex('5')}`,
      contentDigest: hex('5'),
      detail: { manifest: '{}' },
    },
    'it names 127.0.0.1:9/team/b:v1, not 127.0.0.1:9/team/a:v1',
  ],
  [
    'an oci: entry for another tag of the repository',
    'oci:http://127.0.0.1:9/team/a:v1',
    {
      name: '127.0.0.1:9/team/a:v2',
      digest: `sha256:${hex('5')}`,
      contentDigest: hex('5'),
      detail: { manifest: '{}' },
    },
    'it names 127.0.0.1:9/team/a:v2, not 127.0.0.1:9/team/a:v1',
  ],
  [
    'an oci: entry that breaks the line pin',
    `oci:http://127.0.0.1:9/team/a:v1@sha256:${hex('6')}`,
    {
      name: `127.0.0.1:9/team/a@sha256:${hex('6')}`,
      digest: `sha256:${hex('7')}`,
      contentDigest: hex('7'),
      detail: { manifest: '{}' },
    },
    `it is pinned to sha256:${hex('7')}, the line to sha256:${hex('6')}`,
  ],
  [
    'an oci: entry whose recorded index is not the one the line pins',
    `oci:http://127.0.0.1:9/team/a:v1@sha256:${hex('8')}`,
    {
      name: `127.0.0.1:9/team/a@sha256:${hex('8')}`,
      digest: `sha256:${hex('9')}`,
      contentDigest: hex('9'),
      detail: { manifest: '{}', index: '{"schemaVersion":2,"manifests":[]}' },
    },
    `it is pinned to sha256:${hex('9')}, the line to sha256:${hex('8')}`,
  ],
])('%s is refused', async (_what, line, entry, why) => {
  const lockfile = join(dir.path, `other-${line.length}-${entry.digest.slice(7, 9)}.lock`);
  const source = line.startsWith('ollama:') ? 'ollama' : line.startsWith('oci:') ? 'oci' : 'url';
  await writeFile(
    lockfile,
    JSON.stringify({ version: 1, models: { [line]: { source, ref: line, ...entry } } }),
  );
  const report = await run([line], lockfile);
  expect((report.models[0]!.error as { code?: string }).code).toBe('ERR_LOCKFILE');
  expect((report.models[0]!.error as ModelPullError).reason).toBe(
    `lock file ${lockfile}: the recorded identity of "${line}" is invalid: ${why}`,
  );
});
