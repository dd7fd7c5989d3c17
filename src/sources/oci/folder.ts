import { constants as fsc } from 'node:fs';
import { chmod, copyFile, link, lstat, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../../atomic-write.js';
import type { Clock } from '../../clock.js';
import { hashFile, isSha256Hex } from '../../digest.js';
import { acquireLease, describeHolder } from '../../download/lease.js';
import { readSmall } from '../../download/safe-fs.js';
import { ModelPullError } from '../../errors.js';
import { ensureDirs } from '../../fs-dirs.js';
import type { Logger } from '../../report/logger.js';
import { type ExtractedFile, extractLayer } from './extract.js';
import type { Placement } from './formats.js';
import { PathClaims, unsafePathReason } from './paths.js';

/**
 * One model's folder (`models/<host>/<repository>/<manifest hex>/`): every file at the path the
 * artifact gives it. Raw layers are hard links to their verified blobs (copies where a link
 * cannot be made); tar layers are extracted. The folder is built aside and renamed into place
 * whole, so a reader never sees half of it, and a record beside it lists every file with its
 * sha256, so a later run checks the folder instead of building it again.
 */
export interface FolderFile {
  /** Relative to the folder, `/`-separated. */
  readonly path: string;
  readonly hex: string;
  readonly size: number;
}

export interface FolderSpec {
  readonly dir: string;
  /** The layers that land in the folder (`file` and `archive` placements), in manifest order. */
  readonly placements: readonly Exclude<Placement, { kind: 'blob' }>[];
  readonly blobPath: (hex: string) => string;
  /** `full`: an existing folder's extracted files are hashed again; `size`: sizes only. */
  readonly verify: 'full' | 'size';
}

interface FolderRecord {
  readonly version: 1;
  readonly files: readonly FolderFile[];
}

/** Linked or copied raw files keep the blob's bytes; an archive expands at most this much. */
const EXPANSION_FACTOR = 64;
const EXPANSION_SLACK = 64 * 1024 * 1024;
const MAX_RECORD_BYTES = 64 * 1024 * 1024;

/** The record of a folder: a hidden sibling, so the folder holds exactly the model's files. */
export function recordPath(dir: string): string {
  return join(dirname(dir), `.${basename(dir)}.files.json`);
}

/** A short name for a layer in messages: `layer 3 (sha256:0123456789ab…, …doc.v1.tar+zstd)`. */
export function layerName(placement: Placement, index: number): string {
  return `layer ${index + 1} (sha256:${placement.layer.hex.slice(0, 12)}…, ${placement.layer.mediaType})`;
}

/**
 * Checks every path the manifest states before anything is fetched: a bad or clashing path fails
 * the model at plan time. (Tar members are checked as they are read.)
 */
export function checkPlacedPaths(placements: readonly Placement[], name: string): void {
  const claims = new PathClaims();
  placements.forEach((p, i) => {
    if (p.kind !== 'file') return;
    const why = unsafePathReason(p.path) ?? claims.file(p.path, layerName(p, i));
    if (why) {
      throw new ModelPullError(
        'ERR_BAD_MANIFEST',
        `manifest of ${name} is invalid: ${layerName(p, i)} names the path ${JSON.stringify(p.path.slice(0, 200))}, which is refused: ${why}`,
      );
    }
  });
}

/**
 * Builds the folder, or keeps the one in place when its record still holds; returns its files.
 * One builder at a time per folder (two lines naming one manifest, two jobs sharing oci-dir):
 * the others wait for its lease, then find its folder and keep it.
 */
export async function commitFolder(spec: FolderSpec, ctx: LeaseContext): Promise<FolderFile[]> {
  const parent = dirname(spec.dir);
  await ensureDirs(parent);
  const lease = await acquireLease(join(parent, `.${basename(spec.dir)}.lock`), `the folder ${spec.dir}`, {
    clock: ctx.clock,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    onWait: (holder) => ctx.log.info(`waiting for ${describeHolder(holder)} to finish ${spec.dir}`),
  });
  try {
    return await buildOrKeep(spec, parent);
  } finally {
    await lease.release();
  }
}

/** What waiting for another builder needs: the run's clock and log, and its abort signal. */
export interface LeaseContext {
  readonly clock: Clock;
  readonly log: Logger;
  readonly signal?: AbortSignal;
}

async function buildOrKeep(spec: FolderSpec, parent: string): Promise<FolderFile[]> {
  const kept = await checkExisting(spec);
  if (kept) return kept;
  await removeAbandoned(parent, basename(spec.dir));
  // mkdtemp makes it 0700: nobody else can plant a link inside while it is built.
  const temp = await mkdtemp(join(parent, `.${basename(spec.dir)}.${process.pid}.`));
  try {
    const files = await build(spec, temp);
    await chmod(temp, 0o755);
    await swapInto(temp, spec.dir);
    await writeFileAtomic(
      recordPath(spec.dir),
      JSON.stringify({ version: 1, files } satisfies FolderRecord),
      {
        mode: 0o644,
      },
    );
    return files;
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
}

async function build(spec: FolderSpec, root: string): Promise<FolderFile[]> {
  const claims = new PathClaims();
  const files: FolderFile[] = [];
  for (const [i, placement] of spec.placements.entries()) {
    const owner = layerName(placement, i);
    const blob = spec.blobPath(placement.layer.hex);
    if (placement.kind === 'file') {
      const why = claims.file(placement.path, owner);
      if (why) throw new ModelPullError('ERR_BAD_MANIFEST', `the artifact is invalid: ${why}`);
      const target = join(root, placement.path);
      await mkdir(dirname(target), { recursive: true, mode: 0o755 });
      await linkOrCopy(blob, target);
      files.push({ path: placement.path, hex: placement.layer.hex, size: placement.layer.size });
    } else {
      const extracted: ExtractedFile[] = await extractLayer({
        blob,
        compression: placement.compression,
        root,
        claims,
        owner,
        maxBytes: placement.layer.size * EXPANSION_FACTOR + EXPANSION_SLACK,
      });
      files.push(...extracted);
    }
  }
  await openFolders(root, claims);
  return files;
}

/** Folders made while building get 0755 whatever the umask (the consumer may be another user). */
async function openFolders(root: string, claims: PathClaims): Promise<void> {
  for (const dir of claims.folders()) await chmod(join(root, dir), 0o755);
}

/** A hard link shares the verified blob's bytes at no cost; a copy where links are not possible. */
async function linkOrCopy(blob: string, target: string): Promise<void> {
  try {
    await link(blob, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (
      code !== 'EXDEV' &&
      code !== 'EPERM' &&
      code !== 'EMLINK' &&
      code !== 'ENOTSUP' &&
      code !== 'EOPNOTSUPP'
    )
      throw error;
    await copyFile(blob, target, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
    await chmod(target, 0o644);
  }
}

/** Puts the new folder in place of whatever is there (a damaged or older build). */
async function swapInto(temp: string, dir: string): Promise<void> {
  try {
    await rename(temp, dir);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR') throw error;
  }
  const old = `${temp}.old`;
  await rename(dir, old);
  await rename(temp, dir);
  await rm(old, { recursive: true, force: true });
}

/**
 * Folders a killed run left half-built (`.<hex>.<pid>.<random>`). Called under the folder's
 * lease: nobody else is building this folder now, so every such folder is abandoned.
 */
async function removeAbandoned(parent: string, name: string): Promise<void> {
  const prefix = `.${name}.`;
  for (const entry of await readdir(parent).catch(() => [] as string[])) {
    if (entry.startsWith(prefix) && !entry.endsWith('.files.json') && !entry.endsWith('.lock'))
      await rm(join(parent, entry), { recursive: true, force: true });
  }
}

/**
 * The files of a folder already in place, when its record is readable and every file still is
 * what it says: a raw layer's file is still the blob's inode (or has its size and hash), an
 * extracted file its size (and, with `verify: full`, its sha256). Anything else: rebuild.
 */
async function checkExisting(spec: FolderSpec): Promise<FolderFile[] | undefined> {
  const info = await lstat(spec.dir).catch(() => undefined);
  if (!info?.isDirectory()) return undefined;
  const record = parseRecord(await readSmall(recordPath(spec.dir), MAX_RECORD_BYTES));
  if (!record) return undefined;
  const raw = new Map(
    spec.placements.flatMap((p) => (p.kind === 'file' ? [[p.path, p.layer.hex] as const] : [])),
  );
  if ([...raw.keys()].some((path) => !record.files.some((f) => f.path === path))) return undefined;
  for (const file of record.files) {
    if (unsafePathReason(file.path)) return undefined;
    const path = join(spec.dir, file.path);
    const stat = await lstat(path).catch(() => undefined);
    if (!stat?.isFile() || stat.size !== file.size) return undefined;
    const blobHex = raw.get(file.path);
    if (blobHex !== undefined) {
      if (blobHex !== file.hex) return undefined;
      const blob = await lstat(spec.blobPath(blobHex)).catch(() => undefined);
      if (blob && blob.ino === stat.ino && blob.dev === stat.dev) continue;
    } else if (spec.verify === 'size') {
      continue;
    }
    if ((await hashFile(path, 'sha256')) !== file.hex) return undefined;
  }
  return [...record.files];
}

function parseRecord(bytes: Buffer | undefined): FolderRecord | undefined {
  if (!bytes) return undefined;
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as Partial<FolderRecord>;
    const ok =
      doc.version === 1 &&
      Array.isArray(doc.files) &&
      doc.files.every(
        (f) =>
          typeof f?.path === 'string' &&
          typeof f.hex === 'string' &&
          isSha256Hex(f.hex) &&
          Number.isSafeInteger(f.size) &&
          f.size >= 0,
      );
    return ok ? (doc as FolderRecord) : undefined;
  } catch {
    return undefined;
  }
}
