import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../../src/clock.js';
import { isModelPullError } from '../../src/errors.js';
import type { HttpClient } from '../../src/http/client.js';
import { checkRealm } from '../../src/registry/auth.js';
import { type RegistryCall, RegistryClient } from '../../src/registry/client.js';
import { registryOrigin } from '../../src/registry/endpoint.js';
import { MemoryLogger } from '../../src/report/logger.js';
import { FAST_RETRY, testClient } from '../helpers/engine.js';
import { startServer, type TestServer, tempDir } from '../helpers/http.js';
import { selfSigned } from '../helpers/tls.js';

// Docker's rule for registries named without a scheme: https first, plain http only where https
// cannot be spoken, and only for loopback hosts or with `insecure`; Docker Hub's API host.

const callWith = (http: HttpClient): RegistryCall => ({
  http,
  retry: FAST_RETRY,
  log: new MemoryLogger(),
  clock: systemClock,
});

describe('registryOrigin', () => {
  let dir: { path: string; remove(): Promise<void> };
  let tls: { key: string; cert: string };
  let https: Server;
  let httpsHost: string;
  const httpsPaths: string[] = [];
  let plain: TestServer;
  let plainHost: string;
  let http: HttpClient;

  beforeAll(async () => {
    dir = await tempDir();
    tls = selfSigned(dir.path);
    https = createHttpsServer(tls, (req, res) => {
      httpsPaths.push(req.url ?? '');
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="x"' }).end();
    });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    httpsHost = `127.0.0.1:${(https.address() as AddressInfo).port}`;
    plain = await startServer((_req, res) => void res.writeHead(200).end('{}'));
    plainHost = new URL(plain.url).host;
    http = testClient({ extraCa: tls.cert });
  });
  afterAll(async () => {
    await http.close();
    https.closeAllConnections();
    await new Promise((resolve) => https.close(resolve));
    await plain.close();
    await dir.remove();
  });

  it('takes https on a loopback registry that speaks it, after one probe of /v2/', async () => {
    httpsPaths.length = 0;
    expect(await registryOrigin(callWith(http), { host: httpsHost })).toBe(`https://${httpsHost}`);
    expect(httpsPaths).toEqual(['/v2/']);
  });

  it('falls back to plain http on a loopback registry that does not speak TLS', async () => {
    const before = plain.requests.length;
    expect(await registryOrigin(callWith(http), { host: plainHost })).toBe(`http://${plainHost}`);
    // The ClientHello is no HTTP request: the plain server saw nothing it could answer.
    expect(plain.requests.length).toBe(before);
  });

  it('falls back to plain http where nothing listens for https', async () => {
    const closed = await startServer(() => undefined);
    const host = new URL(closed.url).host;
    await closed.close();
    expect(await registryOrigin(callWith(http), { host })).toBe(`http://${host}`);
  });

  it('never drops to http because of an untrusted certificate', async () => {
    const untrusting = testClient();
    try {
      const error = await registryOrigin(callWith(untrusting), { host: httpsHost }).catch((e: unknown) => e);
      expect(isModelPullError(error, 'ERR_TLS')).toBe(true);
      expect((error as Error).message).toContain('trust it with ca-cert');
    } finally {
      await untrusting.close();
    }
  });

  it('obeys a written scheme and asks nothing', async () => {
    httpsPaths.length = 0;
    expect(await registryOrigin(callWith(http), { host: plainHost, scheme: 'http' })).toBe(
      `http://${plainHost}`,
    );
    expect(await registryOrigin(callWith(http), { host: httpsHost, scheme: 'https' })).toBe(
      `https://${httpsHost}`,
    );
    expect(httpsPaths).toEqual([]);
  });

  it('is https without a probe for other hosts unless insecure; Docker Hub is registry-1.docker.io', async () => {
    // No request is made (these hosts do not exist here): a probe would fail the test.
    expect(await registryOrigin(callWith(http), { host: 'registry.example:5000' })).toBe(
      'https://registry.example:5000',
    );
    expect(await registryOrigin(callWith(http), { host: 'docker.io' })).toBe('https://registry-1.docker.io');
  });

  it('with insecure, probes other hosts too (and reports a failure that is not "no TLS")', async () => {
    const insecure = testClient({ insecure: true });
    try {
      const error = await registryOrigin(
        { ...callWith(insecure), retry: { ...FAST_RETRY, retries: 0 } },
        { host: 'registry.invalid' },
      ).catch((e: unknown) => e);
      expect(isModelPullError(error, 'ERR_DNS')).toBe(true);
      expect((error as Error).message).toContain('https://registry.invalid/v2/');
    } finally {
      await insecure.close();
    }
  });

  it('RegistryClient settles a registry once per run, and trusts Docker Hub realm for docker.io only', async () => {
    httpsPaths.length = 0;
    const client = new RegistryClient();
    const call = callWith(http);
    const [a, b] = await Promise.all([
      client.resolve(call, { host: httpsHost, repository: 'team/a' }),
      client.resolve(call, { host: httpsHost, repository: 'team/b' }),
    ]);
    expect(httpsPaths).toEqual(['/v2/']);
    expect([a.registry.origin, b.registry.origin]).toEqual([`https://${httpsHost}`, `https://${httpsHost}`]);

    const hub = await client.resolve(call, { host: 'docker.io', repository: 'ai/smollm2' });
    expect(hub.url('manifests/x')).toBe('https://registry-1.docker.io/v2/ai/smollm2/manifests/x');
    expect(checkRealm('https://auth.docker.io/token', hub.registry, hub.policy).host).toBe('auth.docker.io');
    expect(() => checkRealm('http://auth.docker.io/token', hub.registry, hub.policy)).toThrow(
      'listed in allowed-realm-hosts but is not https',
    );
    const other = client.session({
      origin: 'https://registry.example',
      host: 'registry.example',
      repository: 'a/b',
    });
    expect(() => checkRealm('https://auth.docker.io/token', other.registry, other.policy)).toThrow(
      'sent a token realm on another host (auth.docker.io); refused',
    );
  });
});
