import { splitLine } from '../../../src/refs/line.js';
import { ociName, parseOciRef } from '../../../src/sources/oci/ref.js';

const parse = (line: string) => parseOciRef(splitLine(line));
const HEX = `${'0123456789abcdef'.repeat(4)}`;

describe('parseOciRef: names as Docker normalises them', () => {
  test.each([
    // [line, host, repository, tag, name]
    [
      'oci:ai/smollm2:360M-Q4_K_M',
      'docker.io',
      'ai/smollm2',
      '360M-Q4_K_M',
      'docker.io/ai/smollm2:360M-Q4_K_M',
    ],
    ['oci:smollm2', 'docker.io', 'library/smollm2', 'latest', 'docker.io/library/smollm2:latest'],
    ['oci:docker.io/smollm2:1', 'docker.io', 'library/smollm2', '1', 'docker.io/library/smollm2:1'],
    ['oci:index.docker.io/ai/x', 'docker.io', 'ai/x', 'latest', 'docker.io/ai/x:latest'],
    [
      'oci:registry.example.com/team/model:tag',
      'registry.example.com',
      'team/model',
      'tag',
      'registry.example.com/team/model:tag',
    ],
    // the last ':' is before the last '/': a port, not a tag
    ['oci:127.0.0.1:5000/a/b/c', '127.0.0.1:5000', 'a/b/c', 'latest', '127.0.0.1:5000/a/b/c:latest'],
    ['oci:localhost/m', 'localhost', 'm', 'latest', 'localhost/m:latest'],
    ['oci:Registry.Corp/m', 'registry.corp', 'm', 'latest', 'registry.corp/m:latest'],
    ['oci:[::1]:5000/team/m:v1', '[::1]:5000', 'team/m', 'v1', '[::1]:5000/team/m:v1'],
    [
      'oci:ghcr.io/org/models/qwen__2.5-0_5b:q4',
      'ghcr.io',
      'org/models/qwen__2.5-0_5b',
      'q4',
      'ghcr.io/org/models/qwen__2.5-0_5b:q4',
    ],
  ])('%s', (line, host, repository, tag, name) => {
    const ref = parse(line);
    expect(ref).toEqual({ line, host, repository, tag });
    expect(ociName(ref)).toBe(name);
  });

  test('an explicit scheme is kept; without one the registry client chooses', () => {
    expect(parse('oci:http://127.0.0.1:5000/t/m:v').scheme).toBe('http');
    expect(parse('oci:HTTPS://r.example/t/m').scheme).toBe('https');
    expect(parse('oci:r.example/t/m').scheme).toBeUndefined();
  });

  test('a pin names the artifact by digest; a tag beside it is kept', () => {
    const pinned = parse(`oci:r.example/t/m@sha256:${HEX}`);
    expect(pinned).toMatchObject({ tag: 'latest', pin: HEX });
    expect(ociName(pinned)).toBe(`r.example/t/m@sha256:${HEX}`);
    expect(parse(`oci:ai/smollm2:q4@sha256:${HEX}`)).toMatchObject({
      host: 'docker.io',
      repository: 'ai/smollm2',
      tag: 'q4',
      pin: HEX,
    });
  });
});

describe('parseOciRef: refused before any request, quoting the line', () => {
  test.each([
    ['oci:', 'the artifact name is missing after oci:'],
    ['oci:r.example:70000/t/m', 'registry host "r.example:70000" is not a host name or address'],
    ['oci:r.example/Team/model', 'repository part "Team" must be lowercase letters and digits'],
    ['oci:r.example/team//model', 'repository part "" must be lowercase'],
    ['oci:r.example/', 'the repository is missing after "r.example/"'],
    ['oci:r.example/t/m:', 'tag "" must be 1 to 128'],
    ['oci:r.example/t/m:-x', 'tag "-x" must be 1 to 128'],
    [`oci:r.example/t/m:${'x'.repeat(129)}`, `tag "${'x'.repeat(60)}…" must be 1 to 128`],
    [
      'oci:r.example/t/m@sha256:abc',
      'a pin must be @sha256: followed by 64 lowercase hex digits, got "@sha256:abc"',
    ],
    [`oci:@sha256:${HEX}`, 'the artifact name is missing before its tag or pin'],
    ['oci::v1', 'the artifact name is missing before its tag or pin'],
    ['oci:ftp://r.example/t/m', 'unsupported scheme "ftp://" (use http:// or https://)'],
    ['oci:http://smollm2', 'an explicit scheme needs a registry host'],
    ['oci:r_x.example/t/m', 'registry host "r_x.example" is not a host name'],
    ['oci:r.example:99999999/t/m', 'registry host "r.example:99999999" is not a host name or address'],
    ['oci:r.example/../m', 'repository part ".." must be lowercase'],
    [`oci:r.example/${'a'.repeat(250)}`, 'the name is longer than 255 characters'],
    ['oci:ai/smollm2 sha256=x', 'unknown option sha256='],
  ])('%s', (line, why) => {
    expect(() => parse(line)).toThrow(`invalid model line "${line}": ${why}`);
  });
});
