import { lstat } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { isSha256Hex } from '../../digest.js';
import { readSmall } from '../../download/safe-fs.js';
import { describeError } from '../../errors.js';
import { MAX_MANIFEST_BYTES, parseManifestOrIndex } from '../../registry/manifest.js';
import { Checker, type VerifyReport, walk } from '../../verify/files.js';
import { recordPath } from './folder.js';
import { blobPath, REF_NAME } from './layout.js';
import { unsafePathReason } from './paths.js';

/** index.json beyond this is not ours to read whole (the layout module's own bound). */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;
const MAX_RECORD_BYTES = 64 * 1024 * 1024;

/**
 * Re-hashes `oci-dir` (docs/oci-artifacts.md, "Where models land"): every reference in
 * index.json must name a manifest blob with its digest, and every blob that manifest names its
 * size and sha256; every model folder with a record must hold each recorded file with its size
 * and sha256. A damaged model is named by the `oci:` line that pulls it again.
 */
export async function verifyOciDir(root: string): Promise<VerifyReport> {
  const checker = new Checker();
  const named = await references(root, checker);
  for (const entry of named) {
    const model = `oci:${entry.name}`;
    const manifestFile = blobPath(root, entry.hex);
    const problem = await checker.problem(manifestFile, { algorithm: 'sha256', hex: entry.hex }, entry.size);
    if (problem) {
      checker.damaged.push({ model, path: manifestFile, problem, line: model });
      continue;
    }
    let blobs: { hex: string; size: number }[] = [];
    try {
      const doc = parseManifestOrIndex((await readSmall(manifestFile, MAX_MANIFEST_BYTES))!, entry.name);
      blobs = doc.kind === 'manifest' ? [doc.config, ...doc.layers] : [...doc.manifests];
    } catch (error) {
      checker.damaged.push({ model, path: manifestFile, problem: describeError(error), line: model });
    }
    for (const blob of blobs) {
      const path = blobPath(root, blob.hex);
      const bad = await checker.problem(path, { algorithm: 'sha256', hex: blob.hex }, blob.size);
      if (bad) checker.damaged.push({ model, path, problem: bad, line: model });
    }
  }
  await verifyFolders(root, checker, named);
  return checker.report();
}

interface Reference {
  readonly name: string;
  readonly hex: string;
  readonly size: number;
}

/** The named entries of index.json; an unreadable index is itself the damage. */
async function references(root: string, checker: Checker): Promise<Reference[]> {
  const path = join(root, 'index.json');
  if (!(await lstat(path).catch(() => undefined))) return [];
  let manifests: unknown;
  try {
    manifests = (
      JSON.parse((await readSmall(path, MAX_INDEX_BYTES))?.toString('utf8') ?? '') as { manifests?: unknown }
    ).manifests;
  } catch {
    manifests = undefined;
  }
  if (!Array.isArray(manifests)) {
    checker.damaged.push({ model: root, path, problem: 'not an OCI image index', line: '' });
    return [];
  }
  return manifests.flatMap(
    (m: { digest?: unknown; size?: unknown; annotations?: Record<string, unknown> }) => {
      const name = m?.annotations?.[REF_NAME];
      const hex = typeof m?.digest === 'string' && m.digest.startsWith('sha256:') ? m.digest.slice(7) : '';
      if (typeof name !== 'string' || !isSha256Hex(hex) || !Number.isSafeInteger(m.size)) return [];
      return [{ name, hex, size: m.size as number }];
    },
  );
}

/**
 * Each `models/…/.<hex>.files.json` record against the folder `models/…/<hex>` beside it. A
 * damaged folder is named by the reference that pulled it (so one model gets one repair line),
 * else by its repository and manifest digest.
 */
async function verifyFolders(root: string, checker: Checker, named: readonly Reference[]): Promise<void> {
  const models = join(root, 'models');
  for (const record of await walk(models)) {
    const m = /^\.([0-9a-f]{64})\.files\.json$/.exec(basename(record));
    if (!m) continue;
    const dir = join(dirname(record), m[1]!);
    if (recordPath(dir) !== record) continue;
    const repository = relative(models, dirname(record)).split(sep).join('/');
    const reference = named.find((r) => r.hex === m[1] && repositoryOf(r.name) === repository);
    const model = `oci:${reference ? reference.name : `${repository}@sha256:${m[1]}`}`;
    let files: { path: string; hex: string; size: number }[];
    try {
      files = (
        JSON.parse((await readSmall(record, MAX_RECORD_BYTES))?.toString('utf8') ?? '') as {
          files: typeof files;
        }
      ).files;
      if (!Array.isArray(files)) throw new Error('no file list');
    } catch {
      checker.damaged.push({ model, path: record, problem: 'an unreadable record', line: model });
      continue;
    }
    for (const file of files) {
      if (typeof file?.path !== 'string' || unsafePathReason(file.path) || !isSha256Hex(file.hex)) {
        checker.damaged.push({
          model,
          path: record,
          problem: 'a record entry that is not a file of the folder',
          line: model,
        });
        continue;
      }
      const path = join(dir, file.path);
      const problem = await checker.problem(path, { algorithm: 'sha256', hex: file.hex }, file.size);
      if (problem) checker.damaged.push({ model, path, problem, line: model });
    }
  }
}

/** `host/team/model` of a reference name (`host/team/model:tag`, `host/team/model@sha256:…`). */
function repositoryOf(name: string): string {
  const at = name.indexOf('@');
  const base = at >= 0 ? name.slice(0, at) : name;
  const colon = base.lastIndexOf(':');
  return colon > base.lastIndexOf('/') ? base.slice(0, colon) : base;
}
