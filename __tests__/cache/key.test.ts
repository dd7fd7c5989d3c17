import { createHash } from 'node:crypto';
import { cacheKey, LAYOUT_VERSION, MAX_KEY_LENGTH } from '../../src/cache/key.js';
import { ModelPullError } from '../../src/errors.js';
import type { Identity, SourceKind } from '../../src/plan.js';

function identity(source: SourceKind, content: string, contentDigest?: string): Identity {
  const hex = createHash('sha256').update(content).digest('hex');
  return {
    source,
    ref: `${source}:${content}`,
    name: content,
    pin: `sha256:${hex}`,
    contentDigest: contentDigest ?? hex,
  };
}

function thrown(fn: () => unknown): ModelPullError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ModelPullError) return error;
    throw error;
  }
  throw new Error('expected a ModelPullError');
}

describe('cacheKey', () => {
  test.each<SourceKind>(['ollama', 'hf', 'url'])('is <prefix>-<layout>-%s-<content digest>', (source) => {
    const id = identity(source, 'weights');
    expect(cacheKey('model-pull', id)).toBe(`model-pull-${LAYOUT_VERSION}-${source}-${id.contentDigest}`);
  });

  test('names the bytes: other content, other key; sha256: form, same key', () => {
    const a = identity('hf', 'a');
    const b = identity('hf', 'b');
    expect(cacheKey('p', a)).not.toBe(cacheKey('p', b));
    const prefixed = identity('hf', 'a', `sha256:${a.contentDigest}`);
    expect(cacheKey('p', prefixed)).toBe(cacheKey('p', a));
  });

  test('accepts the longest prefix that fits 512 characters and refuses one more', () => {
    const id = identity('ollama', 'x');
    const room = MAX_KEY_LENGTH - `-${LAYOUT_VERSION}-ollama-${id.contentDigest}`.length;
    expect(cacheKey('p'.repeat(room), id)).toHaveLength(MAX_KEY_LENGTH);
    const error = thrown(() => cacheKey('p'.repeat(room + 1), id));
    expect(error.code).toBe('ERR_BAD_INPUT');
    expect(error.message).toBe(
      `cache-key-prefix: the cache key would be ${MAX_KEY_LENGTH + 1} characters, more than the ${MAX_KEY_LENGTH} ` +
        `the Actions cache accepts; use a prefix of at most ${room} characters`,
    );
  });

  test.each([
    [
      'a,b',
      'cache-key-prefix: "a,b" contains a comma or a control character, which Actions cache keys cannot hold',
    ],
    [
      'a\nb',
      'cache-key-prefix: "a\\nb" contains a comma or a control character, which Actions cache keys cannot hold',
    ],
    ['  ', 'cache-key-prefix: must not be empty'],
  ])('refuses the prefix %j naming the input', (prefix, message) => {
    const error = thrown(() => cacheKey(prefix, identity('url', 'f')));
    expect(error.code).toBe('ERR_BAD_INPUT');
    expect(error.message).toBe(message);
  });

  test('refuses a content digest that is not sha256 hex', () => {
    const error = thrown(() => cacheKey('p', identity('hf', 'x', 'abc,def')));
    expect(error.code).toBe('ERR_BAD_INPUT');
    expect(error.message).toBe(
      'hf:x: cannot name its cache entry, the content digest "abc,def" is not a sha256 hex digest',
    );
  });
});
