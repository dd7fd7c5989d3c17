import { isModelPullError } from '../../../src/errors.js';
import { splitLine } from '../../../src/refs/line.js';
import { isCommitId, parseHfRef } from '../../../src/sources/hf/ref.js';

const COMMIT = '7ae557604adf67be50417f59c2c2f167def9a775';

describe('parseHfRef: valid lines', () => {
  test.each([
    ['hf:Qwen/Qwen2.5-0.5B', { type: 'model', repo: 'Qwen/Qwen2.5-0.5B', revision: 'main' }],
    [`hf:Qwen/Qwen2.5-0.5B@${COMMIT}`, { type: 'model', repo: 'Qwen/Qwen2.5-0.5B', revision: COMMIT }],
    ['hf:owner/repo@v1.0', { type: 'model', repo: 'owner/repo', revision: 'v1.0' }],
    ['hf:owner/repo@refs/pr/12', { type: 'model', repo: 'owner/repo', revision: 'refs/pr/12' }],
    ['hf:owner/repo@feature/x_y-z', { type: 'model', repo: 'owner/repo', revision: 'feature/x_y-z' }],
    ['hf:datasets/owner/data.set@main', { type: 'dataset', repo: 'owner/data.set', revision: 'main' }],
    [
      'hf:datasets/nyu-mll/glue@refs/convert/parquet',
      { type: 'dataset', repo: 'nyu-mll/glue', revision: 'refs/convert/parquet' },
    ],
    ['hf:spaces/_u/app', { type: 'space', repo: '_u/app', revision: 'main' }],
    [`hf:o/${'n'.repeat(96)}`, { type: 'model', repo: `o/${'n'.repeat(96)}`, revision: 'main' }],
  ])('%s', (line, expected) => {
    const ref = parseHfRef(splitLine(line));
    expect({ type: ref.type, repo: ref.repo, revision: ref.revision }).toEqual(expected);
    expect(ref.line).toBe(line);
    expect(ref.include).toEqual([]);
    expect(ref.exclude).toEqual([]);
  });

  test('include= and exclude= split on commas, order kept', () => {
    const ref = parseHfRef(splitLine('  hf:o/r include=*.json,*.safetensors exclude=onnx/,*[!a].bin  '));
    expect(ref.line).toBe('hf:o/r include=*.json,*.safetensors exclude=onnx/,*[!a].bin');
    expect(ref.include).toEqual(['*.json', '*.safetensors']);
    expect(ref.exclude).toEqual(['onnx/', '*[!a].bin']);
  });

  test('isCommitId accepts only 40 lowercase hex', () => {
    expect(isCommitId(COMMIT)).toBe(true);
    expect(isCommitId(COMMIT.toUpperCase())).toBe(false);
    expect(isCommitId(COMMIT.slice(1))).toBe(false);
  });
});

describe('parseHfRef: invalid lines fail with the line quoted and the reason', () => {
  test.each([
    ['hf:', 'the repository is missing: expected hf:owner/repo'],
    ['hf:gpt2', '"gpt2" is not owner/repo (for a dataset write hf:datasets/owner/repo)'],
    ['hf:a/b/c', '"a/b/c" is not owner/repo (for a dataset write hf:datasets/owner/repo)'],
    ['hf:/repo', 'the owner in "/repo" is empty'],
    ['hf:owner/', 'the repository name in "owner/" is empty'],
    ['hf:own er/x', 'expected key=value after the reference, got "er/x"'],
    ['hf:ow$ner/x', 'the owner "ow$ner" may hold only letters, digits, "_", "-" and "."'],
    ['hf:owner/-repo', 'the repository name "-repo" must start and end with a letter, digit or "_"'],
    ['hf:owner/repo.', 'the repository name "repo." must start and end with a letter, digit or "_"'],
    ['hf:owner/re--po', 'the repository name "re--po" may not contain "--" or ".."'],
    ['hf:owner/re..po', 'the repository name "re..po" may not contain "--" or ".."'],
    ['hf:owner/repo.git', 'the repository name "repo.git" may not end with ".git"'],
    [`hf:o/${'n'.repeat(97)}`, `the repository name "${'n'.repeat(57)}..." is longer than 96 characters`],
    ['hf:owner/repo@', 'the revision after "@" is empty'],
    ['hf:owner/repo@a..b', 'the revision "a..b" may not contain ".."'],
    ['hf:owner/repo@../../x', 'the revision "../../x" may not contain ".."'],
    ['hf:owner/repo@a~1', 'the revision "a~1" may hold only letters, digits, "/", "_", "-", "+" and "."'],
    [
      'hf:owner/repo@main@{1}',
      'the revision "main@{1}" may hold only letters, digits, "/", "_", "-", "+" and "."',
    ],
    ['hf:owner/repo@/main', 'the revision "/main" has an empty part between "/"'],
    ['hf:owner/repo@a//b', 'the revision "a//b" has an empty part between "/"'],
    [
      'hf:owner/repo@x.lock',
      'the revision "x.lock" has a part starting with "." or "-", or ending with ".lock"',
    ],
    [
      'hf:owner/repo@.hidden',
      'the revision ".hidden" has a part starting with "." or "-", or ending with ".lock"',
    ],
    ['hf:owner/repo@-x', 'the revision "-x" has a part starting with "." or "-", or ending with ".lock"'],
    ['hf:owner/repo@v1.', 'the revision "v1." may not end with "."'],
    ['hf:owner/repo@refs/pr/x', '"refs/pr/x" is not a pull request revision: expected refs/pr/<number>'],
    ['hf:owner/repo@refs/pr/0', '"refs/pr/0" is not a pull request revision: expected refs/pr/<number>'],
    ['hf:o/r include=', 'include= holds an empty pattern (write include=GLOB[,GLOB…])'],
    ['hf:o/r exclude=a,,b', 'exclude= holds an empty pattern (write exclude=GLOB[,GLOB…])'],
    ['hf:o/r sha256=abc', 'unknown option sha256= (allowed here: include=, exclude=)'],
    ['ollama:o/r', 'expected a reference starting with hf:'],
  ])('%s', (line, reason) => {
    let caught: unknown;
    try {
      parseHfRef(splitLine(line));
    } catch (error) {
      caught = error;
    }
    expect(isModelPullError(caught, 'ERR_BAD_REFERENCE')).toBe(true);
    expect((caught as Error).message).toBe(`invalid model line "${line.trim()}": ${reason}`);
  });
});
