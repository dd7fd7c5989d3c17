import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { commitSnapshot, hfRepoPaths } from '../../src/layouts/hf.js';
import { readTrees, type TreeCacheFile, treesContent, treesPath } from '../../src/layouts/hf-trees.js';
import { tempDir } from '../helpers/http.js';
import { randomCommit } from '../helpers/hub.js';

// Expected bytes printed by Python: json.dumps({"format_version": 1, "files": {sorted}}, indent=1),
// which is how huggingface_hub's tree cache writes the file.
const PYTHON_OUTPUT =
  '{\n "format_version": 1,\n "files": {\n  "Z": {\n   "size": 0,\n   "blob_id": "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"\n  },\n  "a\\"q": {\n   "size": 4,\n   "blob_id": "ffffffffffffffffffffffffffffffffffffffff"\n  },\n  "\\u00e9/x.json": {\n   "size": 1,\n   "blob_id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"\n  },\n  "\\uff5e.txt": {\n   "size": 3,\n   "blob_id": "dddddddddddddddddddddddddddddddddddddddd",\n   "xet_hash": "EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE"\n  },\n  "\\ud83d\\ude00.bin": {\n   "size": 2,\n   "blob_id": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",\n   "lfs_sha256": "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",\n   "lfs_size": 2\n  }\n }\n}';

const FILES: TreeCacheFile[] = [
  { path: 'é/x.json', size: 1, blobId: 'a'.repeat(40) },
  { path: '\u{1F600}.bin', size: 2, blobId: 'b'.repeat(40), lfsSha256: 'c'.repeat(64) },
  { path: '\uff5e.txt', size: 3, blobId: 'd'.repeat(40), xetHash: 'E'.repeat(64) },
  { path: 'Z', size: 0, blobId: 'e'.repeat(40) },
  { path: 'a"q', size: 4, blobId: 'f'.repeat(40) },
];

describe('trees/<commit>.json bytes', () => {
  test('match Python json.dump: code point order, ASCII escapes, optional fields, no final newline', () => {
    expect(treesContent(FILES)).toBe(PYTHON_OUTPUT);
    expect(treesContent([])).toBe('{\n "format_version": 1,\n "files": {}\n}');
  });

  test('a path named __proto__ stays an ordinary key', () => {
    const content = treesContent([{ path: '__proto__', size: 1, blobId: 'a'.repeat(40) }]);
    expect(Object.keys(JSON.parse(content).files)).toEqual(['__proto__']);
  });

  test('written with the snapshot (mode 0600) and read back; anything unsound reads as absent', async () => {
    const root = await tempDir();
    try {
      const paths = hfRepoPaths(root.path, 'model', 'o/r');
      const commit = randomCommit();
      const path = treesPath(paths, commit);
      expect(path).toBe(join(root.path, 'models--o--r', 'trees', `${commit}.json`));
      await commitSnapshot({ paths, commit, files: [], listing: { path, content: PYTHON_OUTPUT } });
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      expect(await readFile(path, 'utf8')).toBe(PYTHON_OUTPUT);
      const back = await readTrees(paths, commit);
      expect(back && treesContent(back)).toBe(PYTHON_OUTPUT);

      const parsed = JSON.parse(PYTHON_OUTPUT) as {
        format_version: number;
        files: Record<string, Record<string, unknown>>;
      };
      const unsound: [string, (d: typeof parsed) => void][] = [
        ['another format', (d) => (d.format_version = 2)],
        ['a path leaving the folder', (d) => (d.files['../x'] = d.files.Z!)],
        ['an invalid size', (d) => (d.files.Z!.size = -1)],
        ['an invalid blob id', (d) => (d.files.Z!.blob_id = 'x')],
        ['an LFS size that differs', (d) => (d.files['\u{1F600}.bin']!.lfs_size = 3)],
        ['an invalid Xet hash', (d) => (d.files['\uff5e.txt']!.xet_hash = 'zz')],
      ];
      for (const [, change] of unsound) {
        const data = structuredClone(parsed);
        change(data);
        await writeFile(path, JSON.stringify(data));
        expect(await readTrees(paths, commit)).toBeUndefined();
      }
      await writeFile(path, '{"format_version": 1, "files"');
      expect(await readTrees(paths, commit)).toBeUndefined();
    } finally {
      await root.remove();
    }
  });
});
