import { isModelPullError } from '../../../src/errors.js';
import { splitLine } from '../../../src/refs/line.js';
import { ollamaName, parseOllamaRef, repositoryOf } from '../../../src/sources/ollama/ref.js';

const parse = (line: string) => parseOllamaRef(splitLine(line));
const HEX = 'a'.repeat(38) + '0123456789abcdef0123456789';
const P80 = '8'.repeat(80);
const P350 = 'h'.repeat(350);

describe('parseOllamaRef: names Ollama accepts', () => {
  test.each([
    // [line, scheme (only when written), host, namespace, model, tag]
    ['ollama:llama3.2', undefined, 'registry.ollama.ai', 'library', 'llama3.2', 'latest'],
    ['ollama:llama3.2:1b', undefined, 'registry.ollama.ai', 'library', 'llama3.2', '1b'],
    ['ollama:library/llama3.2:1b', undefined, 'registry.ollama.ai', 'library', 'llama3.2', '1b'],
    ['ollama:team/model', undefined, 'registry.ollama.ai', 'team', 'model', 'latest'],
    [
      'ollama:registry.example.com:5000/team/model:tag',
      undefined,
      'registry.example.com:5000',
      'team',
      'model',
      'tag',
    ],
    // the last ':' is before the last '/': it is the port, not a tag
    [
      'ollama:registry.example.com:5000/team/model',
      undefined,
      'registry.example.com:5000',
      'team',
      'model',
      'latest',
    ],
    ['ollama:http://127.0.0.1:5000/team/model:tag', 'http', '127.0.0.1:5000', 'team', 'model', 'tag'],
    ['ollama:HTTPS://h/n/m', 'https', 'h', 'n', 'm', 'latest'],
    [
      'ollama:registry.ollama.ai/library/dolphin-mistral:7b-v2.6-dpo-laser-q6_K',
      undefined,
      'registry.ollama.ai',
      'library',
      'dolphin-mistral',
      '7b-v2.6-dpo-laser-q6_K',
    ],
    ['ollama:_why/_the/_lucky:_stiff', undefined, '_why', '_the', '_lucky', '_stiff'],
    ['ollama:h/n/m:t', undefined, 'h', 'n', 'm', 't'],
    ['ollama:a./n/m', undefined, 'a.', 'n', 'm', 'latest'],
    [`ollama:${P350}/${P80}/${P80}:${P80}`, undefined, P350, P80, P80, P80],
  ])('%s', (line, scheme, host, namespace, model, tag) => {
    const ref = parse(line);
    expect(ref).toEqual({ line, scheme, host, namespace, model, tag });
    expect(ollamaName(ref)).toBe(`${host}/${namespace}/${model}:${tag}`);
  });

  test('a pin without a tag is stored under latest, as Ollama merges its default tag', () => {
    const ref = parse(`ollama:llama3.2@sha256:${HEX}`);
    expect(ref.pin).toBe(HEX);
    expect(ref.tag).toBe('latest');
    expect(ollamaName(ref)).toBe('registry.ollama.ai/library/llama3.2:latest');
  });

  test('a pin with a tag and a port keeps both', () => {
    const ref = parse(`ollama:localhost:5000/team/m:q4@sha256:${HEX}`);
    expect([ref.host, ref.namespace, ref.model, ref.tag, ref.pin]).toEqual([
      'localhost:5000',
      'team',
      'm',
      'q4',
      HEX,
    ]);
  });

  test('a written scheme is kept; without one the registry client chooses; repository path', () => {
    const ref = parse('ollama:http://127.0.0.1:5000/team/model:tag');
    expect(ref.scheme).toBe('http');
    expect(repositoryOf(ref)).toBe('team/model');
    expect(parse('ollama:llama3.2').scheme).toBeUndefined();
  });
});

describe('parseOllamaRef: bad names fail quoting the line', () => {
  test.each([
    ['ollama:', 'the model name is missing after ollama:'],
    ['ollama:mm:', 'the tag after ":" is empty'],
    ['ollama:/nn/mm', 'empty part between "/": expected [host/][namespace/]model[:tag]'],
    ['ollama://', 'empty part between "/": expected [host/][namespace/]model[:tag]'],
    ['ollama:hh//mm', 'empty part between "/": expected [host/][namespace/]model[:tag]'],
    ['ollama:a/b/c/d', 'too many "/": expected [host/][namespace/]model[:tag]'],
    ['ollama:-hh/nn/mm:tt', 'host "-hh" must start with a letter, a digit or _'],
    ['ollama:hh/-nn/mm:tt', 'namespace "-nn" must start with a letter, a digit or _'],
    ['ollama:hh/nn/-mm:tt', 'model "-mm" must start with a letter, a digit or _'],
    ['ollama:hh/nn/mm:-tt', 'tag "-tt" must start with a letter, a digit or _'],
    ['ollama:.hidden', 'model ".hidden" must start with a letter, a digit or _'],
    ['ollama:host/name:space/model:tag', 'namespace "name:space" may only contain letters, digits, _ and -'],
    ['ollama:hh/n.s/mm', 'namespace "n.s" may only contain letters, digits, _ and -'],
    ['ollama:m^', 'model "m^" may only contain letters, digits, _, - and .'],
    ['ollama:m:t+1', 'tag "t+1" may only contain letters, digits, _, - and .'],
    ['ollama:h%2f/n/m', 'host "h%2f" may only contain letters, digits, _, -, . and :'],
    [`ollama:${'m'.repeat(81)}`, `model "${'m'.repeat(60)}…" is longer than 80 characters`],
    [`ollama:m:${'t'.repeat(81)}`, `tag "${'t'.repeat(60)}…" is longer than 80 characters`],
    [`ollama:${'n'.repeat(81)}/m`, `namespace "${'n'.repeat(60)}…" is longer than 80 characters`],
    [`ollama:${'h'.repeat(351)}/n/m`, `host "${'h'.repeat(60)}…" is longer than 350 characters`],
    ['ollama:ftp://h/n/m', 'unsupported scheme "ftp://" (use http:// or https://)'],
    ['ollama:http://model', 'an explicit scheme needs a host: scheme://host/namespace/model[:tag]'],
    ['ollama:https://ns/model', 'an explicit scheme needs a host: scheme://host/namespace/model[:tag]'],
    ['ollama:m@sha256:abc', 'a pin must be @sha256: followed by 64 lowercase hex digits, got "@sha256:abc"'],
    [
      `ollama:m@sha256:${HEX.toUpperCase()}`,
      `a pin must be @sha256: followed by 64 lowercase hex digits, got "@sha256:${HEX.toUpperCase().slice(0, 53)}…"`,
    ],
    ['ollama:m@latest', 'a pin must be @sha256: followed by 64 lowercase hex digits, got "@latest"'],
    ['ollama:m@', 'a pin must be @sha256: followed by 64 lowercase hex digits, got "@"'],
    // valid for Ollama's parser, but no URL can reach such a host
    [
      'ollama:host:https/namespace/model:tag',
      'host "host:https" is not a network address (expected host or host:port)',
    ],
    ['ollama:h:99999/n/m', 'host "h:99999" is not a network address (expected host or host:port)'],
    ['ollama:m:t include=*.gguf', 'unknown option include='],
    ['ollama:m sha256=abc', 'unknown option sha256='],
  ])('%s', (line, reason) => {
    let caught: unknown;
    try {
      parse(line);
    } catch (error) {
      caught = error;
    }
    expect(isModelPullError(caught, 'ERR_BAD_REFERENCE')).toBe(true);
    expect((caught as Error).message).toBe(`invalid model line "${line}": ${reason}`);
  });
});
