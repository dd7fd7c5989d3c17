import { isModelPullError } from '../../../src/errors.js';
import { OLLAMA_MODEL_LAYER, parseManifest, weightsLayer } from '../../../src/sources/ollama/manifest.js';
import { descriptor, generateModel, MANIFEST_TYPE, sha256 } from '../../helpers/registry.js';

const NAME = 'h/n/m:t';
const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);

type Doc = Record<string, unknown>;
const layer = (hex: string, size = 10, mediaType = OLLAMA_MODEL_LAYER) => ({
  mediaType,
  digest: `sha256:${hex}`,
  size,
});
const base = (): Doc => ({
  schemaVersion: 2,
  mediaType: MANIFEST_TYPE,
  config: layer(A, 5, 'application/vnd.docker.container.image.v1+json'),
  layers: [layer(B, 100), layer(C, 7, 'application/vnd.ollama.image.template')],
});
const bytes = (doc: unknown) => Buffer.from(JSON.stringify(doc));

function failure(input: Uint8Array): string {
  try {
    parseManifest(input, NAME);
  } catch (error) {
    expect(isModelPullError(error, 'ERR_BAD_MANIFEST')).toBe(true);
    return (error as Error).message;
  }
  throw new Error('parseManifest accepted a bad manifest');
}

describe('parseManifest', () => {
  test('a generated Ollama manifest: descriptors, total size, weights, exact text', () => {
    const model = generateModel(1000);
    const m = parseManifest(model.manifest, NAME);
    expect(Buffer.from(m.text, 'utf8').equals(model.manifest)).toBe(true);
    expect(m.config.hex).toBe(sha256(model.config.bytes));
    expect(m.layers.map((l) => `sha256:${l.hex}`)).toEqual(model.layers.map((l) => descriptor(l).digest));
    const total = [model.config, ...model.layers].reduce((n, b) => n + b.bytes.length, 0);
    expect(m.totalSize).toBe(total);
    expect(weightsLayer(m).hex).toBe(sha256(model.layers[0]!.bytes));
  });

  test('OCI manifest type and a manifest without mediaType are accepted', () => {
    const oci = { ...base(), mediaType: 'application/vnd.oci.image.manifest.v1+json' };
    expect(parseManifest(bytes(oci), NAME).layers).toHaveLength(2);
    const { mediaType: _drop, ...bare } = base();
    expect(parseManifest(bytes(bare), NAME).config.size).toBe(5);
  });

  test('without a model layer the largest layer is the weights', () => {
    const doc = { ...base(), layers: [layer(B, 3, 'x/small'), layer(C, 9, 'x/large')] };
    expect(weightsLayer(parseManifest(bytes(doc), NAME)).hex).toBe(C);
  });

  test('a BOM is kept in the text so it re-encodes to the served bytes, then refused as not JSON', () => {
    const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes(base())]);
    expect(failure(withBom)).toBe(`manifest of ${NAME} is invalid: it is not UTF-8 JSON`);
  });

  const P = `manifest of ${NAME} is invalid:`;
  test.each<[string, unknown, string]>([
    ['not JSON', '{"schemaVersion":2,', `${P} it is not UTF-8 JSON`],
    ['an array', [], `${P} it is not a JSON object`],
    ['schemaVersion 1', { ...base(), schemaVersion: 1 }, `${P} unsupported schemaVersion 1 (expected 2)`],
    [
      'no schemaVersion',
      { ...base(), schemaVersion: undefined },
      `${P} unsupported schemaVersion undefined (expected 2)`,
    ],
    [
      'an image index',
      { ...base(), mediaType: 'application/vnd.oci.image.index.v1+json' },
      `${P} it is an image index (application/vnd.oci.image.index.v1+json), not a model manifest`,
    ],
    ['a foreign type', { ...base(), mediaType: 'text/plain' }, `${P} unsupported mediaType "text/plain"`],
    ['no config', { ...base(), config: undefined }, `${P} config is missing or not an object`],
    ['no layers', { ...base(), layers: [] }, `${P} it lists no layers`],
    [
      'a short digest',
      { ...base(), layers: [layer('abc')] },
      `${P} layer 1 has an invalid digest "sha256:abc" (expected sha256: and 64 lowercase hex)`,
    ],
    [
      'a path in the digest',
      { ...base(), layers: [{ ...layer(B), digest: `sha256:../../${B.slice(6)}` }] },
      `${P} layer 1 has an invalid digest "sha256:../../${B.slice(6)}" (expected sha256: and 64 lowercase hex)`,
    ],
    [
      'another algorithm',
      { ...base(), config: { ...layer(A), digest: `sha512:${A}${A}` } },
      `${P} config has an invalid digest "sha512:${A}${A.slice(0, 8)}… (expected sha256: and 64 lowercase hex)`,
    ],
    ['a negative size', { ...base(), layers: [layer(B, -1)] }, `${P} layer 1 has an invalid size -1`],
    ['a fractional size', { ...base(), layers: [layer(B, 1.5)] }, `${P} layer 1 has an invalid size 1.5`],
    [
      'a string size',
      { ...base(), layers: [layer(B, '10' as unknown as number)] },
      `${P} layer 1 has an invalid size "10"`,
    ],
    [
      'an absurd size',
      { ...base(), layers: [layer(B, 2 ** 50 + 1)] },
      `${P} layer 1 has an absurd size ${2 ** 50 + 1} (over 2^50 bytes)`,
    ],
    [
      'an absurd total',
      { ...base(), layers: [layer(B, 2 ** 49), layer(C, 2 ** 49 + 1)] },
      `${P} its blobs add up to ${2 ** 50 + 6} bytes, over the 2^50 limit`,
    ],
    [
      'a duplicate layer',
      { ...base(), layers: [layer(B), layer(C), layer(B)] },
      `${P} layer 3 repeats the digest of layer 1 (sha256:${B})`,
    ],
    [
      'a layer equal to the config',
      { ...base(), layers: [layer(A)] },
      `${P} layer 1 repeats the digest of the config (sha256:${A})`,
    ],
    [
      'a layer without mediaType',
      { ...base(), layers: [{ digest: `sha256:${B}`, size: 1 }] },
      `${P} layer 1 has no mediaType`,
    ],
  ])('refuses %s', (_what, doc, message) => {
    expect(failure(typeof doc === 'string' ? Buffer.from(doc) : bytes(doc))).toBe(message);
  });

  test('invalid UTF-8 is refused (the text could not round-trip to the served bytes)', () => {
    expect(failure(Buffer.from([0x7b, 0xff, 0x7d]))).toBe(`${P} it is not UTF-8 JSON`);
  });
});
