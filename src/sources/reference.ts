import type { SourceList, SourceOption } from './descriptor.js';

/**
 * What users read about the sources, written from their descriptors so that a new source is its
 * folder and one line in the list: the line forms in action.yml's `models` input, the sources'
 * own inputs in action.yml, their rows in the README's input and CLI option tables, and their
 * `--help` rows. `npm run build` rewrites action.yml and README.md with these
 * (scripts/sources-reference.ts); a test checks both are what it would write.
 */

/** What the flag's value is called: `--oci-dir DIR`. */
export function valueName(option: SourceOption): string {
  return option.type === 'path' ? 'DIR' : 'VALUE';
}

/** Where the value comes from when not given, in order: `$A, else ~/x` (`quote` wraps each). */
export function defaultText(option: SourceOption, quote: (word: string) => string = (w) => w): string {
  const words = [
    ...(option.env ?? []).map((name) => `$${name}`),
    ...(option.default ? [option.default] : []),
  ];
  return words.map(quote).join(', else ');
}

/** The option's row in `--help`: `  --oci-dir DIR           where … (~/.cache/model-pull/oci)`. */
export function helpRow(option: SourceOption): string {
  const from = defaultText(option);
  return `  --${`${option.name} ${valueName(option)}`.padEnd(22)}${option.help}${from ? ` (${from})` : ''}`;
}

const START =
  '  # The sources’ own inputs, written by `npm run build` from src/sources/*/index.ts: edit those.';
const END = '  # End of the sources’ inputs.';

/** One input of action.yml, as YAML: the description is a JSON string (a YAML double-quoted one). */
function actionInput(option: SourceOption): string {
  const from = defaultText(option);
  const secret = option.type === 'secret' ? '; masked in logs' : '';
  const description = `${option.help}${from ? ` (default ${from})` : ''}${secret}`;
  return `  ${option.name}:\n    description: ${JSON.stringify(description)}\n    required: false`;
}

/** `Model lines: a, b or c. Blank lines and # comments are ignored.` */
function modelsDescription(sources: SourceList): string {
  const forms = sources.map((s) => s.usage);
  const listed = forms.length > 1 ? `${forms.slice(0, -1).join(', ')} or ${forms.at(-1)}` : (forms[0] ?? '');
  return `Model lines, one per line: ${listed}. Blank lines and # comments are ignored.`;
}

/**
 * action.yml with the `models` description and the sources' inputs written from `sources`. The
 * inputs go between the marker comments, which are added after `models` when absent.
 */
export function writeActionYml(text: string, sources: SourceList): string {
  const models = /^( {2}models:\n {4}description: ).*$/m;
  if (!models.test(text)) throw new Error('action.yml has no models input with a description line');
  let out = text.replace(models, (_all, head: string) => head + JSON.stringify(modelsDescription(sources)));
  const inputs = sources.flatMap((s) => s.options ?? []).map(actionInput);
  const block = [START, ...inputs, END].join('\n');
  const start = out.indexOf(`${START}\n`);
  const end = out.indexOf(`${END}\n`);
  if (start >= 0 && end > start) return `${out.slice(0, start)}${block}${out.slice(end + END.length)}`;
  // First run: after the models input (its description and required lines).
  out = out.replace(/^( {2}models:\n(?: {4}.*\n)+)/m, (all) => `${all}${block}\n`);
  return out;
}

/** The commands of the CLI that take a flag, in the README's order. */
export type CommandsOf = (flag: string) => readonly string[];

/**
 * README.md with one row per source option in the input table (the one that lists `models`) and
 * in the CLI option table (the one with a `commands` column): an existing row of that option is
 * replaced where it stands, a new one goes at the table's end. Other rows are the README's own.
 */
export function writeReadme(text: string, sources: SourceList, commandsOf: CommandsOf): string {
  const options = sources.flatMap((s) => s.options ?? []);
  const code = (w: string) => `\`${w}\``;
  const cells = (...texts: string[]) => `|${texts.map((t) => (t ? ` ${t} ` : ' ')).join('|')}|`;
  const inputRow = (o: SourceOption) => cells(code(o.name), defaultText(o, code), o.help);
  const flagRow = (o: SourceOption) =>
    cells(
      code(`--${o.name} ${valueName(o)}`),
      commandsOf(o.name).map(code).join(' '),
      defaultText(o, code),
      o.help,
    );
  const lines = text.split('\n');
  fillTable(
    lines,
    '| input | default | meaning |',
    '| `models` |',
    options,
    inputRow,
    (o) => `| \`${o.name}\` |`,
  );
  fillTable(
    lines,
    '| option | commands | default | meaning |',
    '',
    options,
    flagRow,
    (o) => `| \`--${o.name} `,
  );
  return lines.join('\n');
}

/** Rewrites, in place, the first table under `header` that has a row starting with `having`. */
function fillTable(
  lines: string[],
  header: string,
  having: string,
  options: readonly SourceOption[],
  row: (o: SourceOption) => string,
  rowStart: (o: SourceOption) => string,
): void {
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== header) continue;
    let end = i + 2;
    while (end < lines.length && lines[end]!.startsWith('|')) end++;
    const rows = lines.slice(i + 2, end);
    if (!rows.some((r) => r.startsWith(having))) continue;
    for (const option of options) {
      const at = rows.findIndex((r) => r.startsWith(rowStart(option)));
      if (at >= 0) rows[at] = row(option);
      else rows.push(row(option));
    }
    lines.splice(i + 2, end - i - 2, ...rows);
    return;
  }
  throw new Error(`README.md has no table "${header}"${having ? ` listing ${having}` : ''}`);
}
