/**
 * Ollama model names as `/api/tags` shows them and as the action reports them, reduced to one
 * comparable form. Ollama lists a model by its shortest display name (types/model/name.go,
 * DisplayShortest): `model:tag` for registry.ollama.ai/library, `namespace/model:tag` for
 * another namespace on that registry, and `host/namespace/model:tag` for any other host.
 * Host, namespace, model and tag compare case-insensitively there, so here too.
 */
const DEFAULT_HOST = 'registry.ollama.ai';
const DEFAULT_NAMESPACE = 'library';
const DEFAULT_TAG = 'latest';

/** `llama3.2:1b`, `team/m`, `host:5000/team/m:tag`, `http://host/team/m` → `host/ns/model:tag`. */
export function canonicalModelName(name: string): string {
  let rest = name.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const at = rest.indexOf('@');
  if (at >= 0) rest = rest.slice(0, at);
  // The tag is split off only when the last ':' comes after the last '/' (host:port/ns/m).
  const colon = rest.lastIndexOf(':');
  const tag = colon > rest.lastIndexOf('/') ? rest.slice(colon + 1) : '';
  const path = tag ? rest.slice(0, colon) : rest;
  const parts = path.split('/');
  const model = parts.pop() ?? '';
  const namespace = parts.pop() ?? DEFAULT_NAMESPACE;
  const host = parts.length > 0 ? parts.join('/') : DEFAULT_HOST;
  return `${host}/${namespace}/${model}:${tag || DEFAULT_TAG}`.toLowerCase();
}

/** The expected names that `listed` lacks, in the order given. */
export function missingModels(expected: readonly string[], listed: readonly string[]): string[] {
  const have = new Set(listed.map(canonicalModelName));
  return expected.filter((name) => !have.has(canonicalModelName(name)));
}
