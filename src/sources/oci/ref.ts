import { badLine, type LineParts, onlyOptions } from '../../refs/line.js';
import { clip, cutReference } from '../../refs/registry-reference.js';

/**
 * An `oci:` reference, normalised as Docker normalises image names (docs/oci-artifacts.md,
 * "References"): `ai/smollm2` is `docker.io/ai/smollm2:latest`, `smollm2` is
 * `docker.io/library/smollm2:latest`.
 */
export interface OciRef {
  /** The line as written, trimmed (quoted in errors, the lock file's key). */
  readonly line: string;
  /** Only when the line writes `http://` or `https://`; otherwise the registry client decides. */
  readonly scheme?: 'http' | 'https';
  /** `host` or `host:port`, lower-cased; `docker.io` for Docker Hub. */
  readonly host: string;
  /** `namespace/…/name`, one or more parts. */
  readonly repository: string;
  /** `latest` unless written; kept with a pin, as the name users see. */
  readonly tag: string;
  /** The 64 lowercase hex of an `@sha256:` pin: the manifest (or index) is fetched by digest. */
  readonly pin?: string;
}

export const OCI_PREFIX = 'oci:';
export const DOCKER_HUB = 'docker.io';

/** Docker's grammar for repository parts: lowercase alphanumerics joined by `.`, `_`, `__` or dashes. */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
/** A host name or IPv4 address, then an optional port; or a bracketed IPv6 address. */
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** Docker refuses names longer than this (host and repository). */
const MAX_NAME = 255;

/** Parses the reference of an `oci:` line; every failure quotes the line and says why. */
export function parseOciRef(parts: LineParts): OciRef {
  const { line } = parts;
  onlyOptions(parts, []);
  if (!parts.reference.toLowerCase().startsWith(OCI_PREFIX)) {
    throw badLine(line, 'expected a reference starting with oci:');
  }
  const text = parts.reference.slice(OCI_PREFIX.length);
  if (text === '') throw badLine(line, 'the artifact name is missing after oci:');

  const { scheme, name: rest, tag, pin } = cutReference(line, text);
  if (rest === '') throw badLine(line, 'the artifact name is missing before its tag or pin');
  if (tag !== undefined && !TAG.test(tag)) {
    throw badLine(
      line,
      `tag "${clip(tag)}" must be 1 to 128 letters, digits, _, . or - and not start with . or -`,
    );
  }
  const [host, repository] = splitHost(line, rest, scheme !== undefined);
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw badLine(
        line,
        `repository part "${clip(component)}" must be lowercase letters and digits, joined by ., _, __ or -`,
      );
    }
  }
  if (host.length + 1 + repository.length > MAX_NAME) {
    throw badLine(line, `the name is longer than ${MAX_NAME} characters`);
  }
  return {
    line,
    ...(scheme ? { scheme } : {}),
    host,
    repository,
    tag: tag ?? 'latest',
    ...(pin === undefined ? {} : { pin }),
  };
}

/**
 * Docker's rule: the first part is a registry host when it holds a `.` or a `:`, is `localhost`,
 * or has capitals (repository parts never do); otherwise the name is on Docker Hub, where a
 * single-part name lives under `library/`.
 */
function splitHost(line: string, name: string, explicitScheme: boolean): [string, string] {
  const slash = name.indexOf('/');
  const first = slash < 0 ? name : name.slice(0, slash);
  const isHost = slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase());
  if (explicitScheme && !isHost) {
    throw badLine(line, 'an explicit scheme needs a registry host: scheme://host/repository[:tag]');
  }
  if (!isHost) return [DOCKER_HUB, name.includes('/') ? name : `library/${name}`];
  if (!HOST.test(first) || !isAddress(first)) {
    throw badLine(line, `registry host "${clip(first)}" is not a host name or address (host[:port])`);
  }
  let host = first.toLowerCase();
  if (host === 'index.docker.io') host = DOCKER_HUB;
  const repository = name.slice(slash + 1);
  if (repository === '') throw badLine(line, `the repository is missing after "${first}/"`);
  return [host, host === DOCKER_HUB && !repository.includes('/') ? `library/${repository}` : repository];
}

/** The URL parser has the last word on ports and IPv6 literals. */
function isAddress(host: string): boolean {
  try {
    return new URL(`https://${host}/`).host !== '';
  } catch {
    return false;
  }
}

/** `host/repository:tag` or `host/repository@sha256:…`: the `name` output, the layout's ref name. */
export function ociName(ref: OciRef): string {
  return ref.pin === undefined
    ? `${ref.host}/${ref.repository}:${ref.tag}`
    : `${ref.host}/${ref.repository}@sha256:${ref.pin}`;
}
