import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { sha256Hex } from '../../src/digest.js';
import { createRunner, type Runner } from '../helpers/action.js';
import { startServer, type TestServer, tempDir } from '../helpers/http.js';
import { buildOllamaArchive, type ReleaseServer, startReleaseServer } from '../helpers/release-server.js';
import { selfSigned } from '../helpers/tls.js';

/**
 * Issue 10 item 17: the Ollama runtime install uses the run's one configured HTTP client, so
 * what the step configures for the network applies to the release download as to the models.
 * The bundled action runs behind HTTPS_PROXY (a tunnelling proxy that records every CONNECT),
 * the release is served over TLS by a certificate only `ca-cert` makes trusted, and its archive
 * fails once with 503, which only the step's `retries` gets past. The step inherits nothing from
 * the test process (no NODE_EXTRA_CA_CERTS, no proxy variables) but what is set here.
 */

const ASSET = `ollama-linux-${process.arch === 'arm64' ? 'arm64' : 'amd64'}.tar.zst`;
const model = randomBytes(64 * 1024);

let dir: { path: string; remove(): Promise<void> };
let release: ReleaseServer;
let front: Server;
let frontUrl: string;
let proxy: TestServer;
let runner: Runner;
const tunnels: string[] = [];
const sockets = new Set<Socket>();
/** TLS connections the front accepted, and the paths it was asked for. */
let frontConnections = 0;
const frontPaths: string[] = [];
let archiveFailures = 1;

beforeAll(async () => {
  dir = await tempDir();
  const tls = selfSigned(dir.path);
  await writeFile(join(dir.path, 'ca.pem'), tls.cert);
  const archive = await buildOllamaArchive('tar.zst', '0.14.2', 'linux');
  release = await startReleaseServer([{ version: '0.14.2', assets: { [ASSET]: archive } }], '0.14.2');
  // The release over TLS: forwards to the plain release server, its redirects rewritten to itself.
  front = createServer({ key: tls.key, cert: tls.cert }, async (req, res) => {
    const path = req.url ?? '/';
    frontPaths.push(path);
    if (path === '/files/model.bin') return void res.end(model);
    if (path.startsWith(`/cdn/v0.14.2/${ASSET}`) && archiveFailures-- > 0)
      return void res.writeHead(503).end('busy');
    const upstream = await fetch(`${release.url}${path}`, { redirect: 'manual' });
    const headers: Record<string, string> = {};
    const location = upstream.headers.get('location');
    if (location) headers['location'] = location.replace(release.url, frontUrl);
    res.writeHead(upstream.status, headers).end(Buffer.from(await upstream.arrayBuffer()));
  });
  front.on('secureConnection', () => {
    frontConnections += 1;
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  frontUrl = `https://127.0.0.1:${(front.address() as AddressInfo).port}`;
  proxy = await startServer((_req, res) => void res.writeHead(405).end());
  proxy.server.on('connect', (req, client: Socket) => {
    tunnels.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host!, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(client).pipe(upstream);
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
    }
  });
  runner = await createRunner();
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await runner?.dispose();
  front?.closeAllConnections();
  await new Promise((resolve) => (front ? front.close(resolve) : resolve(undefined)));
  await proxy?.close();
  await release?.close();
  await dir?.remove();
});

test('the release download goes through HTTPS_PROXY, trusts ca-cert and retries as the step says', async () => {
  const run = await runner.run(
    {
      models: `${frontUrl}/files/model.bin sha256=${sha256Hex(model)}`,
      'ollama-version': '0.14.2',
      'ollama-download-url': `${frontUrl}/releases`,
      'ca-cert': join(dir.path, 'ca.pem'),
      retries: '2',
      cache: 'false',
    },
    // Nothing bypasses the proxy, loopback included (the runner helper exempts it by default).
    { HTTPS_PROXY: proxy.url, NO_PROXY: '' },
  );
  expect(run.errors()).toEqual([]);
  expect(run.code).toBe(0);
  expect(run.outputs['ollama-version']).toBe('0.14.2');

  // The release's redirect, its checksums and the archive twice (503, then the bytes) ...
  expect(frontPaths).toEqual(
    expect.arrayContaining([
      `/releases/download/v0.14.2/${ASSET}`,
      '/releases/download/v0.14.2/sha256sum.txt',
    ]),
  );
  expect(frontPaths.filter((p) => p.startsWith(`/cdn/v0.14.2/${ASSET}`))).toHaveLength(2);
  // ... each over a TLS connection that came through the proxy's tunnel, and no other way.
  const frontHost = new URL(frontUrl).host;
  expect(tunnels.length).toBeGreaterThan(0);
  expect(new Set(tunnels)).toEqual(new Set([frontHost]));
  expect(frontConnections).toBe(tunnels.length);

  // The installed runtime is the release's, on the PATH of later steps.
  const binDir = run.files.path.trim();
  const { stdout } = await promisify(execFile)(join(binDir, 'ollama'), ['--version']);
  expect(stdout).toBe('ollama version is 0.14.2\n');
  expect(await readFile(join(runner.home, '.cache', 'model-pull', 'files', 'model.bin'))).toEqual(model);
});
