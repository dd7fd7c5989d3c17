import { isModelPullError } from '../../../src/errors.js';
import {
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  parseImageManifest,
} from '../../../src/registry/manifest.js';
import { artifactFormat, layoutOf, notAModel, singleGguf } from '../../../src/sources/oci/formats.js';
import { memberPath, PathClaims, unsafePathReason } from '../../../src/sources/oci/paths.js';
import { pickModel } from '../../../src/sources/oci/select.js';

const hexOf = (n: number) => n.toString(16).padStart(64, '0');
let next = 1;
const layer = (mediaType: string, annotations?: Record<string, string>, size = 10) => ({
  mediaType,
  digest: `sha256:${hexOf(next++)}`,
  size,
  ...(annotations ? { annotations } : {}),
});
const manifestOf = (config: string, layers: object[], artifactType?: string): ImageManifest =>
  parseImageManifest(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        ...(artifactType ? { artifactType } : {}),
        config: layer(config),
        layers,
      }),
    ),
    'test/model',
  );
const path = (p: string) => ({ 'org.cncf.model.filepath': p });

describe('layer placement', () => {
  test('ModelPack: raw layers are files at their path, tar layers archives by compression', () => {
    const m = manifestOf('application/vnd.cncf.model.config.v1+json', [
      layer('application/vnd.cncf.model.weight.v1.raw', path('w/model-q4.gguf')),
      layer('application/vnd.cncf.model.weight.v1.raw', path('mmproj-model-f16.gguf')),
      layer('application/vnd.cncf.model.weight.config.v1.tar', path('config.json')),
      layer('application/vnd.cncf.model.doc.v1.tar+gzip'),
      layer('application/vnd.cncf.model.code.v1.tar+zstd'),
      layer('application/vnd.cncf.model.dataset.v1.raw', path('data/train.jsonl')),
      layer('application/vnd.cncf.model.doc.v1.raw'),
      layer('application/vnd.cncf.model.weight.v1.gguf', path('typed.gguf')),
    ]);
    expect(artifactFormat(m)).toBe('modelpack');
    const { placements } = layoutOf(m);
    expect(
      placements.map((p) => [
        p.kind,
        p.kind === 'file' ? p.path : p.kind === 'archive' ? p.compression : p.why,
      ]),
    ).toEqual([
      ['file', 'w/model-q4.gguf'],
      ['file', 'mmproj-model-f16.gguf'],
      ['archive', 'none'],
      ['archive', 'gzip'],
      ['archive', 'zstd'],
      ['file', 'data/train.jsonl'],
      ['blob', 'a application/vnd.cncf.model.doc.v1.raw layer without org.cncf.model.filepath'],
      ['file', 'typed.gguf'],
    ]);
    // A projector is GGUF but not the weights; two weight GGUFs leave no single file.
    expect(placements.map((p) => p.kind === 'file' && p.gguf)).toEqual([
      true,
      false,
      false,
      false,
      false,
      false,
      false,
      true,
    ]);
    expect(singleGguf(placements)).toBeUndefined();
    expect(singleGguf(placements.slice(0, 7))).toMatchObject({ path: 'w/model-q4.gguf' });
  });

  test('an Ollama model or a container image is refused with what it is', () => {
    const image = manifestOf('application/vnd.oci.image.config.v1+json', [
      layer('application/vnd.oci.image.layer.v1.tar+gzip'),
    ]);
    expect(notAModel(image)).toBe(
      'it is a container image (config application/vnd.oci.image.config.v1+json), not a model artifact',
    );
    const ollama = manifestOf('application/vnd.docker.container.image.v1+json', [
      layer('application/vnd.ollama.image.model'),
    ]);
    expect(notAModel(ollama)).toBe('it is an Ollama model: pull it with an ollama: line');
    const oras = manifestOf('application/vnd.oci.empty.v1+json', [
      layer('text/plain', { 'org.opencontainers.image.title': 'a.txt' }),
    ]);
    expect(notAModel(oras)).toBeUndefined();
  });

  test('ModelPack is told by its artifact type or its config', () => {
    const w = [layer('application/vnd.cncf.model.weight.v1.raw', path('a'))];
    expect(
      artifactFormat(
        manifestOf('application/vnd.oci.empty.v1+json', w, 'application/vnd.cncf.model.manifest.v1+json'),
      ),
    ).toBe('modelpack');
    expect(artifactFormat(manifestOf('application/vnd.docker.ai.model.config.v0.2+json', w))).toBe('docker');
    expect(artifactFormat(manifestOf('application/vnd.docker.container.image.v1+json', w))).toBe('unknown');
  });

  test('Docker Model Runner: names from annotations (v0.2) or as its runner names them (v0.1)', () => {
    const m = manifestOf('application/vnd.docker.ai.model.config.v0.1+json', [
      layer('application/vnd.docker.ai.gguf.v3'),
      layer('application/vnd.docker.ai.gguf.v3'),
      layer('application/vnd.docker.ai.mmproj'),
      layer('application/vnd.docker.ai.license'),
      layer('application/vnd.docker.ai.license', path('NOTICE')),
      layer('application/vnd.docker.ai.chat.template.jinja'),
      layer('application/vnd.docker.ai.safetensors', path('text_encoder/model.safetensors')),
      layer('application/vnd.docker.ai.dir.tar'),
      layer('application/vnd.docker.ai.vllm.config.tar'),
      layer('application/vnd.docker.ai.future.thing'),
      layer('application/vnd.ollama.image.model'),
    ]);
    const { placements } = layoutOf(m);
    expect(placements.map((p) => (p.kind === 'file' ? p.path : p.kind))).toEqual([
      'model-00001-of-00002.gguf',
      'model-00002-of-00002.gguf',
      'model.mmproj',
      'LICENSE',
      'NOTICE',
      'template.jinja',
      'text_encoder/model.safetensors',
      'archive',
      'archive',
      'blob',
      'blob',
    ]);
    expect(singleGguf(placements)).toBeUndefined();
    expect(
      singleGguf(
        layoutOf(
          manifestOf('application/vnd.docker.ai.model.config.v0.1+json', [
            layer('application/vnd.docker.ai.gguf.v3'),
          ]),
        ).placements,
      ),
    ).toMatchObject({
      path: 'model.gguf',
    });
  });

  test('generic OCI layer archives and ORAS file titles', () => {
    const { placements } = layoutOf(
      manifestOf('application/vnd.oci.empty.v1+json', [
        layer('application/vnd.oci.image.layer.v1.tar+gzip'),
        layer('application/vnd.cncf.model.weight.v1.raw', { 'org.opencontainers.image.title': 'titled.bin' }),
      ]),
    );
    expect(
      placements.map((p) => (p.kind === 'file' ? p.path : p.kind === 'archive' ? p.compression : p.kind)),
    ).toEqual(['gzip', 'titled.bin']);
  });
});

