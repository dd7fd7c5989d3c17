import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { COMMAND_FLAGS, parseCommandArgs } from '../../src/cli/args.js';
import { describeError } from '../../src/errors.js';
import { parseLines } from '../../src/refs/index.js';
import { modelLines } from '../../src/refs/line.js';
import { DEFAULT_SOURCES } from '../../src/sources/index.js';

/**
 * Reads the user documentation (README.md and docs/*.md) the way a user copies from it: every
 * fenced example, where it is, and what it claims about action.yml and the CLI. The YAML parser
 * is the `yaml` package (eemeli/yaml): YAML 1.2 with the exact errors and source positions a
 * hand-written reader would get wrong, well kept, no dependencies.
 */

export const ROOT = resolve(import.meta.dirname, '..', '..');

export interface Doc {
  /** Relative to the repository root. */
  readonly file: string;
  readonly text: string;
}

export interface Block {
  readonly doc: Doc;
  /** The fence's info word: yaml, sh, json, … ('' when none). */
  readonly lang: string;
  readonly code: string;
  /** 1-based line of the first code line in its file. */
  readonly line: number;
}

/** README.md and every docs/*.md. */
export function userDocs(): Doc[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs].map((file) => ({ file, text: readFileSync(join(ROOT, file), 'utf8') }));
}

/** Fenced code blocks (``` or ~~~, any indent a list item gives them). */
export function codeBlocks(doc: Doc): Block[] {
  const blocks: Block[] = [];
  const lines = doc.text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      if (lines[j]!.trimStart().startsWith(fence!) && lines[j]!.trim() === fence) break;
      body.push(lines[j]!.startsWith(indent!) ? lines[j]!.slice(indent!.length) : lines[j]!.trimStart());
    }
    blocks.push({ doc, lang: lang!.toLowerCase(), code: body.join('\n'), line: i + 2 });
    i = j;
  }
  return blocks;
}

