import { isModelPullError } from '../../src/errors.js';
import { type AuthPolicy, checkRealm, parseChallenges } from '../../src/registry/auth.js';

describe('parseChallenges', () => {
  test.each<[string, string | string[], ReturnType<typeof parseChallenges>]>([
    [
      'registry.ollama.ai style',
      'Bearer realm="https://ollama.com:443/token",service="ollama.com",scope="repository:library/llama3.2:pull"',
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://ollama.com:443/token',
            service: 'ollama.com',
            scope: 'repository:library/llama3.2:pull',
          },
        },
      ],
    ],
    [
      'a comma inside a quoted scope, spaces, escapes',
      'Bearer realm = "https://auth.example/token" , scope="repository:a/b:pull,push", error="say \\"hi\\""',
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.example/token',
            scope: 'repository:a/b:pull,push',
            error: 'say "hi"',
          },
        },
      ],
    ],
    [
      'two challenges in one value',
      'Basic realm="Registry", Bearer realm="https://r/t",service=svc',
      [
        { scheme: 'basic', params: { realm: 'Registry' } },
        { scheme: 'bearer', params: { realm: 'https://r/t', service: 'svc' } },
      ],
    ],
    [
      'two header values',
      ['Basic realm="x"', 'BEARER realm="https://r/t"'],
      [
        { scheme: 'basic', params: { realm: 'x' } },
        { scheme: 'bearer', params: { realm: 'https://r/t' } },
      ],
    ],
  ])('%s', (_what, header, expected) => {
    expect(parseChallenges(header)).toEqual(expected);
  });

  test('no header, no challenge', () => {
    expect(parseChallenges(undefined)).toEqual([]);
  });
});

describe('checkRealm', () => {
  const registry = new URL('http://127.0.0.1:5000/');
  const policy = (allowed: string[]): AuthPolicy => ({ allowedRealmHosts: allowed });
  const refused = (realm: string | undefined, allowed: string[]): string => {
    try {
      checkRealm(realm, registry, policy(allowed));
    } catch (error) {
      expect(isModelPullError(error, 'ERR_AUTH')).toBe(true);
      return (error as Error).message;
    }
    throw new Error('realm accepted');
  };

  test('the registry host itself is trusted, whatever the path', () => {
    expect(checkRealm('http://127.0.0.1:5000/auth/token?x=1', registry, policy([])).href).toBe(
      'http://127.0.0.1:5000/auth/token?x=1',
    );
  });

  test('an allowed https host is trusted, by hostname or host:port', () => {
    expect(checkRealm('https://auth.docker.io/token', registry, policy(['auth.docker.io'])).host).toBe(
      'auth.docker.io',
    );
    expect(checkRealm('https://auth.example:8443/t', registry, policy(['auth.example:8443'])).port).toBe(
      '8443',
    );
  });

  test.each<[string, string | undefined, string[], string]>([
    [
      'another host',
      'https://evil.example/token',
      [],
      'registry 127.0.0.1:5000 sent a token realm on another host (evil.example); refused: add that host to allowed-realm-hosts if you trust it',
    ],
    [
      'another port of the same address',
      'http://127.0.0.1:5001/token',
      [],
      'registry 127.0.0.1:5000 sent a token realm on another host (127.0.0.1:5001); refused: add that host to allowed-realm-hosts if you trust it',
    ],
    [
      'an allowed host over plain http',
      'http://auth.example/token',
      ['auth.example'],
      'registry 127.0.0.1:5000 sent a token realm on another host (auth.example); refused: it is listed in allowed-realm-hosts but is not https',
    ],
    ['no realm', undefined, [], 'registry 127.0.0.1:5000 asked for a Bearer token but named no realm'],
    ['not a URL', 'token', [], 'registry 127.0.0.1:5000 sent a token realm that is not a URL'],
    [
      'a file URL',
      'file:///etc/passwd',
      [],
      'registry 127.0.0.1:5000 sent a token realm with the unsupported scheme file:',
    ],
  ])('refuses %s', (_what, realm, allowed, message) => {
    expect(refused(realm, allowed)).toBe(message);
  });
});