describe('paths from an artifact', () => {
  test.each([
    ['model.gguf', undefined],
    ['a/b/c.json', undefined],
    ['', 'it is empty'],
    ['/etc/passwd', 'it is absolute'],
    ['../x', 'it has a ".." part'],
    ['a/../../x', 'it has a ".." part'],
    ['./x', 'it has a "." part'],
    ['a//b', 'it has an empty part (a doubled or trailing /)'],
    ['a/', 'it has an empty part (a doubled or trailing /)'],
    ['a\\..\\b', 'it holds a backslash'],
    ['a\nb', 'it holds a control character'],
    ['x'.repeat(256), 'a part is longer than 255 bytes'],
    [`${'x/'.repeat(2100)}x`, 'it is longer than 4096 bytes'],
  ])('%#: %j', (p, why) => {
    expect(unsafePathReason(p)).toBe(why);
  });

  test('tar member names as archivers write them', () => {
    expect(['./a/b', 'dir/', './', '.', 'a', '././x'].map(memberPath)).toEqual([
      'a/b',
      'dir',
      '',
      '',
      'a',
      'x',
    ]);
  });

  test('claims: no two owners of one path, no file where a folder is needed', () => {
    const claims = new PathClaims();
    expect(claims.file('a/b.json', 'layer 1')).toBeUndefined();
    expect(claims.file('a/b.json', 'layer 2')).toBe('layer 2 and layer 1 both write "a/b.json"');
    expect(claims.file('a', 'layer 3')).toBe('layer 3 writes "a", which is a folder of another entry');
    expect(claims.file('a/b.json/c', 'layer 4')).toBe(
      'layer 4 writes "a/b.json/c" inside "a/b.json", a file of layer 1',
    );
    expect(claims.dir('a/b.json', 'layer 5')).toBe(
      'layer 5 makes "a/b.json" a folder, but it is a file of layer 1',
    );
    expect(claims.dir('a/c', 'layer 6')).toBeUndefined();
    expect(claims.folders()).toEqual(['a', 'a/c']);
  });
});

