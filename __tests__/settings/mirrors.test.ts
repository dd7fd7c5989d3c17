import { buildSettings } from '../../src/settings/settings.js';

// Issue 16's inputs: mirror-to, registry-mirror, hf-oci-mirror; bad values fail before any
// request, naming the input.

const ctx = { env: {}, home: '/home/u', cwd: '/work', nameOf: (name: string) => `input "${name}"` };
const build = (raw: Record<string, string>) => buildSettings({ models: 'ollama:m', ...raw }, ctx);

test('prefixes and mirror lines as users write them', () => {
  const s = build({
    'mirror-to': 'Registry.Corp:5000/models/',
    'hf-oci-mirror': 'http://127.0.0.1:5000/hf',
    'registry-mirror':
      '# pull-through caches\nregistry.ollama.ai=https://mirror.corp:5000\n  docker.io=https://harbor.corp/dockerhub-proxy, ghcr.io=mirror.corp',
  });
  expect(s.mirrorTo).toEqual({
    host: 'registry.corp:5000',
    path: 'models',
    text: 'Registry.Corp:5000/models',
  });
  expect(s.hfOciMirror).toEqual({
    host: '127.0.0.1:5000',
    scheme: 'http',
    path: 'hf',
    text: 'http://127.0.0.1:5000/hf',
  });
  expect(s.registryMirrors).toEqual([
    {
      host: 'registry.ollama.ai',
      mirror: { host: 'mirror.corp:5000', scheme: 'https', path: '', text: 'https://mirror.corp:5000' },
    },
    {
      host: 'docker.io',
      mirror: {
        host: 'harbor.corp',
        scheme: 'https',
        path: 'dockerhub-proxy',
        text: 'https://harbor.corp/dockerhub-proxy',
      },
    },
    { host: 'ghcr.io', mirror: { host: 'mirror.corp', path: '', text: 'mirror.corp' } },
  ]);
  expect(s.uploadsDir).toBe('/home/u/.cache/model-pull/uploads');
  expect(build({})).toMatchObject({ mirrorTo: undefined, hfOciMirror: undefined, registryMirrors: [] });
});

test.each([
  [
    { 'mirror-to': 'ftp://host/x' },
    'input "mirror-to" "ftp://host/x" must start with a registry host, or http:// or https://',
  ],
  [
    { 'mirror-to': 'registry.corp/Models' },
    'input "mirror-to" "registry.corp/Models" has the path part "Models": repository parts are lowercase letters and digits joined by ., _, __ or -',
  ],
  [
    { 'hf-oci-mirror': 'user@host/hf' },
    'input "hf-oci-mirror" "user@host/hf" does not start with a registry host (host[:port])',
  ],
  [
    { 'registry-mirror': 'registry.ollama.ai' },
    'input "registry-mirror": "registry.ollama.ai" is not HOST=URL (the registry host as lines name it, then its mirror)',
  ],
  [
    { 'registry-mirror': 'docker.io=a.corp\ndocker.io=b.corp' },
    'input "registry-mirror" names docker.io twice',
  ],
  [
    { 'registry-mirror': 'docker.io=https://harbor.corp/Proxy' },
    'input "registry-mirror" for docker.io: "https://harbor.corp/Proxy" has the path part "Proxy": repository parts are lowercase letters and digits joined by ., _, __ or -',
  ],
  [
    { 'registry-mirror': 'registry.corp:5000=https://registry.corp:5000/' },
    'input "registry-mirror" for registry.corp:5000: "https://registry.corp:5000" is registry.corp:5000 itself (a mirror is another registry, or a path on this one)',
  ],
])('%j is refused: %s', (raw, message) => {
  expect(() => build(raw)).toThrow(message);
});