/** The markdown outside code blocks (for prose checks), code lines blanked so line numbers hold. */
export function prose(doc: Doc): string {
  const lines = doc.text.split('\n');
  let fence: string | undefined;
  return lines
    .map((line) => {
      const m = /^\s*(`{3,}|~{3,})/.exec(line);
      if (m && fence === undefined) {
        fence = m[1];
        return '';
      }
      if (fence !== undefined) {
        if (line.trim() === fence) fence = undefined;
        return '';
      }
      return line;
    })
    .join('\n');
}

export interface ActionSpec {
  readonly inputs: ReadonlyMap<string, { readonly default?: string; readonly required: boolean }>;
  readonly outputs: readonly string[];
}

/** action.yml's inputs (with default and required) and outputs. */
export function actionSpec(): ActionSpec {
  const yml = parseYaml(readFileSync(join(ROOT, 'action.yml'), 'utf8')) as {
    inputs: Record<string, { default?: unknown; required?: unknown }>;
    outputs: Record<string, unknown>;
  };
  const inputs = new Map(
    Object.entries(yml.inputs).map(([name, spec]) => [
      name,
      {
        ...(spec.default === undefined ? {} : { default: String(spec.default) }),
        required: spec.required === true,
      },
    ]),
  );
  return { inputs, outputs: Object.keys(yml.outputs) };
}

/** Words a placeholder is written with: lines holding one are not parsed as model lines. */
const PLACEHOLDER = /<[^>\n]*>|…|\$\{\{|\$[A-Z_({]/;

/** Problems with one model line ('' when it parses or only shows a placeholder). */
function lineProblems(lines: readonly string[]): string[] {
  const real = lines.filter((l) => !PLACEHOLDER.test(l));
  try {
    parseLines(real, DEFAULT_SOURCES);
    return [];
  } catch (error) {
    return [describeError(error)];
  }
}

/** A model-pull step of a workflow: `uses: <owner>/model-pull@<ref>` (or the repository itself). */
const MODEL_PULL_USES = /(^|\/)model-pull(@|$)|^\.\/?$/;

/**
 * Problems with a YAML example: it must parse; a model-pull step may only use inputs action.yml
 * declares (and must give `models`), its lines must parse, expressions may only read outputs
 * action.yml declares; shell in `run:` / `script:` is checked as a shell example. A fragment
 * with no step (`models: |`, `registry-host: …`) is read as a step's `with:` when one of its keys
 * is an input.
 */
export function yamlProblems(code: string, spec: ActionSpec): string[] {
  const problems: string[] = [];
  const docs = parseAllDocuments(code);
  for (const doc of docs) {
    for (const error of [...doc.errors, ...doc.warnings])
      problems.push(`YAML: ${error.message.split('\n')[0]}`);
  }
  if (problems.length) return problems;
  for (const doc of docs) {
    const value = doc.toJS() as unknown;
    const steps: Record<string, unknown>[] = [];
    const stepIds = new Set<string>();
    const shell: string[] = [];
    walk(value, (node) => {
      if (typeof node.uses === 'string' && MODEL_PULL_USES.test(node.uses)) {
        steps.push(node);
        if (typeof node.id === 'string') stepIds.add(node.id);
      }
      if (typeof node.run === 'string') shell.push(node.run);
      if (Array.isArray(node.script)) shell.push(...node.script.filter((s) => typeof s === 'string'));
      else if (typeof node.script === 'string') shell.push(node.script);
    });
    for (const step of steps) {
      const inputs = step.with;
      if (inputs === undefined || inputs === null || typeof inputs !== 'object') {
        problems.push(`a model-pull step without with: models`);
        continue;
      }
      problems.push(...inputProblems(inputs as Record<string, unknown>, spec, true));
    }
    if (steps.length === 0 && value && typeof value === 'object' && !Array.isArray(value)) {
      const keys = Object.keys(value);
      if (keys.some((k) => spec.inputs.has(k)))
        problems.push(...inputProblems(value as Record<string, unknown>, spec, false));
    }
    for (const m of code.matchAll(/steps\.([\w-]+)\.outputs\.([\w-]+)/g)) {
      if ((stepIds.has(m[1]!) || stepIds.size === 0) && !spec.outputs.includes(m[2]!))
        problems.push(`steps.${m[1]}.outputs.${m[2]}: action.yml has no output "${m[2]}"`);
    }
    for (const script of shell) problems.push(...shellProblems(script));
  }
  return problems;
}

function inputProblems(inputs: Record<string, unknown>, spec: ActionSpec, step: boolean): string[] {
  const problems: string[] = [];
  for (const name of Object.keys(inputs)) {
    if (!spec.inputs.has(name)) problems.push(`with: ${name}: action.yml has no input "${name}"`);
  }
  if (step) {
    for (const [name, input] of spec.inputs)
      if (input.required && !(name in inputs)) problems.push(`with: the required input "${name}" is missing`);
  }
  if (typeof inputs.models === 'string') problems.push(...lineProblems(modelLines(inputs.models)));
  return problems;
}

function walk(value: unknown, visitNode: (node: Record<string, unknown>) => void): void {
  if (Array.isArray(value)) for (const v of value) walk(v, visitNode);
  else if (value && typeof value === 'object') {
    visitNode(value as Record<string, unknown>);
    for (const v of Object.values(value)) walk(v, visitNode);
  }
}

/** How the docs start the CLI: `model-pull`, `npx [--yes] model-pull|github:…/model-pull`, the bundle. */
const INVOCATION =
  /(?:^|[\s(;&|`])(?:npx\s+(?:--yes\s+|-y\s+)?(?:model-pull|github:[\w.-]+\/model-pull(?:#[\w./-]+)?)|model-pull|node\s+dist\/cli\/index\.js)(?=\s|$)/g;

/**
 * Problems with a shell example: every model-pull command must exist and take the flags given
 * (checked by the CLI's own argument parser), and the model lines it names must parse.
 * `npm run X` must name a script of package.json.
 */
export function shellProblems(code: string): string[] {
  const problems: string[] = [];
  const text = code.replace(/\\\n\s*/g, ' ');
  const scripts = Object.keys(
    (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> })
      .scripts,
  );
  for (const raw of text.split('\n')) {
    const line = withoutShellComment(raw.replace(/^\s*\$\s+/, ''));
    for (const m of line.matchAll(/\bnpm run ([\w:-]+)/g))
      if (!scripts.includes(m[1]!)) problems.push(`npm run ${m[1]}: package.json has no such script`);
    for (const m of line.matchAll(INVOCATION)) {
      const words = shellWords(line.slice(m.index + m[0].length));
      problems.push(...commandProblems(words).map((p) => `\`${line.trim()}\`: ${p}`));
    }
  }
  return problems;
}

/** The line up to an unquoted `#` that starts a word (a shell comment). */
function withoutShellComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

const TOP_LEVEL = new Set(['--help', '-h', 'help', '--version', '-V']);

function commandProblems(words: readonly string[]): string[] {
  const [command, ...args] = words;
  if (command === undefined || TOP_LEVEL.has(command)) return [];
  if (!Object.hasOwn(COMMAND_FLAGS, command)) return [`model-pull has no command "${command}"`];
  let lines: readonly string[];
  try {
    lines = parseCommandArgs(command, args).lines;
  } catch (error) {
    return [describeError(error)];
  }
  return lineProblems(lines);
}

/**
 * The words of one shell command up to the first unquoted `|`, `;`, `&`, `)`, `>`, or `#`
 * comment; quotes removed. A `<placeholder>` stays one word.
 */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let i = 0;
  const push = () => {
    if (word !== undefined) words.push(word);
    word = undefined;
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      word = (word ?? '') + text.slice(i + 1, end < 0 ? text.length : end);
      i = end < 0 ? text.length : end + 1;
    } else if (c === '<' && /^<[^>\s][^>\n]*>/.test(text.slice(i))) {
      const end = text.indexOf('>', i);
      word = (word ?? '') + text.slice(i, end + 1);
      i = end + 1;
    } else if (/\s/.test(c)) {
      push();
      i++;
    } else if ('|;&)>'.includes(c) || (c === '#' && word === undefined)) {
      break;
    } else if (c === '\\' && i + 1 < text.length) {
      word = (word ?? '') + text[i + 1];
      i += 2;
    } else {
      word = (word ?? '') + c;
      i++;
    }
  }
  push();
  return words;
}

/** Problems with a JSON example: it must parse (`…` inside strings is fine). */
export function jsonProblems(code: string): string[] {
  try {
    JSON.parse(code);
    return [];
  } catch (error) {
    return [`JSON: ${describeError(error)}`];
  }
}

/** Markdown tables: header cells and rows of cells (backticks kept), with their line. */
export interface Table {
  readonly line: number;
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

export function tables(text: string): Table[] {
  const lines = text.split('\n');
  const found: Table[] = [];
  const cells = (row: string) =>
    row
      .trim()
      .replace(/^\||\|$/g, '')
      .split(/(?<!\\)\|/)
      .map((c) => c.trim().replace(/\\\|/g, '|'));
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!/^\s*\|/.test(lines[i]!) || !/^\s*\|\s*:?-{3}/.test(lines[i + 1]!)) continue;
    const rows: string[][] = [];
    let j = i + 2;
    for (; j < lines.length && /^\s*\|/.test(lines[j]!); j++) rows.push(cells(lines[j]!));
    found.push({ line: i + 1, header: cells(lines[i]!), rows });
    i = j;
  }
  return found;
}

/** `name` from a cell such as `` `name` `` or `` `a` / `b` `` (every code span). */
export function codeSpans(cell: string): string[] {
  return [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
}
