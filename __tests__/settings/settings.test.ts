import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildSettings, MAX_CA_BYTES, type RawInputs } from '../../src/settings/settings.js';
import { tempDir } from '../helpers/http.js';
import { plant } from '../helpers/planted.js';

const ctx = (env: Record<string, string> = {}) => ({
  env,
  home: '/home/u',
  cwd: '/work',
  nameOf: (name: string) => `input "${name}"`,
});

describe('buildSettings', () => {
  it('applies the documented defaults', () => {
    const s = buildSettings({ models: 'ollama:qwen2.5:0.5b\n\n# a comment\n  hf:o/r  ' }, ctx());
    expect(s.lines).toEqual(['ollama:qwen2.5:0.5b', 'hf:o/r']);
    expect(s).toMatchObject({
      ollamaModels: '/home/u/.ollama/models',
      hfCache: '/home/u/.cache/huggingface/hub',
      filesDir: '/home/u/.cache/model-pull/files',
      hfEndpoint: 'https://huggingface.co',
      hfToken: undefined,
      cache: true,
      save: true,
      failOnCacheMiss: false,
      cacheKeyPrefix: 'model-pull',
      concurrency: 4,
      connections: 16,
      verify: 'full',
      lockfile: undefined,
      exportEnv: true,
      hfOffline: false,
      ollamaVersion: undefined,
      ollamaServe: false,
    });
    expect(s.http).toMatchObject({ connections: 64, insecure: false, stallTimeoutMs: 30_000 });
    expect(s.http.proxy).toBeUndefined();
  });

  it.each([
    [{ HF_HUB_CACHE: '/a' }, '/a'],
    [{ HUGGINGFACE_HUB_CACHE: '/b', HF_HOME: '/h' }, '/b'],
    [{ HF_HOME: '/h' }, '/h/hub'],
    [{ XDG_CACHE_HOME: '/x' }, '/x/huggingface/hub'],
  ])('finds the HF cache from %j like huggingface_hub', (env, expected) => {
    expect(buildSettings({ models: 'hf:o/r' }, ctx(env)).hfCache).toBe(expected);
  });

  it('refuses an HF_TOKEN with a line break inside (it would fail every request)', () => {
    expect(() => buildSettings({ models: 'x' }, ctx({ HF_TOKEN: 'hf_abc\r\ndef' }))).toThrow(
      'input "hf-token" (or HF_TOKEN) contains a line break or control character',
    );
  });

  it('takes environment defaults for the store, endpoint, token and proxy', () => {
    const s = buildSettings(
      { models: 'hf:o/r' },
      ctx({
        OLLAMA_MODELS: '/srv/ollama',
        HF_ENDPOINT: 'https://mirror.example/',
        HUGGING_FACE_HUB_TOKEN: 'hf_old',
        HTTPS_PROXY: 'http://proxy:3128',
        NO_PROXY: 'localhost',
      }),
    );
    expect(s.ollamaModels).toBe('/srv/ollama');
    expect(s.hfEndpoint).toBe('https://mirror.example');
    expect(s.hfToken).toBe('hf_old');
    expect(s.secrets).toEqual(['hf_old']);
    expect(s.http.proxy).toEqual({
      httpsProxy: 'http://proxy:3128',
      httpProxy: undefined,
      noProxy: 'localhost',
    });
  });

  // Issue 10 item 13: a mirror behind Basic auth, written into the URL as user:pass@.
  it.each([
    ['https://user:p%40ss@mirror.corp/hf/', 'https://mirror.corp/hf', 'user', 'p@ss', ['p@ss', 'p%40ss']],
    ['http://u:pw@127.0.0.1:8080', 'http://127.0.0.1:8080', 'u', 'pw', ['pw']],
    ['https://token@mirror.corp', 'https://mirror.corp', 'token', '', []],
  ])(
    'takes the credentials out of hf-endpoint %s and masks the password',
    (given, url, username, password, masked) => {
      const s = buildSettings({ models: 'hf:o/r', 'hf-endpoint': given }, ctx());
      expect(s.hfEndpoint).toBe(url);
      expect(s.hfEndpointAuth).toEqual({ username, password });
      const header = Buffer.from(`${username}:${password}`).toString('base64');
      expect(s.secrets).toEqual(password ? [...masked, header] : []);
      expect(JSON.stringify({ ...s, hfEndpointAuth: undefined, secrets: [] })).not.toContain(`:${password}@`);
    },
  );

  it('lets inputs win over the environment and resolves relative paths', () => {
    const s = buildSettings(
      { models: 'hf:o/r', 'hf-token': 'hf_input', 'ollama-models': 'store', lockfile: '~/m.lock' },
      ctx({ HF_TOKEN: 'hf_env', OLLAMA_MODELS: '/srv' }),
    );
    expect(s.hfToken).toBe('hf_input');
    expect(s.ollamaModels).toBe('/work/store');
    expect(s.lockfile).toEqual({ path: '/home/u/m.lock', shown: '~/m.lock', mode: 'frozen' });
  });

  it.each<[RawInputs, Partial<Record<'save' | 'failOnCacheMiss' | 'cache', boolean>>]>([
    [{ save: 'false' }, { cache: true, save: false, failOnCacheMiss: false }],
    [
      { save: 'false', 'fail-on-cache-miss': 'true' },
      { cache: true, save: false, failOnCacheMiss: true },
    ],
    [{ cache: 'false' }, { cache: false, save: true, failOnCacheMiss: false }],
    [{ 'fail-on-cache-miss': 'yes' }, { cache: true, save: true, failOnCacheMiss: true }],
  ])('reads the cache inputs %j', (raw, expected) => {
    expect(buildSettings({ models: 'hf:o/r', ...raw }, ctx())).toMatchObject(expected);
  });

  it.each<[RawInputs, string | undefined]>([
    [{ lockfile: 'm.lock' }, 'frozen'],
    [{ lockfile: 'm.lock', 'lock-mode': 'frozen' }, 'frozen'],
    [{ lockfile: 'm.lock', 'lock-mode': ' update ' }, 'update'],
    [{ 'lock-mode': 'update' }, undefined],
  ])('reads the lock mode from %j', (raw, mode) => {
    expect(buildSettings({ models: 'hf:o/r', ...raw }, ctx()).lockfile?.mode).toBe(mode);
  });

  it('tells how a fix sets an option, in the words of the entry point', () => {
    expect(buildSettings({ models: 'hf:o/r' }, ctx()).settingText('lock-mode', 'update')).toBe(
      'input "lock-mode" update',
    );
    const cli = { ...ctx(), settingText: (n: string, v: string) => `--${n} ${v}` };
    expect(buildSettings({ models: 'hf:o/r' }, cli).settingText('lock-mode', 'update')).toBe(
      '--lock-mode update',
    );
  });

  it.each<[RawInputs, string]>([
    [{ models: '  \n# only a comment' }, 'input "models" names no model'],
    [{ models: 'x', verify: 'sometimes' }, 'input "verify" must be full or size, got "sometimes"'],
    [{ models: 'x', concurrency: '0' }, 'input "concurrency" must be a whole number from 1 to 64, got "0"'],
    [
      { models: 'x', connections: 'many' },
      'input "connections" must be a whole number from 1 to 64, got "many"',
    ],
    [{ models: 'x', cache: 'maybe' }, 'input "cache" must be true or false, got "maybe"'],
    [{ models: 'x', 'hf-endpoint': 'huggingface.co' }, 'input "hf-endpoint" is not a URL: "huggingface.co"'],
    [
      { models: 'x', 'hf-endpoint': 'ftp://mirror.corp' },
      'input "hf-endpoint" is not a URL: "ftp://mirror.corp"',
    ],
    [
      { models: 'x', 'hf-endpoint': 'https://u:s3cret@mirror corp/hf' },
      'input "hf-endpoint" is not a URL: "https://***@mirror corp/hf"',
    ],
    [
      { models: 'x', 'hf-endpoint': 'https://u:%E0%A4%A@mirror.corp' },
      'input "hf-endpoint" is not a URL: "https://***@mirror.corp"',
    ],
    [
      { models: 'x', 'cache-key-prefix': 'a,b' },
      'input "cache-key-prefix" must be at most 200 characters without commas or spaces',
    ],
    [
      { models: 'x', 'registry-username': 'u', 'registry-password': 'p' },
      'input "registry-username" needs input "registry-host": the registry (host[:port]) the credentials belong to',
    ],
    [
      { models: 'x', 'registry-username': 'u', 'registry-host': 'ghcr.io' },
      'input "registry-username" and input "registry-password" go together',
    ],
    [
      { models: 'x', 'ollama-serve': 'true' },
      'input "ollama-serve" needs input "ollama-version" (the version to install, or latest)',
    ],
    [
      { models: 'x', 'ollama-version': '0.14.2', 'ollama-sha256': 'sha256:abc' },
      'input "ollama-sha256" must be a sha256 hex digest (64 hex characters), not "abc"',
    ],
    [{ models: 'x', 'ca-cert': '/nonexistent/ca.pem' }, 'input "ca-cert": cannot read /nonexistent/ca.pem'],
    // issue 10 item 15: a secret with a line break fails here, before any request, unquoted
    [
      { models: 'x', 'hf-token': 'hf_abc\ndef' },
      'input "hf-token" (or HF_TOKEN) contains a line break or control character',
    ],
    [
      { models: 'x', 'registry-host': 'r.io', 'registry-username': 'u', 'registry-password': 'p\r\nq' },
      'input "registry-password" contains a line break or control character',
    ],
    [{ models: 'x', save: 'never' }, 'input "save" must be true or false, got "never"'],
    [
      { models: 'x', cache: 'false', 'fail-on-cache-miss': 'true' },
      'input "fail-on-cache-miss" needs the cache: it cannot be true with input "cache" false',
    ],
    [{ models: 'x', 'lock-mode': 'strict' }, 'input "lock-mode" must be frozen or update, got "strict"'],
  ])('refuses %j', (raw, message) => {
    expect(() => buildSettings(raw, ctx())).toThrow(message);
  });
});

