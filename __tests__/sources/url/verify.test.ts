import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../../src/digest.js';
import { readUrlRecords, recordsFolder, writeUrlRecord } from '../../../src/sources/url/record.js';
import { verifyFilesDir } from '../../../src/sources/url/verify.js';
import { tempDir } from '../../helpers/http.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeEach(async () => {
  dir = await tempDir('model-pull-files-dir-');
});
afterEach(async () => {
  await dir.remove();
});

const bytes = Buffer.from('weights');
const line = (file: string) => `https://h.example/${file} sha256=${sha256Hex(bytes)}`;

it('checks each recorded file against its line and names the line when it is damaged', async () => {
  await writeFile(join(dir.path, 'good.gguf'), bytes);
  await writeFile(join(dir.path, 'bad.gguf'), 'other');
  await writeFile(join(dir.path, 'unrecorded.gguf'), 'anything');
  for (const file of ['good.gguf', 'bad.gguf', 'gone.gguf'])
    await writeUrlRecord(dir.path, { line: line(file), file, sha256: sha256Hex(bytes) });
  const report = await verifyFilesDir(dir.path);
  expect(report.checkedFiles).toBe(2);
  expect(report.damaged).toEqual([
    {
      model: line('bad.gguf'),
      line: line('bad.gguf'),
      path: join(dir.path, 'bad.gguf'),
      problem: `sha256 ${sha256Hex(Buffer.from('other'))}, expected ${sha256Hex(bytes)}`,
    },
    {
      model: line('gone.gguf'),
      line: line('gone.gguf'),
      path: join(dir.path, 'gone.gguf'),
      problem: 'missing',
    },
  ]);
});

it('a planted record naming a path outside files-dir, or another file than its own name, is ignored', async () => {
  const folder = recordsFolder(dir.path);
  await mkdir(folder, { recursive: true });
  const record = (file: string) =>
    JSON.stringify({ format: 'model-pull/url-file@1', line: line(file), file, sha256: sha256Hex(bytes) });
  await writeFile(join(folder, '...json'), record('..'));
  await writeFile(join(folder, 'a.gguf.json'), record('b.gguf'));
  await writeFile(join(folder, 'c.gguf.json'), 'not json');
  await writeFile(join(folder, 'd.gguf.json'), record('d.gguf'));
  expect((await readUrlRecords(dir.path)).map((r) => r.file)).toEqual(['d.gguf']);
});
