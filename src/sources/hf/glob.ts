/**
 * File selection with huggingface_hub's semantics (`filter_repo_objects`): Python's `fnmatchcase`,
 * so matching is case-sensitive and whole-path; `*` matches any run of characters, `/` included;
 * `?` one character; `[seq]` / `[!seq]` a character class; no escapes (a backslash is taken as
 * `/`, as huggingface_hub normalises it); a pattern ending in `/` selects everything below it.
 */

export type PathMatcher = (path: string) => boolean;

/** Compiles one pattern into an anchored matcher. */
export function compileGlob(pattern: string): PathMatcher {
  let normalized = pattern.replace(/\\/g, '/');
  if (normalized.endsWith('/')) normalized += '*';
  const regex = new RegExp(`^${translate(Array.from(normalized))}$`, 'su');
  return (path) => regex.test(path);
}

/**
 * A file is selected when it matches some include pattern (or there are none) and no exclude
 * pattern, the same precedence as `allow_patterns` / `ignore_patterns`.
 */
export function fileFilter(include: readonly string[], exclude: readonly string[]): PathMatcher {
  const allow = include.map(compileGlob);
  const deny = exclude.map(compileGlob);
  return (path) => (allow.length === 0 || allow.some((m) => m(path))) && !deny.some((m) => m(path));
}

function translate(chars: readonly string[]): string {
  let out = '';
  let i = 0;
  while (i < chars.length) {
    const c = chars[i]!;
    i++;
    if (c === '*') {
      // Runs of `*` mean the same as one; collapsing them keeps the regex linear.
      while (chars[i] === '*') i++;
      out += '.*';
    } else if (c === '?') {
      out += '.';
    } else if (c === '[') {
      const cls = characterClass(chars, i);
      if (cls) {
        out += cls.regex;
        i = cls.next;
      } else {
        out += literal('[');
      }
    } else {
      out += literal(c);
    }
  }
  return out;
}

/**
 * fnmatch's class rules: `!` first negates; a `]` right after `[` or `[!` is a member; `a-z` is a
 * range and a reversed range matches nothing; a `-` first or last is literal; without a closing
 * `]` the `[` is an ordinary character (returns undefined).
 */
function characterClass(
  chars: readonly string[],
  start: number,
): { regex: string; next: number } | undefined {
  let j = start;
  const negated = chars[j] === '!';
  if (negated) j++;
  if (chars[j] === ']') j++;
  while (j < chars.length && chars[j] !== ']') j++;
  if (j >= chars.length) return undefined;

  const members = chars.slice(negated ? start + 1 : start, j);
  let body = '';
  for (let k = 0; k < members.length; ) {
    const first = members[k]!;
    if (members[k + 1] === '-' && k + 2 < members.length) {
      const last = members[k + 2]!;
      if (first.codePointAt(0)! <= last.codePointAt(0)!) body += `${codePoint(first)}-${codePoint(last)}`;
      k += 3;
    } else {
      body += codePoint(first);
      k += 1;
    }
  }
  let regex: string;
  if (body === '') regex = negated ? '.' : '(?!)';
  else regex = `[${negated ? '^' : ''}${body}]`;
  return { regex, next: j + 1 };
}

function codePoint(c: string): string {
  return `\\u{${c.codePointAt(0)!.toString(16)}}`;
}

function literal(c: string): string {
  return /[A-Za-z0-9]/.test(c) ? c : codePoint(c);
}
