import { execFileSync } from 'node:child_process';
import { mkdir, symlink, truncate, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * What another process (or a hostile repository) may leave where model-pull reads a small file:
 * a FIFO (a blocking open would wait forever), a link to an endless device, or a file of `size`
 * bytes (sparse, so a test can plant hundreds of MiB without writing them).
 */
export type Planted = 'fifo' | 'link' | 'huge';

export async function plant(path: string, kind: Planted, size = 5 * 1024 * 1024): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  if (kind === 'fifo') execFileSync('mkfifo', [path]);
  else if (kind === 'link') await symlink('/dev/zero', path);
  else {
    await writeFile(path, '');
    await truncate(path, size);
  }
}
