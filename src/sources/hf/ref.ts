import { isSha1Hex } from '../../digest.js';
import type { HfRepoType } from '../../layouts/hf.js';
import { badLine, type LineParts, onlyOptions } from '../../refs/line.js';

export type { HfRepoType } from '../../layouts/hf.js';

/** An `hf:` reference: which repository, at which revision, and which of its files. */
export interface HfRef {
  /** The line as written, trimmed (quoted in errors, the lock file's key). */
  readonly line: string;
  readonly type: HfRepoType;
  /** `owner/name`, as written (the Hub treats names case-insensitively but the cache does not). */
  readonly repo: string;
  /** Branch, tag, `refs/pr/N` or a 40-hex commit; `main` when the line names none. */
  readonly revision: string;
  /** fnmatch patterns; an empty list selects every file. */
  readonly include: readonly string[];
  readonly exclude: readonly string[];
}

export const HF_PREFIX = 'hf:';
export const DEFAULT_REVISION = 'main';

const TYPE_PREFIXES: readonly (readonly [string, HfRepoType])[] = [
  ['datasets/', 'dataset'],
  ['spaces/', 'space'],
];

/** Parses the reference and options of an `hf:` line; every failure quotes the line and says why. */
export function parseHfRef(parts: LineParts): HfRef {
  const { line } = parts;
  onlyOptions(parts, ['include', 'exclude']);
  if (!parts.reference.startsWith(HF_PREFIX)) throw badLine(line, 'expected a reference starting with hf:');
  let rest = parts.reference.slice(HF_PREFIX.length);

  let type: HfRepoType = 'model';
  for (const [prefix, kind] of TYPE_PREFIXES) {
    if (rest.startsWith(prefix)) {
      type = kind;
      rest = rest.slice(prefix.length);
      break;
    }
  }

  let revision = DEFAULT_REVISION;
  const at = rest.indexOf('@');
  if (at >= 0) {
    revision = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const problem = revisionProblem(revision);
    if (problem) throw badLine(line, problem);
  }

  const problem = repoIdProblem(rest);
  if (problem) throw badLine(line, problem);

  return {
    line,
    type,
    repo: rest,
    revision,
    include: patternList(parts, 'include'),
    exclude: patternList(parts, 'exclude'),
  };
}

/** `hf:[datasets/|spaces/]owner/repo@revision [include=…] [exclude=…]`, the revision written out. */
export function canonicalHfLine(ref: HfRef): string {
  const type = TYPE_PREFIXES.find(([, kind]) => kind === ref.type)?.[0] ?? '';
  const words = [`${HF_PREFIX}${type}${ref.repo}@${ref.revision}`];
  if (ref.include.length) words.push(`include=${ref.include.join(',')}`);
  if (ref.exclude.length) words.push(`exclude=${ref.exclude.join(',')}`);
  return words.join(' ');
}

const MAX_NAME = 96;

/**
 * The Hub's repo id rules (as huggingface_hub validates them): `owner/name`, each part made of
 * letters, digits, `_`, `-` and `.`, starting and ending with a letter, digit or `_`, no `--` or
 * `..` anywhere (`--` is the cache's folder separator), the name at most 96 characters and not
 * ending in `.git`.
 */
export function repoIdProblem(repo: string): string | undefined {
  if (repo === '') return 'the repository is missing: expected hf:owner/repo';
  const parts = repo.split('/');
  if (parts.length !== 2) {
    return `"${clip(repo)}" is not owner/repo (for a dataset write hf:datasets/owner/repo)`;
  }
  for (const [index, part] of parts.entries()) {
    const what = index === 0 ? 'owner' : 'repository name';
    if (part === '') return `the ${what} in "${clip(repo)}" is empty`;
    if (part.length > MAX_NAME) return `the ${what} "${clip(part)}" is longer than ${MAX_NAME} characters`;
    if (!/^[A-Za-z0-9_.-]+$/.test(part)) {
      return `the ${what} "${clip(part)}" may hold only letters, digits, "_", "-" and "."`;
    }
    if (!/^[A-Za-z0-9_]/.test(part) || !/[A-Za-z0-9_]$/.test(part)) {
      return `the ${what} "${clip(part)}" must start and end with a letter, digit or "_"`;
    }
    if (part.includes('--') || part.includes('..'))
      return `the ${what} "${clip(part)}" may not contain "--" or ".."`;
  }
  if (parts[1]!.endsWith('.git')) return `the repository name "${clip(parts[1]!)}" may not end with ".git"`;
  return undefined;
}

const MAX_REVISION = 255;

/**
 * A branch, tag, `refs/pr/N` or commit, checked with git's ref-name rules (no `..`, no spaces or
 * control characters, none of `~^:?*[\`, no `@{`, no empty, `.`-led or `.lock` segment). It later
 * becomes a file under `refs/` and a URL path segment, so a lax check here would be a path escape.
 */
export function revisionProblem(revision: string): string | undefined {
  if (revision === '') return 'the revision after "@" is empty';
  if (revision.length > MAX_REVISION) return `the revision is longer than ${MAX_REVISION} characters`;
  if (!/^[A-Za-z0-9._/+-]+$/.test(revision)) {
    return `the revision "${clip(revision)}" may hold only letters, digits, "/", "_", "-", "+" and "."`;
  }
  if (revision.includes('..')) return `the revision "${clip(revision)}" may not contain ".."`;
  const segments = revision.split('/');
  for (const segment of segments) {
    if (segment === '') return `the revision "${clip(revision)}" has an empty part between "/"`;
    if (segment.startsWith('.') || segment.endsWith('.lock') || segment.startsWith('-')) {
      return `the revision "${clip(revision)}" has a part starting with "." or "-", or ending with ".lock"`;
    }
  }
  if (revision.endsWith('.')) return `the revision "${clip(revision)}" may not end with "."`;
  if (segments[0] === 'refs' && segments[1] === 'pr' && !/^refs\/pr\/[1-9][0-9]*$/.test(revision)) {
    return `"${clip(revision)}" is not a pull request revision: expected refs/pr/<number>`;
  }
  return undefined;
}

/** True for a full commit id, which needs no revision lookup. */
export function isCommitId(revision: string): boolean {
  return isSha1Hex(revision);
}

/** `include=a,b` → ['a','b']; empty patterns are refused rather than silently matching nothing. */
function patternList(parts: LineParts, key: 'include' | 'exclude'): string[] {
  const value = parts.options.get(key);
  if (value === undefined) return [];
  const patterns = value.split(',');
  if (patterns.some((p) => p === '')) {
    throw badLine(parts.line, `${key}= holds an empty pattern (write ${key}=GLOB[,GLOB…])`);
  }
  return patterns;
}

function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
