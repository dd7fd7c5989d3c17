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
