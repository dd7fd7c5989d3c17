import { ModelPullError } from '../errors.js';

/** A model line cut into its reference and its `key=value` options. */
export interface LineParts {
  /** The line as written, trimmed: quoted in errors, the lock file's key. */
  readonly line: string;
  readonly reference: string;
  readonly options: ReadonlyMap<string, string>;
}

/** The error every malformed line gets: it quotes the line and says what is wrong. */
export function badLine(line: string, reason: string): ModelPullError {
  return new ModelPullError('ERR_BAD_REFERENCE', `invalid model line "${line.trim()}": ${reason}`);
}

/**
 * A ` #` (whitespace, then `#`) starts a trailing comment, as YAML users write them inside
 * `models: |`; it is not part of the line. A reference or option never holds whitespace, so a
 * `#` inside a URL (`…/f.gguf#x`) stays.
 */
export function withoutComment(line: string): string {
  return line.replace(/\s#.*$/s, '').trim();
}

export function splitLine(line: string): LineParts {
  const trimmed = withoutComment(line);
  const [reference = '', ...rest] = trimmed.split(/\s+/);
  const options = new Map<string, string>();
  for (const word of rest) {
    const eq = word.indexOf('=');
    if (eq <= 0) {
      // `sha256:<hex>` is how digests are written elsewhere; here options take `=`.
      const colon = /^([a-z0-9_-]+):(.+)$/i.exec(word);
      if (colon) throw badLine(trimmed, `did you mean ${colon[1]}=${colon[2]}? (options are key=value)`);
      throw badLine(trimmed, `expected key=value after the reference, got "${word}"`);
    }
    const key = word.slice(0, eq);
    if (options.has(key)) throw badLine(trimmed, `option ${key}= given twice`);
    options.set(key, word.slice(eq + 1));
  }
  return { line: trimmed, reference, options };
}

/** Refuses options a source does not know, naming them. */
export function onlyOptions(parts: LineParts, allowed: readonly string[]): void {
  for (const key of parts.options.keys()) {
    if (!allowed.includes(key)) {
      const hint = allowed.length ? ` (allowed here: ${allowed.map((k) => `${k}=`).join(', ')})` : '';
      throw badLine(parts.line, `unknown option ${key}=${hint}`);
    }
  }
}

/**
 * The lines that name models, trimmed, trailing ` # comments` removed; blank lines and lines
 * starting with `#` are skipped.
 */
export function modelLines(text: string | readonly string[]): string[] {
  const lines = typeof text === 'string' ? text.split(/\r?\n/) : text;
  return lines
    .map((l) => l.trim())
    .filter((l) => !l.startsWith('#'))
    .map(withoutComment)
    .filter((l) => l.length > 0);
}

/**
 * The line with its options in name order and single spaces: the key of a line for a source
 * that does not define its own canonical form.
 */
export function plainKey(parts: LineParts): string {
  const options = [...parts.options].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return [parts.reference, ...options.map(([k, v]) => `${k}=${v}`)].join(' ');
}
