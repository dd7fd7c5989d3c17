import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';

const MiB = 1024 * 1024;
const BLOCK = 4 * MiB;
/** Part of the file name: bump it when the generator changes, so an old file is not reused. */
const GENERATOR = 'aes128ctr-v1';

export interface BenchBlob {
  readonly path: string;
  readonly size: number;
  readonly hex: string;
}

/**
 * The benchmark's blob: an AES-CTR keystream with a fixed key, so it is incompressible (no
 * tool gains from compression), identical on every machine, and cheap to make (~1 s per GiB).
 * Generated once into `dir` with a sidecar holding its sha256 (sha256sum's format), then reused.
 */
export async function ensureBlob(dir: string, size: number): Promise<BenchBlob> {
  const path = join(dir, `blob-${GENERATOR}-${size}.bin`);
  const sidecar = `${path}.sha256`;
  const known = await readSidecar(sidecar);
  if (known && (await sizeOf(path)) === size) return { path, size, hex: known };

  await mkdir(dir, { recursive: true });
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 0x5a), Buffer.alloc(16, 0));
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(BLOCK);
  const partial = `${path}.partial`;
  const file = await open(partial, 'w');
  try {
    for (let done = 0; done < size; done += BLOCK) {
      const chunk = cipher.update(zeros.subarray(0, Math.min(BLOCK, size - done)));
      hash.update(chunk);
      await file.write(chunk, 0, chunk.length, done);
    }
  } finally {
    await file.close();
  }
  const hex = hash.digest('hex');
  await rename(partial, path);
  await writeFile(sidecar, `${hex}  ${basename(path)}\n`);
  return { path, size, hex };
}

/** The hex from a sha256sum-style sidecar; the generator and size are in the blob's name. */
async function readSidecar(path: string): Promise<string | undefined> {
  try {
    const hex = (await readFile(path, 'utf8')).split(/\s+/)[0] ?? '';
    return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
  } catch {
    return undefined;
  }
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}
