import { badLine, type LineParts, onlyOptions } from '../../refs/line.js';
import { clip, cutReference } from '../../refs/registry-reference.js';

/**
 * An `ollama:` reference, with Ollama's defaults applied. `tag` is always set: Ollama merges the
 * default tag `latest` into every name, including one that carries a digest, so a pinned name
 * without a tag is stored under `latest` as Ollama itself would store it.
 */
export interface OllamaRef {
  /** The line as written, trimmed (quoted in errors, the lock file's key). */
  readonly line: string;
  /**
   * Only when the line writes one; otherwise the registry client applies Docker's rule (https,
   * with plain http only where https cannot be spoken, on loopback or with `insecure`).
   */
  readonly scheme?: 'http' | 'https';
  /** `host` or `host:port`, as written (it is also a folder name under `manifests/`). */
  readonly host: string;
  readonly namespace: string;
  readonly model: string;
  readonly tag: string;
  /** The 64 lowercase hex of an `@sha256:` pin; the manifest is then fetched by digest. */
  readonly pin?: string;
}

export const OLLAMA_PREFIX = 'ollama:';

const DEFAULTS = {
  host: 'registry.ollama.ai',
  namespace: 'library',
  tag: 'latest',
} as const;

/**
 * Ollama's per-part rules (docs/registries.md, "Ollama's registry and names"): every part starts with a letter, digit or `_`;
 * the host may also hold `.`, `-`, `_`, `:` (a port) and be 350 long; a namespace holds no `.`;
 * model and tag may hold `.`, `-`, `_`; namespace, model and tag are at most 80 long.
 */
const PARTS = {
  host: { max: 350, rest: /^[A-Za-z0-9_.:-]*$/, allowed: 'letters, digits, _, -, . and :' },
  namespace: { max: 80, rest: /^[A-Za-z0-9_-]*$/, allowed: 'letters, digits, _ and -' },
  model: { max: 80, rest: /^[A-Za-z0-9_.-]*$/, allowed: 'letters, digits, _, - and .' },
  tag: { max: 80, rest: /^[A-Za-z0-9_.-]*$/, allowed: 'letters, digits, _, - and .' },
} as const;

type PartKind = keyof typeof PARTS;

/** Parses the reference of an `ollama:` line; every failure quotes the line and says why. */
export function parseOllamaRef(parts: LineParts): OllamaRef {
  const { line } = parts;
  onlyOptions(parts, []);
  if (!parts.reference.startsWith(OLLAMA_PREFIX)) {
    throw badLine(line, 'expected a reference starting with ollama:');
  }
  const name = parts.reference.slice(OLLAMA_PREFIX.length);
  if (name === '') throw badLine(line, 'the model name is missing after ollama:');

  const { scheme, name: rest, tag, pin } = cutReference(line, name);
  if (tag === '') throw badLine(line, 'the tag after ":" is empty');
  const segments = rest.split('/');
  if (segments.length > 3) throw badLine(line, 'too many "/": expected [host/][namespace/]model[:tag]');
  if (segments.some((p) => p === '')) {
    throw badLine(line, 'empty part between "/": expected [host/][namespace/]model[:tag]');
  }
  const model = segments.pop()!;
  const namespace = segments.pop();
  const host = segments.pop();
  if (scheme && host === undefined) {
    throw badLine(line, 'an explicit scheme needs a host: scheme://host/namespace/model[:tag]');
  }

  const ref: OllamaRef = {
    line,
    ...(scheme ? { scheme } : {}),
    host: host ?? DEFAULTS.host,
    namespace: namespace ?? DEFAULTS.namespace,
    model,
    tag: tag ?? DEFAULTS.tag,
    ...(pin === undefined ? {} : { pin }),
  };
  for (const kind of ['host', 'namespace', 'model', 'tag'] as const) checkPart(line, kind, ref[kind]);
  checkAddress(line, ref);
  return ref;
}

function checkPart(line: string, kind: PartKind, value: string): void {
  const rule = PARTS[kind];
  if (value.length > rule.max) {
    throw badLine(line, `${kind} "${clip(value)}" is longer than ${rule.max} characters`);
  }
  if (!/^[A-Za-z0-9_]/.test(value)) {
    throw badLine(line, `${kind} "${clip(value)}" must start with a letter, a digit or _`);
  }
  if (!rule.rest.test(value.slice(1))) {
    throw badLine(line, `${kind} "${clip(value)}" may only contain ${rule.allowed}`);
  }
}

/**
 * Ollama accepts names such as `host:https/ns/model` that no URL can reach; refusing them here
 * keeps the promise that a bad line fails before any request.
 */
function checkAddress(line: string, ref: OllamaRef): void {
  try {
    new URL(`${ref.scheme ?? 'https'}://${ref.host}/`);
  } catch {
    throw badLine(line, `host "${clip(ref.host)}" is not a network address (expected host or host:port)`);
  }
}

/** `host/namespace/model:tag`, the name Ollama lists and the `name` of the model's report. */
export function ollamaName(ref: OllamaRef): string {
  return `${ref.host}/${ref.namespace}/${ref.model}:${ref.tag}`;
}

/**
 * `ollama:host/namespace/model:tag[@sha256:…]`, Ollama's defaults written out; a scheme only
 * when the line asks for plain `http://` (https is what a bare host means).
 */
export function canonicalOllamaLine(ref: OllamaRef): string {
  const scheme = ref.scheme === 'http' ? 'http://' : '';
  const pin = ref.pin === undefined ? '' : `@sha256:${ref.pin}`;
  return `${OLLAMA_PREFIX}${scheme}${ollamaName(ref)}${pin}`;
}

/** `namespace/model`, the repository path of the distribution API. */
export function repositoryOf(ref: OllamaRef): string {
  return `${ref.namespace}/${ref.model}`;
}
