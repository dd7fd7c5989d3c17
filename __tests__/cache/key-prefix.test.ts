import { cacheKey, MAX_KEY_LENGTH } from '../../src/cache/key.js';
import { buildSettings } from '../../src/settings/settings.js';

// One rule for cache-key-prefix: what the settings accept always makes a valid key, for any
// source kind the list allows (at most 32 characters).
const settingsWith = (prefix: string) =>
  buildSettings(
    { models: 'x', 'cache-key-prefix': prefix },
    { env: {}, home: '/h', nameOf: (n) => `input "${n}"` },
  );

test('the longest accepted prefix with the longest kind still fits the Actions cache', () => {
  const settings = settingsWith('p'.repeat(200));
  const key = cacheKey(settings.cacheKeyPrefix, {
    source: 'k'.repeat(32),
    ref: 'x',
    name: 'x',
    pin: 'x',
    contentDigest: 'a'.repeat(64),
  });
  expect(key.length).toBeLessThanOrEqual(MAX_KEY_LENGTH);
});

test.each(['p'.repeat(201), 'a b', 'a\tb', 'a\u0007b', 'a,b'])(
  'the settings refuse %j, naming the rule',
  (prefix) => {
    expect(() => settingsWith(prefix)).toThrow(
      'input "cache-key-prefix" must be at most 200 characters without commas or spaces',
    );
  },
);
