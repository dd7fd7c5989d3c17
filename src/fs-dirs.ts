import { access, chmod, mkdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

/**
 * mkdir -p, then 0755 on the folders this call created (never on the user's existing ones).
 * mkdir's mode passes through the umask, and a strict umask would hide the store from a
 * consumer running as another user (the Linux install runs Ollama as user `ollama`).
 */
export async function ensureDirs(path: string): Promise<void> {
  const first = await mkdir(path, { recursive: true, mode: 0o755 });
  if (first === undefined) return;
  const rel = relative(first, path);
  const created = [
    first,
    ...(rel ? rel.split(sep) : []).map((_, i, all) => join(first, ...all.slice(0, i + 1))),
  ];
  for (const dir of created) await chmod(dir, 0o755);
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