describe('choosing the model in an image index', () => {
  const model = manifestOf(
    'application/vnd.cncf.model.config.v1+json',
    [layer('application/vnd.cncf.model.weight.v1.raw', path('m.gguf'))],
    'application/vnd.cncf.model.manifest.v1+json',
  );
  const image = manifestOf('application/vnd.oci.image.config.v1+json', [
    layer('application/vnd.oci.image.layer.v1.tar+gzip'),
  ]);
  const entry = (n: number, extra: Partial<Descriptor> = {}): Descriptor => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    hex: hexOf(1000 + n),
    size: 100,
    ...extra,
  });
  const indexOf = (manifests: Descriptor[]): ImageIndex => ({
    kind: 'index',
    text: '',
    mediaType: undefined,
    manifests,
  });
  const loader = (byHex: Map<string, ImageManifest>, loaded: string[]) => async (e: Descriptor) => {
    loaded.push(e.hex);
    return { bytes: Buffer.from(''), manifest: byHex.get(e.hex)! };
  };

  test('an entry that announces a model is the only one opened', async () => {
    const announced = entry(1, { artifactType: 'application/vnd.cncf.model.manifest.v1+json' });
    const loaded: string[] = [];
    const chosen = await pickModel(
      indexOf([entry(0, { platform: { os: 'linux', architecture: 'amd64' } }), announced]),
      'r/m:v1',
      loader(new Map([[announced.hex, model]]), loaded),
    );
    expect(chosen.entry).toBe(announced);
    expect(loaded).toEqual([announced.hex]);
  });

  test('otherwise every manifest entry is opened, attestations and nested indexes skipped', async () => {
    const loaded: string[] = [];
    const entries = [
      entry(2),
      entry(3),
      entry(4, { platform: { os: 'unknown', architecture: 'unknown' } }),
      entry(5, { mediaType: 'application/vnd.oci.image.index.v1+json' }),
    ];
    const chosen = await pickModel(
      indexOf(entries),
      'r/m:v1',
      loader(
        new Map([
          [entries[0]!.hex, image],
          [entries[1]!.hex, model],
        ]),
        loaded,
      ),
    );
    expect(chosen.entry).toBe(entries[1]);
    expect(loaded).toEqual([entries[0]!.hex, entries[1]!.hex]);
  });

  test('no model, or two, fails listing what the index offers', async () => {
    const a = entry(6, { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    const error = await pickModel(indexOf([a]), 'r/m:v1', loader(new Map([[a.hex, image]]), [])).catch(
      (e: unknown) => e,
    );
    expect(isModelPullError(error, 'ERR_BAD_MANIFEST')).toBe(true);
    expect((error as Error).message).toBe(
      `r/m:v1 is an image index, and none of its entries is a model manifest; it offers: sha256:${a.hex} (application/vnd.oci.image.manifest.v1+json, linux/arm64/v8). Pin the model's manifest with @sha256:<digest>`,
    );
    const b = entry(7);
    const c = entry(8);
    const two = await pickModel(
      indexOf([b, c]),
      'r/m:v1',
      loader(
        new Map([
          [b.hex, model],
          [c.hex, model],
        ]),
        [],
      ),
    ).catch((e: unknown) => e);
    expect((two as Error).message).toContain(`it holds 2 model manifests (sha256:${b.hex}, sha256:${c.hex})`);
  });
});
