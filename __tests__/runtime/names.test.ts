import { canonicalModelName, missingModels } from '../../src/runtime/names.js';

describe('canonicalModelName', () => {
  test.each([
    ['llama3.2', 'registry.ollama.ai/library/llama3.2:latest'],
    ['llama3.2:1b', 'registry.ollama.ai/library/llama3.2:1b'],
    ['library/llama3.2:1b', 'registry.ollama.ai/library/llama3.2:1b'],
    ['registry.ollama.ai/library/llama3.2:1b', 'registry.ollama.ai/library/llama3.2:1b'],
    ['Registry.Ollama.AI/Library/Llama3.2:1B', 'registry.ollama.ai/library/llama3.2:1b'],
    ['team/model', 'registry.ollama.ai/team/model:latest'],
    ['registry.example.com:5000/team/model', 'registry.example.com:5000/team/model:latest'],
    ['registry.example.com:5000/team/model:v2', 'registry.example.com:5000/team/model:v2'],
    ['http://127.0.0.1:5000/team/model:tag', '127.0.0.1:5000/team/model:tag'],
    [`qwen@sha256:${'a'.repeat(64)}`, 'registry.ollama.ai/library/qwen:latest'],
  ])('%s → %s', (name, canonical) => {
    expect(canonicalModelName(name)).toBe(canonical);
  });
});

describe('missingModels', () => {
  test('matches the short names /api/tags shows against full names, in the given order', () => {
    const listed = ['tiny:1b', 'team/helper:latest', 'hf.co/org/repo:Q4_K_M'];
    expect(
      missingModels(
        ['registry.ollama.ai/library/tiny:1b', 'zeta', 'team/helper', 'hf.co/org/repo:q4_k_m', 'alpha:2'],
        listed,
      ),
    ).toEqual(['zeta', 'alpha:2']);
  });
});
