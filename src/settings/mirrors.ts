import { Inputs } from '../constants.js';
import { ModelPullError } from '../errors.js';
import { parseRepositoryPrefix, type RepositoryPrefix } from '../registry/prefix.js';

/** A `registry-mirror` line: pulls of `ollama:`/`oci:` lines for `host` try `mirror` first. */
export interface RegistryMirror {
  /** `host[:port]` as lines write it, lower case (`registry.ollama.ai`, `docker.io`). */
  readonly host: string;
  /** Where, and under which repository prefix (a Harbor proxy-cache project). */
  readonly mirror: RepositoryPrefix;
}

/** The settings of issue 16's inputs: registries beyond one repository's Actions cache. */
export interface MirrorSettings {
  /** `mirror-to` (the `mirror` command's `--to`): after pulling, push every model under it. */
  readonly mirrorTo: RepositoryPrefix | undefined;
  readonly registryMirrors: readonly RegistryMirror[];
  /** `hf-oci-mirror`: mirrored Hugging Face repos, `<prefix>/<owner>/<repo>:<commit>`. */
  readonly hfOciMirror: RepositoryPrefix | undefined;
}

type Value = (name: (typeof Inputs)[keyof typeof Inputs]) => string | undefined;

export function mirrorSettings(value: Value, nameOf: (input: string) => string): MirrorSettings {
  const prefix = (input: (typeof Inputs)[keyof typeof Inputs]) => {
    const text = value(input);
    return text === undefined ? undefined : parseRepositoryPrefix(text, nameOf(input));
  };
  return {
    mirrorTo: prefix(Inputs.MirrorTo),
    registryMirrors: parseRegistryMirrors(value(Inputs.RegistryMirror) ?? '', nameOf(Inputs.RegistryMirror)),
    hfOciMirror: prefix(Inputs.HfOciMirror),
  };
}

/**
 * `HOST=URL` entries, one a line (or separated by commas or spaces, as a CLI flag writes them);
 * `#` starts a comment line. A host named twice is refused: which mirror would win?
 */
export function parseRegistryMirrors(text: string, what: string): RegistryMirror[] {
  const mirrors: RegistryMirror[] = [];
  const entries = text
    .split(/\r?\n/)
    .filter((line) => !line.trim().startsWith('#'))
    .flatMap((line) => line.split(/[\s,]+/))
    .filter(Boolean);
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    const host = entry.slice(0, eq).trim().toLowerCase();
    if (eq <= 0 || !isHost(host))
      throw new ModelPullError(
        'ERR_BAD_INPUT',
        `${what}: "${entry}" is not HOST=URL (the registry host as lines name it, then its mirror)`,
      );
    if (mirrors.some((m) => m.host === host))
      throw new ModelPullError('ERR_BAD_INPUT', `${what} names ${host} twice`);
    const mirror = parseRepositoryPrefix(entry.slice(eq + 1), `${what} for ${host}:`);
    // Its repositories would be the origin's own: nothing to fall back to, the same bytes twice.
    if (mirror.host === host && mirror.path === '')
      throw new ModelPullError(
        'ERR_BAD_INPUT',
        `${what} for ${host}: "${mirror.text}" is ${host} itself (a mirror is another registry, or a path on this one)`,
      );
    mirrors.push({ host, mirror });
  }
  return mirrors;
}

function isHost(text: string): boolean {
  try {
    return text !== '' && !/[/@?#]/.test(text) && new URL(`https://${text}/`).host === text;
  } catch {
    return false;
  }
}
