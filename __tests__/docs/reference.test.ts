import { COMMAND_FLAGS } from '../../src/cli/args.js';
import { actionSpec, codeSpans, type Doc, type Table, tables, userDocs } from './examples.js';

/**
 * The reference tables of README.md and docs/*.md against the sources of truth (issue 12): the
 * inputs and outputs of action.yml, the CLI's own option table (src/cli/args.ts). Every table
 * whose first column is `input`, `output` or `option` may only name what exists, with the
 * defaults action.yml gives; README.md must hold one complete table of each, so none can drift.
 */

const spec = actionSpec();
const docs = userDocs();
const readme = docs.find((d) => d.file === 'README.md')!;
const all = docs.flatMap((doc) => tables(doc.text).map((table) => ({ doc, table })));
const kind = (t: Table) => t.header[0]!.toLowerCase();
const of = (k: string) => all.filter(({ table }) => kind(table) === k);
const where = (doc: Doc, t: Table) => `${doc.file}:${t.line}`;
const column = (t: Table, name: string) => t.header.findIndex((h) => h.toLowerCase() === name);

/** Every flag of every command (help aside), by flag: the commands that take it. */
function cliFlags(): Map<string, { commands: Set<string>; type: 'string' | 'boolean' }> {
  const flags = new Map<string, { commands: Set<string>; type: 'string' | 'boolean' }>();
  for (const [command, options] of Object.entries(COMMAND_FLAGS)) {
    for (const [name, option] of Object.entries(options)) {
      if (name === 'help') continue;
      const entry = flags.get(name) ?? { commands: new Set<string>(), type: option.type };
      entry.commands.add(command);
      flags.set(name, entry);
    }
  }
  return flags;
}

/** `--name VALUE` / `-f, --file FILE` / `--insecure` → [name, has a value]. */
function flagsIn(cell: string): [string, boolean][] {
  return codeSpans(cell).flatMap((span) => {
    const m = /--([a-z0-9-]+)(\s+\S+)?/.exec(span.replace(/^-\w,\s*/, ''));
    return m ? [[m[1]!, m[2] !== undefined] as [string, boolean]] : [];
  });
}

describe('input tables', () => {
  test.each(of('input').map(({ doc, table }) => [where(doc, table), table] as const))(
    '%s names only inputs of action.yml, with their defaults',
    (_where, table) => {
      const problems: string[] = [];
      const d = column(table, 'default');
      for (const row of table.rows) {
        for (const name of codeSpans(row[0]!)) {
          const input = spec.inputs.get(name);
          if (!input) problems.push(`"${name}" is not an input of action.yml`);
          else if (d >= 0 && input.default !== undefined && !codeSpans(row[d] ?? '').includes(input.default))
            problems.push(`"${name}": default should be \`${input.default}\`, the table says ${row[d]}`);
          else if (d >= 0 && input.required && !/required/.test(row[d] ?? ''))
            problems.push(`"${name}" is required: the default column should say so`);
        }
      }
      expect(problems).toEqual([]);
    },
  );

  test('README.md has one table with every input of action.yml', () => {
    const complete = of('input').filter(
      ({ doc, table }) =>
        doc === readme &&
        [...spec.inputs.keys()].every((n) => table.rows.some((r) => codeSpans(r[0]!).includes(n))),
    );
    const best = of('input')
      .filter(({ doc }) => doc === readme)
      .map(({ table }) => table.rows.flatMap((r) => codeSpans(r[0]!)));
    const missing = [...spec.inputs.keys()].filter((n) => !best.some((names) => names.includes(n)));
    expect({ tables: complete.length, missing }).toEqual({ tables: 1, missing: [] });
  });
});

describe('output tables', () => {
  test.each(of('output').map(({ doc, table }) => [where(doc, table), table] as const))(
    '%s names only outputs of action.yml',
    (_where, table) => {
      const names = table.rows.flatMap((r) => codeSpans(r[0]!));
      expect(names.filter((n) => !spec.outputs.includes(n))).toEqual([]);
    },
  );

  test('README.md has one table with every output of action.yml', () => {
    const complete = of('output').filter(
      ({ doc, table }) =>
        doc === readme && spec.outputs.every((n) => table.rows.some((r) => codeSpans(r[0]!).includes(n))),
    );
    expect(complete.length).toBe(1);
  });
});

describe('CLI option tables', () => {
  const flags = cliFlags();

  test.each(of('option').map(({ doc, table }) => [where(doc, table), table] as const))(
    '%s names only flags the CLI takes, for the commands it lists, with a value where one is needed',
    (_where, table) => {
      const c = column(table, 'commands');
      const problems: string[] = [];
      for (const row of table.rows) {
        const commands = c >= 0 ? codeSpans(row[c] ?? '') : ['pull'];
        for (const [name, valued] of flagsIn(row[0]!)) {
          const flag = flags.get(name);
          if (!flag) {
            problems.push(`--${name} is no flag of the CLI`);
            continue;
          }
          for (const command of commands)
            if (!flag.commands.has(command)) problems.push(`model-pull ${command} takes no --${name}`);
          if (valued !== (flag.type === 'string'))
            problems.push(`--${name} ${flag.type === 'string' ? 'takes a value' : 'takes no value'}`);
        }
      }
      expect(problems).toEqual([]);
    },
  );

  test('README.md has one table with every flag of every command, and the commands that take it', () => {
    const [table, ...others] = of('option')
      .filter(({ doc, table }) => doc === readme && column(table, 'commands') >= 0)
      .map(({ table }) => table);
    expect(others).toEqual([]);
    expect(table).toBeDefined();
    const c = column(table!, 'commands');
    const listed = new Map<string, Set<string>>();
    for (const row of table!.rows)
      for (const [name] of flagsIn(row[0]!))
        listed.set(name, new Set([...(listed.get(name) ?? []), ...codeSpans(row[c] ?? '')]));
    const missing = [...flags].flatMap(([name, flag]) =>
      [...flag.commands]
        .filter((command) => !listed.get(name)?.has(command))
        .map((command) => `${command} --${name}`),
    );
    expect(missing).toEqual([]);
  });
});
