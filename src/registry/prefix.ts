import { ModelPullError } from '../errors.js';
import { badLine } from '../refs/line.js';
import type { RegistryName } from './endpoint.js';

/**
 * An OCI repository prefix as users write it for `mirror-to` and `hf-oci-mirror`:
 * `[http(s)://]host[:port][/path…]` (`registry.corp/models`, `http://127.0.0.1:5000/hf`). Models
 * go to repositories under the path (docs/registries.md, "Names and addresses").
 */
export interface RepositoryPrefix extends RegistryName {
  /** Lower-case repository parts, `/`-joined; '' for the registry's root. */
  readonly path: string;
  /** As written (without a trailing slash), for messages. */
  readonly text: string;
}

/** One repository path component, as the distribution spec allows it. */
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** Parses a prefix; `what` names the input in errors (`input "mirror-to"`, `--to`). */
export function parseRepositoryPrefix(value: string, what: string): RepositoryPrefix {
  const text = value.trim().replace(/\/+$/, '');
  const bad = (why: string) => new ModelPullError('ERR_BAD_INPUT', `${what} "${text}" ${why}`);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  const given = scheme?.[1]?.toLowerCase();
  if (given !== undefined && given !== 'http' && given !== 'https')
    throw bad('must start with a registry host, or http:// or https://');
  const rest = scheme ? text.slice(scheme[0].length) : text;
  const [host = '', ...parts] = rest.split('/');
  let parsed: URL;
  try {
    parsed = new URL(`https://${host}/`);
  } catch {
    throw bad('does not start with a registry host (host[:port])');
  }
  if (host === '' || parsed.host !== host.toLowerCase() || /[@?#]/.test(host))
    throw bad('does not start with a registry host (host[:port])');
  for (const part of parts) {
    if (!COMPONENT.test(part))
      throw bad(
        `has the path part "${part}": repository parts are lowercase letters and digits joined by ., _, __ or -`,
      );
  }
  return {
    host: host.toLowerCase(),
    ...(given ? { scheme: given as 'http' | 'https' } : {}),
    path: parts.join('/'),
    text,
  };
}

/** `prefix/path/part/…` as a repository, checked part by part (the parts must already be valid). */
export function repositoryUnder(prefix: RepositoryPrefix, ...parts: readonly string[]): string {
  return [prefix.path, ...parts].filter((p) => p !== '').join('/');
}

/** `host[:port]/repository:tag` as users name it (no scheme), for messages and the report. */
export function nameUnder(prefix: RepositoryPrefix, repository: string, reference: string): string {
  const separator = reference.startsWith('sha256:') ? '@' : ':';
  return `${prefix.host}/${repository}${separator}${reference}`;
}

/**
 * A name part made valid as a repository component: lower case, runs of other characters as
 * one `-`, separators trimmed at the ends; undefined when nothing is left.
 */
export function repositoryComponent(text: string): string | undefined {
  const lower = text
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/[._-]{2,}/g, (run) => (run === '__' ? run : run[0] === '-' ? '-' : run[0]!))
    .replace(/^[._-]+|[._-]+$/g, '');
  return COMPONENT.test(lower) ? lower : undefined;
}

/**
 * A name part of a line (`what` says which) as one repository component under a mirror prefix:
 * lower case is all that may change (capitals are common on the Hub and in Ollama names);
 * anything else would be a silent rename, so the line is refused.
 */
export function repositoryPart(part: string, what: string, line: string): string {
  const valid = repositoryComponent(part);
  if (valid === undefined || valid !== part.toLowerCase())
    throw badLine(
      line,
      `the ${what} "${part}" cannot be a registry repository part (lowercase letters and digits joined by ., _ or -)`,
    );
  return valid;
}

/**
 * A tag made from a name (a branch, `refs/pr/1`): characters a tag cannot hold become `-`, and
 * `suffix` is kept whole within the 128 allowed; undefined when nothing valid is left.
 */
export function tagFrom(name: string, suffix = ''): string | undefined {
  const base = name.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[.-]+/, '');
  const tag = `${base.slice(0, 128 - suffix.length)}${suffix}`;
  return base !== '' && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag) ? tag : undefined;
}
