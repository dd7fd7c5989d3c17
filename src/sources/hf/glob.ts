/**
 * File selection with huggingface_hub's semantics (`filter_repo_objects`): Python's `fnmatchcase`,
 * so matching is case-sensitive and whole-path; `*` matches any run of characters, `/` included;
 * `?` one character; `[seq]` / `[!seq]` a character class; no escapes (a backslash is taken as
 * `/`, as huggingface_hub normalises it); a pattern ending in `/` selects everything below it.
 *
 * Repository owners choose the paths, so matching must not backtrack (issue 10: `*-*-*.gguf`
 * against a 4,000-character path took 33 s as a regular expression). Because `*` matches every
 * character, a pattern is a run of fixed-width pieces between stars: the first piece must sit at
 * the start, the last at the end, and each middle piece at its leftmost place after the one
 * before (any later place leaves less room and gains nothing). Every path character is then
 * compared at most once per pattern character: linear in the path for a given pattern.
 */

export type PathMatcher = (path: string) => boolean;

/** One pattern character: a code point, any character (`?`), or a class of ranges. */
type CharTest = number | 'any' | CharClass;

interface CharClass {
  readonly negated: boolean;
  /** Inclusive code point ranges. */
  readonly ranges: readonly (readonly [number, number])[];
}

/** Counts character comparisons, so a test can prove the bound without a clock. */
export interface GlobMeter {
  comparisons: number;
}

/** Compiles one pattern into an anchored matcher. */
export function compileGlob(pattern: string, meter?: GlobMeter): PathMatcher {
  let normalized = pattern.replace(/\\/g, '/');
  if (normalized.endsWith('/')) normalized += '*';
  const pieces = parse(Array.from(normalized));
  const count = meter ? (n: number) => (meter.comparisons += n) : () => 0;
  return (path) => matchPieces(pieces, codePoints(path), count);
}

/**
 * A file is selected when it matches some include pattern (or there are none) and no exclude
 * pattern, the same precedence as `allow_patterns` / `ignore_patterns`.
 */
export function fileFilter(include: readonly string[], exclude: readonly string[]): PathMatcher {
  const allow = include.map((p) => compileGlob(p));
  const deny = exclude.map((p) => compileGlob(p));
  return (path) => (allow.length === 0 || allow.some((m) => m(path))) && !deny.some((m) => m(path));
}

/** The pattern split at its stars (a run of stars is one star): n stars give n + 1 pieces. */
function parse(chars: readonly string[]): CharTest[][] {
  const pieces: CharTest[][] = [[]];
  let i = 0;
  while (i < chars.length) {
    const c = chars[i]!;
    i++;
    if (c === '*') {
      while (chars[i] === '*') i++;
      pieces.push([]);
    } else if (c === '?') {
      pieces.at(-1)!.push('any');
    } else if (c === '[') {
      const cls = characterClass(chars, i);
      if (cls) {
        pieces.at(-1)!.push(cls.test);
        i = cls.next;
      } else {
        pieces.at(-1)!.push(cp('['));
      }
    } else {
      pieces.at(-1)!.push(cp(c));
    }
  }
  return pieces;
}

type Count = (comparisons: number) => void;

function matchPieces(
  pieces: readonly (readonly CharTest[])[],
  path: readonly number[],
  count: Count,
): boolean {
  const first = pieces[0]!;
  if (pieces.length === 1) return path.length === first.length && matchesAt(first, path, 0, count);
  const last = pieces.at(-1)!;
  const end = path.length - last.length;
  if (end < first.length || !matchesAt(first, path, 0, count) || !matchesAt(last, path, end, count))
    return false;
  let from = first.length;
  for (let p = 1; p < pieces.length - 1; p++) {
    const piece = pieces[p]!;
    const at = leftmost(piece, path, from, end, count);
    if (at < 0) return false;
    from = at + piece.length;
  }
  return true;
}

/** The first position in [from, end - piece.length] where the piece matches, or -1. */
function leftmost(
  piece: readonly CharTest[],
  path: readonly number[],
  from: number,
  end: number,
  count: Count,
): number {
  for (let at = from; at + piece.length <= end; at++) if (matchesAt(piece, path, at, count)) return at;
  return -1;
}

function matchesAt(piece: readonly CharTest[], path: readonly number[], at: number, count: Count): boolean {
  for (let k = 0; k < piece.length; k++) {
    if (!charMatches(piece[k]!, path[at + k]!)) {
      count(k + 1);
      return false;
    }
  }
  count(piece.length);
  return true;
}

function charMatches(test: CharTest, c: number): boolean {
  if (test === 'any') return true;
  if (typeof test === 'number') return test === c;
  return test.ranges.some(([lo, hi]) => lo <= c && c <= hi) !== test.negated;
}

/**
 * fnmatch's class rules: `!` first negates; a `]` right after `[` or `[!` is a member; `a-z` is a
 * range and a reversed range matches nothing; a `-` first or last is literal; without a closing
 * `]` the `[` is an ordinary character (returns undefined).
 */
function characterClass(
  chars: readonly string[],
  start: number,
): { test: CharClass; next: number } | undefined {
  let j = start;
  const negated = chars[j] === '!';
  if (negated) j++;
  if (chars[j] === ']') j++;
  while (j < chars.length && chars[j] !== ']') j++;
  if (j >= chars.length) return undefined;

  const members = chars.slice(negated ? start + 1 : start, j);
  const ranges: [number, number][] = [];
  for (let k = 0; k < members.length; ) {
    const first = cp(members[k]!);
    if (members[k + 1] === '-' && k + 2 < members.length) {
      const last = cp(members[k + 2]!);
      if (first <= last) ranges.push([first, last]);
      k += 3;
    } else {
      ranges.push([first, first]);
      k += 1;
    }
  }
  return { test: { negated, ranges }, next: j + 1 };
}

function cp(c: string): number {
  return c.codePointAt(0)!;
}

function codePoints(text: string): number[] {
  const out: number[] = [];
  for (const c of text) out.push(cp(c));
  return out;
}
