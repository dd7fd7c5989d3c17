import { parseLine } from '../../src/refs/index.js';
import { modelLines } from '../../src/refs/line.js';
import { DEFAULT_SOURCES } from '../../src/sources/index.js';

const hex = 'ab'.repeat(32);
const key = (line: string) => parseLine(line, DEFAULT_SOURCES).key;

describe('model lines', () => {
  it('drop a trailing " # comment", blank lines and comment lines, as YAML users write them', () => {
    const text = [
      '  # the models of the eval job',
      'ollama:qwen2.5:0.5b                 # registry.ollama.ai/library/qwen2.5:0.5b',
      '',
      'hf:o/r@v1 include=*.json\t# tab before the hash',
      `https://h.example/f.gguf#frag sha256=${hex} #a comment with no space after the hash`,
      'ollama:x#notacomment',
    ].join('\n');
    expect(modelLines(text)).toEqual([
      'ollama:qwen2.5:0.5b',
      'hf:o/r@v1 include=*.json',
      `https://h.example/f.gguf#frag sha256=${hex}`,
      'ollama:x#notacomment',
    ]);
  });

  it('parse without their comment, which is not part of the line', () => {
    const ref = parseLine('hf:o/r   # pinned later', DEFAULT_SOURCES);
    expect(ref.line).toBe('hf:o/r');
    expect(ref.key).toBe('hf:o/r@main');
  });
});

describe('canonical keys: two ways of writing one model are one line', () => {
  it.each([
    ['hf:a/b', 'hf:a/b@main'],
    ['hf:a/b@main', 'hf:a/b@main'],
    ['hf:datasets/a/b', 'hf:datasets/a/b@main'],
    ['hf:spaces/a/b@refs/pr/3', 'hf:spaces/a/b@refs/pr/3'],
    ['hf:a/b exclude=*.bin include=*.json', 'hf:a/b@main include=*.json exclude=*.bin'],
    ['ollama:qwen2.5', 'ollama:registry.ollama.ai/library/qwen2.5:latest'],
    ['ollama:library/qwen2.5:0.5b', 'ollama:registry.ollama.ai/library/qwen2.5:0.5b'],
    ['ollama:https://ghcr.io/o/m:v1', 'ollama:ghcr.io/o/m:v1'],
    ['ollama:http://127.0.0.1:5000/t/m', 'ollama:http://127.0.0.1:5000/t/m:latest'],
    [`ollama:m@sha256:${hex}`, `ollama:registry.ollama.ai/library/m:latest@sha256:${hex}`],
    [`https://h.example/f.gguf    sha256=${hex}`, `https://h.example/f.gguf sha256=${hex}`],
    [`https://H.example/f.gguf#x sha256=${hex.toUpperCase()}`, `https://h.example/f.gguf sha256=${hex}`],
  ])('%s → %s', (line, canonical) => {
    expect(key(line)).toBe(canonical);
    // The canonical form is a line that parses to itself.
    expect(key(canonical)).toBe(canonical);
  });

  it('keeps lines that name different models apart', () => {
    expect(key('hf:a/b@v1')).not.toBe(key('hf:a/b'));
    expect(key('ollama:m:1b')).not.toBe(key('ollama:m'));
    expect(key('hf:a/b include=*.json')).not.toBe(key('hf:a/b'));
  });
});
