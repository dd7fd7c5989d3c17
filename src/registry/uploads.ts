import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import { readSmall } from '../download/safe-fs.js';
import { ensureDirs } from '../fs-dirs.js';

/**
 * Where an interrupted blob upload can be picked up again: its upload URL, per registry,
 * repository and digest, kept in a folder across runs (a push killed mid-blob resumes there
 * instead of sending the blob again; docs/registries.md, "Pushing"). The registry stays the
 * judge of how many bytes it holds: the record only says where to ask.
 */
export interface UploadRecords {
  /** The upload URL a previous run left for this blob, if any. */
  get(origin: string, repository: string, hex: string): Promise<string | undefined>;
  set(origin: string, repository: string, hex: string, location: string): Promise<void>;
  forget(origin: string, repository: string, hex: string): Promise<void>;
}

const FORMAT = 'model-pull/upload@1';
/** A record is a few hundred bytes; anything larger was not written by us. */
const MAX_RECORD = 16 * 1024;

/** Records as small files in `dir` (mode 0600: an upload URL lets anyone with it add bytes). */
export function uploadRecords(dir: string): UploadRecords {
  const pathOf = (origin: string, repository: string, hex: string) =>
    join(dir, `${createHash('sha256').update(`${origin}\n${repository}\n${hex}`).digest('hex')}.json`);
  return {
    async get(origin, repository, hex) {
      const bytes = await readSmall(pathOf(origin, repository, hex), MAX_RECORD);
      if (!bytes) return undefined;
      let doc: Record<string, unknown>;
      try {
        doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
      } catch {
        return undefined;
      }
      const same =
        doc.format === FORMAT && doc.origin === origin && doc.repository === repository && doc.hex === hex;
      // Another process may have left anything here: only an upload on the same origin is asked.
      if (!same || typeof doc.location !== 'string') return undefined;
      try {
        return new URL(doc.location).origin === origin ? doc.location : undefined;
      } catch {
        return undefined;
      }
    },
    async set(origin, repository, hex, location) {
      await ensureDirs(dir);
      const record = { format: FORMAT, origin, repository, hex, location };
      await writeFileAtomic(pathOf(origin, repository, hex), `${JSON.stringify(record)}\n`, { mode: 0o600 });
    },
    async forget(origin, repository, hex) {
      await rm(pathOf(origin, repository, hex), { force: true });
    },
  };
}

/** No records: every upload starts afresh (tests, or a run without a state folder). */
export const noUploadRecords: UploadRecords = {
  get: async () => undefined,
  set: async () => undefined,
  forget: async () => undefined,
};
