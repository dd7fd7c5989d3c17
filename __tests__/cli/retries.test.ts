import { join } from 'node:path';
import { startServer, tempDir } from '../helpers/http.js';
import { lines, requireBuiltCli, runCli } from './run.js';

/**
 * Issue 11, "say why it waits": every retry is a line with its host, cause and wait while it
 * waits, and what retrying cannot fix fails at once (issue 10's retry events, as the CLI logs them).
 */
const HEX = 'ab'.repeat(32);

beforeAll(() => requireBuiltCli());

it('names each retry of a refused connection and gives up', async () => {
  const gone = await startServer(() => undefined);
  await gone.close(); // nothing listens on its port any more
  const dir = await tempDir('model-pull-cli-retry-');
  const url = `${gone.url}/x.gguf`;
  const host = new URL(gone.url).host;
  try {
    // One retry keeps the real wait under a second (the engine's tests show the default budget).
    const args = ['pull', '--retries', '1', '--files-dir', join(dir.path, 'files'), url, `sha256=${HEX}`];
    const run = await runCli(args, { env: { HOME: dir.path } });
    expect(run.code).toBe(1);
    const err = lines(run.stderr);
    expect(err.filter((l) => l.includes('connection refused, retry'))).toEqual([
      expect.stringMatching(
        new RegExp(`^${host}: connection refused, retry 1/1 in \\d\\.\\d s \\(x\\.gguf\\)$`),
      ),
    ]);
    expect(run.stderr).toContain(
      `x.gguf: giving up after 2 failed attempts: network error from ${url}: connect ECONNREFUSED ${host}`,
    );
  } finally {
    await dir.remove();
  }
});

it('fails at once, without retries, on a host name that does not resolve', async () => {
  const dir = await tempDir('model-pull-cli-dns-');
  // An empty label: glibc refuses it without asking a DNS server, so nothing leaves the machine.
  const url = 'https://model-pull..test/x.gguf';
  try {
    const run = await runCli(['pull', '--files-dir', join(dir.path, 'files'), url, `sha256=${HEX}`], {
      env: { HOME: dir.path },
    });
    expect(run.code).toBe(1);
    expect(run.stderr).not.toContain(', retry ');
    expect(run.stderr).toContain(
      `x.gguf: network error from ${url}: model-pull..test does not resolve (ENOTFOUND)`,
    );
  } finally {
    await dir.remove();
  }
});
