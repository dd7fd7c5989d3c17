import { parseArgs } from 'node:util';
import { Inputs } from '../constants.js';
import { ModelPullError } from '../errors.js';
import { claimingSource, type SourceList, sourceOptions } from '../sources/descriptor.js';
import { DEFAULT_SOURCES } from '../sources/index.js';

/** Flags shared with the action's inputs (same names, same defaults, same validation). */
export const SETTING_FLAGS = [
  Inputs.OllamaModels,
  Inputs.HfCache,
  Inputs.FilesDir,
  Inputs.HfEndpoint,
  Inputs.HfToken,
  Inputs.Concurrency,
  Inputs.Connections,
  Inputs.Verify,
  Inputs.CaCert,
  Inputs.Lockfile,
  Inputs.StallTimeout,
  Inputs.Retries,
  Inputs.RegistryHost,
  Inputs.RegistryUsername,
  Inputs.RegistryPassword,
  Inputs.AllowedRealmHosts,
  Inputs.RegistryMirror,
  Inputs.HfOciMirror,
] as const;

type OptionSpec = { type: 'string' | 'boolean'; short?: string };

/** Flags whose value is a count or seconds: a value that is not digits is refused at once. */
const NUMBER_FLAGS: ReadonlySet<string> = new Set([
  Inputs.Concurrency,
  Inputs.Connections,
  Inputs.StallTimeout,
  Inputs.Retries,
]);

/** What `lock` reads: it resolves lines (stores answer pinned lines offline) and writes no model. */
const LOCK_UNUSED: ReadonlySet<string> = new Set([
  Inputs.FilesDir,
  Inputs.Concurrency,
  Inputs.Connections,
  Inputs.Verify,
]);

const stringFlags = (names: readonly string[]): Record<string, OptionSpec> =>
  Object.fromEntries(names.map((name) => [name, { type: 'string' }]));

const HELP_FLAG: Record<string, OptionSpec> = { help: { type: 'boolean', short: 'h' } };

/**
 * Each command accepts only the flags it uses, so a flag given to the wrong command is a usage
 * error instead of being silently ignored. `pull` and `lock` also take the sources' own options.
 */
export function commandFlags(sources: SourceList): Readonly<Record<string, Record<string, OptionSpec>>> {
  const pullFlags: Record<string, OptionSpec> = {
    ...stringFlags(SETTING_FLAGS),
    ...stringFlags(sourceOptions(sources).map((o) => o.name)),
    insecure: { type: 'boolean' },
    file: { type: 'string', short: 'f' },
    ...HELP_FLAG,
  };
  return {
    pull: { ...pullFlags, [Inputs.LockMode]: { type: 'string' }, json: { type: 'boolean' } },
    lock: Object.fromEntries(Object.entries(pullFlags).filter(([name]) => !LOCK_UNUSED.has(name))),
    mirror: { ...pullFlags, to: { type: 'string' }, json: { type: 'boolean' } },
    verify: {
      ...stringFlags([Inputs.OllamaModels, Inputs.HfCache, Inputs.FilesDir]),
      ...stringFlags(sourceOptions(sources).map((o) => o.name)),
      json: { type: 'boolean' },
      ...HELP_FLAG,
    },
    demo: { keep: { type: 'boolean' }, ...HELP_FLAG },
  };
}

/** The flags of the CLI as shipped (the default sources). */
export const COMMAND_FLAGS = commandFlags(DEFAULT_SOURCES);

/** Commands whose positionals are model lines; the others take none. */
const TAKES_LINES = new Set(['pull', 'lock', 'mirror']);

export interface ParsedArgs {
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  /** Model lines, with `key=value` words glued to the reference before them. */
  readonly lines: readonly string[];
}

/** Parses one command's arguments; every problem is an ERR_BAD_INPUT (exit 2) on one line. */
export function parseCommandArgs(
  command: string,
  args: readonly string[],
  sources: SourceList = DEFAULT_SOURCES,
): ParsedArgs {
  const options = commandFlags(sources)[command] ?? HELP_FLAG;
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new ModelPullError('ERR_BAD_INPUT', parseProblem(command, error));
  }
  for (const [name, value] of Object.entries(parsed.values)) {
    // `pull --concurrency ollama:x` would otherwise take the line as the number and then
    // complain that no line was given.
    if (NUMBER_FLAGS.has(name) && typeof value === 'string' && !/^\s*\d+\s*$/.test(value)) {
      const line = claimingSource(sources, value) ? ' (a model line? it needs a number first)' : '';
      throw new ModelPullError('ERR_BAD_INPUT', `--${name} needs a number, got "${value}"${line}`);
    }
  }
  const positionals = parsed.positionals;
  if (!TAKES_LINES.has(command) && positionals.length > 0 && !parsed.values.help) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `takes no model lines, got "${positionals[0]}" (see model-pull ${command} --help)`,
    );
  }
  // No option is declared `multiple`, so every value is a single string or boolean.
  return { values: parsed.values as ParsedArgs['values'], lines: joinOptionWords(positionals, sources) };
}

/**
 * `model-pull pull https://host/f.gguf sha256=…` without quotes arrives as two words; a word
 * that is only `key=value` belongs to the line before it (a reference never looks like that).
 * So does a `key:value` word no source claims (`sha256:<hex>`, a slip for `sha256=`), so the
 * line's own error quotes it as typed and suggests the `=`.
 */
export function joinOptionWords(words: readonly string[], sources: SourceList = DEFAULT_SOURCES): string[] {
  const lines: string[] = [];
  for (const word of words) {
    const last = lines.length - 1;
    const option = /^[a-z0-9_-]+=/i.test(word) && !word.includes(':');
    const slip = /^[a-z0-9_-]+:[^/]/i.test(word) && !claimingSource(sources, word);
    if (last >= 0 && (option || slip)) lines[last] += ` ${word}`;
    else lines.push(word);
  }
  return lines;
}

/** node:util parseArgs errors, rewritten as one short line that points at the help. */
function parseProblem(command: string, error: unknown): string {
  const code = (error as { code?: string }).code;
  const message = error instanceof Error ? error.message : String(error);
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? '';
  const flag = quoted.split(' ')[0];
  const hint = `(see model-pull ${command} --help)`;
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${flag} ${hint}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return message.includes('does not take')
        ? `option ${flag} takes no value ${hint}`
        : `option ${flag} needs a value ${hint}`;
    default:
      return `${message.split('. ')[0]} ${hint}`;
  }
}
