/**
 * Paths inside a model's folder come from the artifact (a layer's annotation, a tar member's
 * name): untrusted. A path is accepted only when it names something strictly inside the folder
 * the same way on every system: relative, `/`-separated, no empty, `.` or `..` part, no
 * backslash or control character, parts of at most 255 bytes. Nothing is "cleaned" into shape:
 * a path that needs cleaning is refused, so what lands is exactly what the artifact says.
 */
const MAX_PART_BYTES = 255;
const MAX_PATH_BYTES = 4096;

/** Why `path` is refused, or undefined when it is a safe relative path. */
export function unsafePathReason(path: string): string | undefined {
  if (path === '') return 'it is empty';
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) return `it is longer than ${MAX_PATH_BYTES} bytes`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'it holds a control character';
  if (path.includes('\\')) return 'it holds a backslash';
  if (path.startsWith('/')) return 'it is absolute';
  for (const part of path.split('/')) {
    if (part === '') return 'it has an empty part (a doubled or trailing /)';
    if (part === '.' || part === '..') return `it has a "${part}" part`;
    if (Buffer.byteLength(part) > MAX_PART_BYTES) return `a part is longer than ${MAX_PART_BYTES} bytes`;
  }
  return undefined;
}

/**
 * A tar member's name as archivers write it (`./a/b`, `dir/`), brought to the form above; the
 * archive's own root (`.`, `./`) is `''`. The result still has to pass unsafePathReason.
 */
export function memberPath(name: string): string {
  let path = name;
  while (path.startsWith('./')) path = path.slice(2);
  if (path === '.') return '';
  return path.endsWith('/') ? path.replace(/\/+$/, '') : path;
}

/**
 * Every path of one folder, files and folders, so that no two entries claim one path and no
 * file sits where another entry needs a folder (`a` as a file, then `a/b`).
 */
export class PathClaims {
  private readonly files = new Map<string, string>();
  private readonly dirs = new Set<string>();

  /** Claims a file path for `owner`; returns why not when it clashes. */
  file(path: string, owner: string): string | undefined {
    const earlier = this.files.get(path);
    if (earlier !== undefined) return `${owner} and ${earlier} both write "${path}"`;
    if (this.dirs.has(path)) return `${owner} writes "${path}", which is a folder of another entry`;
    for (const parent of parents(path)) {
      const file = this.files.get(parent);
      if (file !== undefined) return `${owner} writes "${path}" inside "${parent}", a file of ${file}`;
    }
    this.files.set(path, owner);
    for (const parent of parents(path)) this.dirs.add(parent);
    return undefined;
  }

  /** Every folder the claimed paths need, parents before children. */
  folders(): string[] {
    return [...this.dirs].sort((a, b) => a.split('/').length - b.split('/').length);
  }

  /** Claims a folder path (a tar folder member). */
  dir(path: string, owner: string): string | undefined {
    const file = this.files.get(path);
    if (file !== undefined) return `${owner} makes "${path}" a folder, but it is a file of ${file}`;
    for (const parent of parents(path)) {
      const other = this.files.get(parent);
      if (other !== undefined) return `${owner} makes "${path}" inside "${parent}", a file of ${other}`;
    }
    this.dirs.add(path);
    for (const parent of parents(path)) this.dirs.add(parent);
    return undefined;
  }
}

/** `a/b/c` → `a`, `a/b`. */
function parents(path: string): string[] {
  const parts = path.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}
