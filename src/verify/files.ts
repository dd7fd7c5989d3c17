import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Digest, hashFile } from '../digest.js';

/** One file that is not what its manifest or snapshot says. */
export interface Damage {
  /** The model: an Ollama name, or `hf:owner/repo@commit`. */
  readonly model: string;
  readonly path: string;
  readonly problem: string;
  /** The model line whose pull repairs it (`ollama:…`, `hf:…@commit`, a URL line). */
  readonly line: string;
}

export interface VerifyReport {
  readonly checkedFiles: number;
  readonly checkedBytes: number;
  readonly damaged: readonly Damage[];
}

/** Counts what was hashed; a file reached twice (a blob shared by two models) is hashed once. */
export class Checker {
  checkedFiles = 0;
  checkedBytes = 0;
  readonly damaged: Damage[] = [];
  private readonly verdicts = new Map<string, Promise<string | undefined>>();

  /** Why `path` does not hold `digest` in `size` bytes, or undefined when it does. */
  problem(path: string, digest: Digest, size: number | undefined): Promise<string | undefined> {
    const key = `${path}\0${digest.algorithm}:${digest.hex}\0${size}`;
    let verdict = this.verdicts.get(key);
    if (!verdict) {
      verdict = this.check(path, digest, size);
      this.verdicts.set(key, verdict);
    }
    return verdict;
  }

  report(): VerifyReport {
    return { checkedFiles: this.checkedFiles, checkedBytes: this.checkedBytes, damaged: this.damaged };
  }

  private async check(path: string, digest: Digest, size: number | undefined): Promise<string | undefined> {
    let actual: number;
    try {
      const info = await stat(path);
      if (!info.isFile()) return 'not a file';
      actual = info.size;
    } catch {
      return 'missing';
    }
    this.checkedFiles++;
    this.checkedBytes += actual;
    if (size !== undefined && actual !== size) return `size ${actual}, expected ${size}`;
    const hex = await hashFile(path, digest.algorithm, actual);
    return hex === digest.hex ? undefined : `${digest.algorithm} ${hex}, expected ${digest.hex}`;
  }
}

/** Names of the sub-folders of `path` (none when it does not exist). */
export async function dirs(path: string): Promise<string[]> {
  return (await entries(path)).filter((e) => e.isDirectory()).map((e) => e.name);
}

/**
 * Every entry below `path` that is not a folder (files, links, and whatever else was planted:
 * a FIFO where a manifest belongs is damage to report), depth first, sorted by name.
 */
export async function walk(path: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await entries(path)) {
    const full = join(path, e.name);
    if (e.isDirectory()) out.push(...(await walk(full)));
    else out.push(full);
  }
  return out;
}

async function entries(path: string): Promise<Dirent[]> {
  try {
    const list = await readdir(path, { withFileTypes: true });
    return list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch {
    return [];
  }
}
