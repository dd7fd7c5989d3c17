import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { COMMAND_FLAGS } from '../../src/cli/args.js';
import type { SourceOption } from '../../src/sources/descriptor.js';
import { DEFAULT_SOURCES } from '../../src/sources/index.js';
import { defaultText, helpRow, writeActionYml, writeReadme } from '../../src/sources/reference.js';
import { ROOT } from '../docs/examples.js';

// What action.yml and README.md say about the sources is written from the source list by
// `npm run build` (scripts/sources-reference.ts); these files must be what it writes.

const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');
const commandsOf = (flag: string) =>
  Object.entries(COMMAND_FLAGS)
    .filter(([, flags]) => Object.hasOwn(flags, flag))
    .map(([command]) => command);

test('action.yml and README.md are what npm run build writes from the source list', () => {
  const action = read('action.yml');
  const readme = read('README.md');
  expect(writeActionYml(action, DEFAULT_SOURCES)).toBe(action);
  expect(writeReadme(readme, DEFAULT_SOURCES, commandsOf)).toBe(readme);
  // Written twice, the same text: the markers hold the block, rows are replaced in place.
  const twice = writeActionYml(writeActionYml(action, DEFAULT_SOURCES), DEFAULT_SOURCES);
  expect(twice).toBe(action);
});

test('action.yml lists every source line form and declares each source input once', () => {
  const spec = parseYaml(read('action.yml')) as { inputs: Record<string, { description: string }> };
  for (const source of DEFAULT_SOURCES) expect(spec.inputs.models!.description).toContain(source.usage);
  for (const option of DEFAULT_SOURCES.flatMap((s) => s.options ?? []))
    expect(spec.inputs[option.name]).toEqual({
      description: `${option.help} (default ${defaultText(option)})`,
      required: false,
    });
});

test('defaults read as the settings module takes them: environment first, then the default', () => {
  const option: SourceOption = {
    name: 'x-dir',
    help: 'h',
    type: 'path',
    env: ['X_DIR', 'X_HOME'],
    default: '~/x',
  };
  expect(defaultText(option)).toBe('$X_DIR, else $X_HOME, else ~/x');
  expect(defaultText(option, (w) => `\`${w}\``)).toBe('`$X_DIR`, else `$X_HOME`, else `~/x`');
  expect(helpRow(option)).toBe('  --x-dir DIR             h ($X_DIR, else $X_HOME, else ~/x)');
  expect(helpRow({ name: 'x-key', help: 'a key', type: 'secret' })).toBe('  --x-key VALUE           a key');
});
