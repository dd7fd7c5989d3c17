import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  actionSpec,
  type Block,
  codeBlocks,
  jsonProblems,
  prose,
  ROOT,
  shellProblems,
  shellWords,
  userDocs,
  yamlProblems,
} from './examples.js';

/**
 * Every YAML, shell and JSON example in README.md and docs/*.md, checked the way a user would
 * find out by copying it (issue 12): YAML parses, a model-pull step uses only inputs action.yml
 * declares and reads only its outputs, model lines parse, CLI commands and flags exist (the CLI's
 * own argument parser decides), `npm run` scripts exist. Placeholders (`<64 hex>`, `…`, `${{ }}`)
 * are skipped where a value is expected.
 */

const spec = actionSpec();
const docs = userDocs();
const blocks = docs.flatMap(codeBlocks);
const named = (kinds: readonly string[]) =>
  blocks.filter((b) => kinds.includes(b.lang)).map((b) => [`${b.doc.file}:${b.line}`, b] as [string, Block]);

const YAML = named(['yaml', 'yml']);
const SHELL = named(['sh', 'bash', 'shell', 'console']);
const JSON_BLOCKS = named(['json']);

describe('the documentation has examples to check', () => {
  test('README.md holds YAML and shell examples, all in a known language', () => {
    expect(YAML.filter(([name]) => name.startsWith('README.md')).length).toBeGreaterThan(3);
    expect(SHELL.filter(([name]) => name.startsWith('README.md')).length).toBeGreaterThan(1);
    // nginx: docs/scale-out.md's proxy_cache block (the directives __tests__/helpers/nginx.ts runs).
    const known = ['yaml', 'yml', 'sh', 'bash', 'shell', 'console', 'json', 'text', 'python', 'nginx', ''];
    expect(
      blocks.filter((b) => !known.includes(b.lang)).map((b) => `${b.doc.file}:${b.line} ${b.lang}`),
    ).toEqual([]);
  });
});

describe.each(YAML)('YAML example %s', (_name, block) => {
  test('parses, and uses only what action.yml declares', () => {
    expect(yamlProblems(block.code, spec)).toEqual([]);
  });
});

describe.each(SHELL)('shell example %s', (_name, block) => {
  test('runs only commands and flags the CLI has', () => {
    expect(shellProblems(block.code)).toEqual([]);
  });
});

describe.each(JSON_BLOCKS)('JSON example %s', (_name, block) => {
  test('parses', () => {
    expect(jsonProblems(block.code)).toEqual([]);
  });
});

describe.each(docs.map((d) => [d.file, d] as const))('prose of %s', (_file, doc) => {
  test('issue numbers name their project (ollama#6308, not #6308)', () => {
    const bare = [...prose(doc).matchAll(/(^|[\s(,;])#(\d+)\b/gm)].map((m) => `#${m[2]}`);
    expect(bare).toEqual([]);
  });

  test('relative links lead to files that exist', () => {
    const links = [...prose(doc).matchAll(/\]\((?!https?:|#|mailto:)([^)#\s]+)(#[^)]*)?\)/g)].map(
      (m) => m[1]!,
    );
    expect(links.filter((l) => !existsSync(join(ROOT, dirname(doc.file), l)))).toEqual([]);
  });
});

describe('the checker itself finds what a user would trip on', () => {
  const step = (inputs: string) =>
    `- uses: org/model-pull@v1\n  id: m\n  with:\n${inputs
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n')}\n`;

  test.each([
    [step('models: ollama:qwen2.5:0.5b\nhf-tokn: x'), 'with: hf-tokn: action.yml has no input "hf-tokn"'],
    [step('hf-token: x'), 'with: the required input "models" is missing'],
    [step('models: |\n  hf:owner'), 'invalid model line "hf:owner"'],
    [
      `${step('models: ollama:x')}- run: echo \${{ steps.m.outputs.pathz }}\n`,
      'action.yml has no output "pathz"',
    ],
    ['models: |\n  ollama:x\nlock-mod: update', 'with: lock-mod: action.yml has no input "lock-mod"'],
    ['- uses: org/model-pull@v1\n  with:\n   models: x\n  bad', 'YAML: '],
    ['script:\n  - npx --yes github:org/model-pull pull --lockfle a.lock', 'unknown option --lockfle'],
  ])('%j', (code, problem) => {
    expect(yamlProblems(code, spec).join('\n')).toContain(problem);
  });

  test.each([
    ['model-pull pul ollama:x', 'model-pull has no command "pul"'],
    ['model-pull pull --bogus ollama:x', 'unknown option --bogus'],
    ['model-pull verify ollama:x', 'takes no model lines'],
    ['x=$(model-pull pull --json hf:o | jq .)', 'invalid model line "hf:o"'],
    ['npx model-pull lock \\\n  --lockfile m.lock --nope', 'unknown option --nope'],
    ['npm run bnech', 'package.json has no such script'],
    ["echo '# not a comment' && model-pull pull --nope x # model-pull pull ok", 'unknown option --nope'],
  ])('%j', (code, problem) => {
    expect(shellProblems(code).join('\n')).toContain(problem);
  });

  test('accepts placeholders and quoting as a shell reads them', () => {
    expect(shellWords(`pull 'hf:o/r include=*.json' https://h/f.gguf sha256=<64 hex> | jq`)).toEqual([
      'pull',
      'hf:o/r include=*.json',
      'https://h/f.gguf',
      'sha256=<64 hex>',
    ]);
    expect(shellProblems('model-pull pull https://h.example/f.gguf sha256=<64 hex> # a comment')).toEqual([]);
    expect(
      shellProblems('git clone https://github.com/org/model-pull && npm link   # model-pull on PATH'),
    ).toEqual([]);
  });
});