describe('ca-cert', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir('model-pull-ca-cert-');
  });
  afterAll(async () => {
    await dir.remove();
  });
  const withCa = (file: string) => () => buildSettings({ models: 'x', 'ca-cert': file }, ctx());

  it('reads a PEM bundle through a link (system bundles are links)', async () => {
    const pem = `-----BEGIN CERTIFICATE-----\n${'A'.repeat(64)}\n-----END CERTIFICATE-----\n`;
    await writeFile(join(dir.path, 'ca.pem'), pem);
    await symlink(join(dir.path, 'ca.pem'), join(dir.path, 'ca-link.pem'));
    expect(withCa(join(dir.path, 'ca-link.pem'))().http.extraCa).toBe(pem);
  });

  test.each([
    ['fifo', 'not a regular file (a FIFO)'],
    ['link', 'not a regular file (a character device)'],
    ['huge', `too large (${MAX_CA_BYTES + 1} bytes, limit 4194304)`],
  ] as const)('refuses a %s at once, with one line', async (kind, reason) => {
    const file = join(dir.path, `planted-${kind}.pem`);
    await plant(file, kind, MAX_CA_BYTES + 1);
    expect(withCa(file)).toThrow(new Error(`input "ca-cert": cannot read ${file}: ${reason}`));
  });

  it('refuses a folder', () => {
    expect(withCa(dir.path)).toThrow(
      new Error(`input "ca-cert": cannot read ${dir.path}: not a regular file (a folder)`),
    );
  });
});
