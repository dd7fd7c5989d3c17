import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../atomic-write.js';
import { isSha256Hex } from '../../digest.js';
import { readSmall } from '../../download/safe-fs.js';

/** A record names one line, one file and its sha256. */
const MAX_RECORD_BYTES = 64 * 1024;

/**
 * What a URL line put in files-dir: `<files-dir>/.model-pull/<file name>.json` names the line
 * and its sha256, so `verify` can re-hash the file later (the file itself carries no digest).
 */
export interface UrlRecord {
  readonly line: string;
  readonly file: string;
  readonly sha256: string;
}

const FORMAT = 'model-pull/url-file@1';

export const recordsFolder = (filesDir: string) => join(filesDir, '.model-pull');

/** Written after the file is in place; a record is a hint for verify, never trusted for bytes. */
export async function writeUrlRecord(filesDir: string, record: UrlRecord): Promise<void> {
  const path = join(recordsFolder(filesDir), `${record.file}.json`);
  await writeFileAtomic(path, `${JSON.stringify({ format: FORMAT, ...record }, null, 1)}\n`);
}

/** Every well-formed record in files-dir, by file name; anything else there is ignored. */
export async function readUrlRecords(filesDir: string): Promise<UrlRecord[]> {
  const folder = recordsFolder(filesDir);
  const names = await readdir(folder).catch(() => [] as string[]);
  const records: UrlRecord[] = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    try {
      const data = JSON.parse(String(await readSmall(join(folder, name), MAX_RECORD_BYTES))) as Record<
        string,
        unknown
      >;
      const { line, file, sha256 } = data;
      if (data.format !== FORMAT || typeof line !== 'string' || typeof file !== 'string') continue;
      if (typeof sha256 !== 'string' || !isSha256Hex(sha256) || `${file}.json` !== name) continue;
      // A record names a file in files-dir itself, never a path that leaves it.
      if (file.startsWith('.') || /[/\\\0]/.test(file)) continue;
      records.push({ line, file, sha256 });
    } catch {
      // unreadable or not JSON: not a record of ours
    }
  }
  return records;
}
