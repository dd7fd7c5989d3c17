// `npm run build` runs this: action.yml and README.md say what the source list declares (the line
// forms, each source's inputs and flags), so adding a source edits no file outside its folder and
// the list. Run with Node's type stripping: node --experimental-transform-types --import
// ./__tests__/helpers/ts-hooks.mjs scripts/sources-reference.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { COMMAND_FLAGS } from '../src/cli/args.js';
import { DEFAULT_SOURCES } from '../src/sources/index.js';
import { writeActionYml, writeReadme } from '../src/sources/reference.js';

const root = resolve(import.meta.dirname, '..');
const commandsOf = (flag: string) =>
  Object.entries(COMMAND_FLAGS)
    .filter(([, flags]) => Object.hasOwn(flags, flag))
    .map(([command]) => command);

function rewrite(file: string, write: (text: string) => string): void {
  const path = join(root, file);
  const before = readFileSync(path, 'utf8');
  const after = write(before);
  if (after !== before) {
    writeFileSync(path, after);
    console.log(`${file}: the sources' inputs and flags rewritten from src/sources/`);
  }
}

rewrite('action.yml', (text) => writeActionYml(text, DEFAULT_SOURCES));
rewrite('README.md', (text) => writeReadme(text, DEFAULT_SOURCES, commandsOf));
