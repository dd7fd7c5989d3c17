import { compileGlob, fileFilter } from '../../../src/sources/hf/glob.js';

// Expected values are Python's fnmatch.fnmatchcase on the same inputs.
describe('compileGlob: fnmatch semantics', () => {
  test.each([
    ['*.json', 'config.json', true],
    ['*.json', 'sub/dir/config.json', true], // `*` crosses `/`
    ['*.json', 'config.JSON', false], // case-sensitive
    ['*.json', 'config.json.bak', false], // anchored at the end
    ['config.json', 'x/config.json', false], // anchored at the start
    ['onnx/*', 'onnx/model.onnx', true],
    ['onnx/*', 'onnx/deep/model.onnx', true],
    ['onnx/', 'onnx/deep/model.onnx', true], // trailing `/` means everything below
    ['onnx/', 'onnx', false],
    ['model-?????-of-00002.safetensors', 'model-00001-of-00002.safetensors', true],
    ['model-?????-of-00002.safetensors', 'model-0001-of-00002.safetensors', false],
    ['?', '/', true],
    ['*[0-9].bin', 'pytorch_model-3.bin', true],
    ['*[0-9].bin', 'pytorch_model-x.bin', false],
    ['*[!0-9].bin', 'pytorch_model-x.bin', true],
    ['*[!0-9].bin', 'pytorch_model-3.bin', false],
    ['[]]x', ']x', true], // `]` first in a class is a member
    ['[!]]x', 'ax', true],
    ['[!]]x', ']x', false],
    ['[a-]x', '-x', true], // trailing `-` is literal
    ['[z-a]x', 'mx', false], // reversed range matches nothing
    ['[!z-a]x', 'mx', true],
    ['[a-c-e]', '-', true],
    ['[a-c-e]', 'd', false],
    ['[abc', '[abc', true], // unclosed `[` is literal
    ['a.b', 'axb', false], // `.` is literal
    ['(x)+{1}|$^', '(x)+{1}|$^', true], // regex syntax is literal
    ['dir\\*.txt', 'dir/a.txt', true], // backslash taken as `/`
    ['**', 'any/thing/at/all', true],
    ['*é*', 'café.txt', true],
    ['caf?.txt', 'café.txt', true], // `?` is one character, not one byte
  ])('%s vs %s → %s', (pattern, path, expected) => {
    expect(compileGlob(pattern)(path)).toBe(expected);
  });
});

describe('fileFilter: include and exclude', () => {
  const paths = ['config.json', 'model.safetensors', 'onnx/model.onnx', 'onnx/config.json', 'README.md'];
  test.each([
    [[], [], paths],
    [['*.json'], [], ['config.json', 'onnx/config.json']],
    [['*.json', '*.safetensors'], ['onnx/'], ['config.json', 'model.safetensors']],
    [[], ['*.md', 'onnx/*'], ['config.json', 'model.safetensors']],
    [['*.json'], ['*.json'], []],
  ])('include=%j exclude=%j', (include, exclude, expected) => {
    const keep = fileFilter(include, exclude);
    expect(paths.filter(keep)).toEqual(expected);
  });
});

// Issue 10: repository owners choose the paths. As a regular expression, `*-*-*.gguf` took 33 s on
// a 4,000-character path (cubic backtracking). The matcher counts its character comparisons: at
// most one per pattern character per path character, however the stars fall.
describe('compileGlob: hostile paths take linear time', () => {
  const dashes = '-'.repeat(4000);
  test.each([
    ['*-*-*.gguf', '4,000 dashes', dashes, false],
    ['*-*-*.gguf', 'dashes then .gguf', `${dashes}.gguf`, true],
    ['*-*-*-*-*-*-*-*-x', '4,000 dashes', dashes, false],
    ['*/*/*/*.json', '2,000 folders', 'a/'.repeat(2000), false],
    ['*/*/*/*.json', '2,000 folders then b.json', `${'a/'.repeat(2000)}b.json`, true],
    ['*a*a*a*a*a*a*b', '100,000 a', 'a'.repeat(100_000), false],
    ['*[!a]*[!a]*?*b', '100,000 a', 'a'.repeat(100_000), false],
    ['*aaaaaaaaab*', '100,000 a', 'a'.repeat(100_000), false],
  ])('%s on %s', (pattern, _label, path, expected) => {
    const meter = { comparisons: 0 };
    expect(compileGlob(pattern, meter)(path)).toBe(expected);
    expect(meter.comparisons).toBeGreaterThan(0);
    expect(meter.comparisons).toBeLessThanOrEqual(Array.from(pattern).length * path.length);
  });

  test('a listing of hostile names is filtered at once', () => {
    const names = Array.from({ length: 200 }, (_, i) => `${'-'.repeat(4000)}${i}`);
    const keep = fileFilter(['*-*-*.gguf', '*/*/*/*.json'], ['*a*b*c*d*']);
    expect(names.filter(keep)).toEqual([]);
    expect(keep(`${'-'.repeat(4000)}.gguf`)).toBe(true);
  });
});
