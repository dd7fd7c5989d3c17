import { HttpClient } from '../../src/http/client.js';
import { normalizeVersion, parseChecksums, resolveOllamaRelease } from '../../src/runtime/release.js';
import { startReleaseServer } from '../helpers/release-server.js';

const BASE = 'https://github.com/ollama/ollama/releases';

describe('resolveOllamaRelease: the asset for each runner', () => {
  test.each([
    ['0.14.2', 'linux', 'x64', 'ollama-linux-amd64.tar.zst', 'tar.zst', 'bin/ollama', 'x64'],
    ['v0.14.0', 'linux', 'arm64', 'ollama-linux-arm64.tar.zst', 'tar.zst', 'bin/ollama', 'arm64'],
    ['0.14.0-rc2', 'linux', 'x64', 'ollama-linux-amd64.tar.zst', 'tar.zst', 'bin/ollama', 'x64'],
    ['0.13.5', 'linux', 'x64', 'ollama-linux-amd64.tgz', 'tgz', 'bin/ollama', 'x64'],
    ['0.3.7', 'linux', 'arm64', 'ollama-linux-arm64.tgz', 'tgz', 'bin/ollama', 'arm64'],
    ['0.14.2', 'darwin', 'arm64', 'ollama-darwin.tgz', 'tgz', 'ollama', 'arm64'],
    ['0.14.2', 'darwin', 'x64', 'ollama-darwin.tgz', 'tgz', 'ollama', 'x64'],
    ['0.14.2', 'win32', 'x64', 'ollama-windows-amd64.zip', 'zip', 'ollama.exe', 'x64'],
    ['0.14.2', 'win32', 'arm64', 'ollama-windows-arm64.zip', 'zip', 'ollama.exe', 'arm64'],
  ] as const)('%s on %s/%s → %s', async (version, platform, arch, asset, format, executable, toolArch) => {
    const release = await resolveOllamaRelease(version, platform, arch, { baseUrl: `${BASE}/` });
    const bare = version.replace(/^v/, '');
    expect(release).toEqual({
      version: bare,
      tag: `v${bare}`,
      asset,
      format,
      url: `${BASE}/download/v${bare}/${asset}`,
      checksumsUrl: `${BASE}/download/v${bare}/sha256sum.txt`,
      executable,
      toolArch,
    });
  });

  test.each([
    ['freebsd', 'x64'],
    ['linux', 'ia32'],
    ['win32', 'ia32'],
    ['linux', 's390x'],
    ['aix', 'ppc64'],
  ] as const)('refuses %s/%s with a clear message', async (platform, arch) => {
    await expect(resolveOllamaRelease('latest', platform, arch, {})).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED_PLATFORM',
      message:
        `Ollama publishes no release archive for ${platform}/${arch}; ollama-version works on Linux and ` +
        'Windows (x64, arm64) and macOS runners',
    });
  });

  test.each(['1.2', 'abc', '0.14.2.1', 'v', '', 'newest', '0.14.x'])('refuses the version "%s"', (text) => {
    expect(() => normalizeVersion(text)).toThrow(
      `ollama-version "${text}" is not a version: use latest or a release number such as 0.14.2`,
    );
  });

  test.each([
    ['0.14.2', '0.14.2'],
    [' v0.14.2 ', '0.14.2'],
    ['0.15.0-rc1', '0.15.0-rc1'],
  ])('accepts "%s" as %s', (text, version) => {
    expect(normalizeVersion(text)).toBe(version);
  });

  test('refuses releases that shipped no archive', async () => {
    await expect(resolveOllamaRelease('0.3.6', 'linux', 'x64')).rejects.toMatchObject({
      code: 'ERR_BAD_INPUT',
      message: 'ollama-version 0.3.6 is too old: releases before 0.3.7 ship no archive to install',
    });
  });
});

describe('resolveOllamaRelease: latest', () => {
  test('follows /releases/latest to the tag and pins the version with one request', async () => {
    const server = await startReleaseServer([], '0.15.1');
    const http = new HttpClient({ connections: 1, insecure: false, stallTimeoutMs: 5000, userAgent: 'test' });
    try {
      const release = await resolveOllamaRelease('latest', 'linux', 'x64', { baseUrl: server.baseUrl, http });
      expect(release.version).toBe('0.15.1');
      expect(release.url).toBe(`${server.baseUrl}/download/v0.15.1/ollama-linux-amd64.tar.zst`);
      expect(server.requests.map((r) => r.url)).toEqual(['/releases/latest']);
    } finally {
      await http.close();
      await server.close();
    }
  });

  test('a releases page without the redirect is a clear error', async () => {
    const server = await startReleaseServer([]);
    const http = new HttpClient({ connections: 1, insecure: false, stallTimeoutMs: 5000, userAgent: 'test' });
    try {
      await expect(
        resolveOllamaRelease('latest', 'linux', 'x64', { baseUrl: server.baseUrl, http }),
      ).rejects.toMatchObject({
        code: 'ERR_RUNTIME_INSTALL',
        message: `could not learn the latest Ollama version: ${server.baseUrl}/latest did not redirect to a release tag`,
      });
    } finally {
      await http.close();
      await server.close();
    }
  });
});

describe('parseChecksums', () => {
  test('reads sha256sum output with ./ prefixes and binary markers', () => {
    const a = 'a'.repeat(64);
    const b = 'B'.repeat(64);
    const sums = parseChecksums(
      `${a}  ./ollama-linux-amd64.tar.zst\r\n${b} *./ollama-darwin.tgz\nnot a line\n\n`,
    );
    expect([...sums]).toEqual([
      ['ollama-linux-amd64.tar.zst', a],
      ['ollama-darwin.tgz', 'b'.repeat(64)],
    ]);
  });
});
