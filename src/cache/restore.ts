import { shortfalls } from '../download/disk.js';
import { verifiedSize } from '../download/engine.js';
import { type LocalBlobWriter, openLocalBlob, streamBlob } from '../download/follow.js';
import type { BlobSpec } from '../download/types.js';
import { describeError, ModelPullError } from '../errors.js';
import type { HttpClient } from '../http/client.js';
import type { RetryPolicy } from '../http/retry.js';
import { formatBytes } from '../report/format.js';
import { ArchiveReader } from './archive.js';
import { missed } from './client.js';
import {
  type CacheServiceConfig,
  cacheVersion,
  compressionMethod,
  type FoundEntry,
  lookupEntry,
  savedPathList,
} from './service.js';
import type { MemberSink, TarMember } from './tar-reader.js';

const MiB = 1024 * 1024;

/** One entry to restore: its key, the paths it was saved under, the files it may fill. */
export interface RestoreEntry {
  readonly key: string;
  /** Exactly the strings given to saveCache: the service's `version` hashes them. */
  readonly paths: readonly string[];
  /**
   * The files a restore may write, each at its own target and only once its bytes match its
   * digest. Members for the entry's other paths (records a commit rewrites anyway) are passed
   * over; every other member is refused.
   */
  readonly blobs: readonly BlobSpec[];
  /**
   * How a file already at its target is trusted (the run's `verify`): such files are not
   * written again, and when every file is in place the archive is not fetched at all. Without
   * it, every planned file is restored.
   */
  readonly verify?: 'full' | 'size';
  /** Hears the archive being fetched, for progress. */
  readonly progress?: RestoreProgress;
}

/** The fetch of an entry's archive, told as it goes. */
export interface RestoreProgress {
  /** The archive is about to be fetched; its size when the storage told it. */
  start(size: number | undefined): void;
  /** The storage told the size only once the first range came. */
  size(size: number): void;
  bytes(n: number): void;
  /** The restore is over (whatever it placed). */
  end(ok: boolean): void;
}

export interface RestoreResult {
  /**
   * `miss`: no entry, or one whose archive gave nothing at all. `hit`: every file came verified
   * from it (or was in place already). `partial`: some did not, or a member was refused. `off`:
   * nothing was looked up (the cache is off, or its service missing, failing or not readable in
   * this run).
   */
  readonly state: 'miss' | 'hit' | 'partial' | 'off';
  /** The service named an entry under the key (whatever its archive held). */
  readonly found: boolean;
  /** Targets placed from the archive, verified, with their sizes. */
  readonly restored: ReadonlyMap<string, number>;
  /** Targets that held their verified bytes before the restore (not written again), with sizes. */
  readonly present?: ReadonlyMap<string, number>;
  /** Bytes fetched from the cache's storage. */
  readonly fetched: number;
  /** Why reading the archive stopped early (it could not be fetched, is truncated, is not zstd…). */
  readonly failure?: string;
  /** What was refused, by reason, with a few names each: for the entry's one warning. */
  readonly refused?: string;
  /** Planned files the entry did not fill (they come from the origin). */
  readonly missing: number;
}

export interface RestoreDeps {
  readonly http: HttpClient;
  readonly retry: RetryPolicy;
  readonly connections: number;
  readonly service: CacheServiceConfig;
  readonly signal?: AbortSignal;
}

/**
 * Restores one entry without trusting it: looks it up with the key and version @actions/cache
 * saved it under, fetches the archive through the engine (parallel ranges, retries) and reads it
 * as it lands, in memory: each byte reaches the disk once, in its planned file. Only regular
 * files whose names map to a planned file are taken, and each goes through the download path's
 * staging, hash and atomic commit; paths come from the plan, never from the archive, so nothing
 * is written anywhere else, whatever the archive says.
 *
 * An interrupted restore resumes by what it committed: files already in place and verified are
 * passed over (their members are read and dropped), and when all are in place the archive is
 * not fetched. The archive itself is fetched again from its start: a compressed stream cannot
 * be entered halfway.
 * Throws only when the service itself cannot be used (the caller warns and stops using it).
 */
export async function restoreEntry(
  entry: RestoreEntry,
  deps: RestoreDeps,
  lookup: Promise<FoundEntry | undefined> = findEntry(entry, deps),
): Promise<RestoreResult> {
  const found = await lookup;
  if (!found || entry.blobs.length === 0) return missed(entry, found !== undefined);

  const present = new Map<string, number>();
  const restored = new Map<string, number>();
  const refused = new Refusals();
  let failure: string | undefined;
  let fetched = 0;
  try {
    if (entry.verify) await findPresent(entry.blobs, entry.verify, present);
    if (present.size < entry.blobs.length) {
      fetched = await readArchive(entry, deps, found, { present, restored, refused });
    }
  } catch (error) {
    failure = describeError(error);
  }
  const missing = entry.blobs.filter((b) => !restored.has(b.target) && !present.has(b.target)).length;
  // An archive that could not be read at all gave nothing: a miss. Anything refused, or some
  // files but not all, is partial.
  const state =
    missing === 0 && refused.count === 0 && failure === undefined
      ? 'hit'
      : restored.size === 0 && refused.count === 0
        ? 'miss'
        : 'partial';
  const described = refused.describe();
  return {
    state,
    found: true,
    restored,
    ...(present.size > 0 ? { present } : {}),
    fetched,
    missing,
    ...(failure !== undefined ? { failure } : {}),
    ...(described !== undefined ? { refused: described } : {}),
  };
}

/** Planned files whose targets hold their verified bytes already, into `present`. */
async function findPresent(
  blobs: readonly BlobSpec[],
  verify: 'full' | 'size',
  present: Map<string, number>,
): Promise<void> {
  for (const blob of blobs) {
    // One that cannot be checked is simply restored (the engine reports it if it stays unreadable).
    const size = await verifiedSize(blob, verify).catch(() => undefined);
    if (size !== undefined) present.set(blob.target, size);
  }
}

/** Fetches and reads the archive, filling `restored`; resolves with the bytes fetched. */
async function readArchive(
  entry: RestoreEntry,
  deps: RestoreDeps,
  found: FoundEntry,
  into: { present: ReadonlyMap<string, number>; restored: Map<string, number>; refused: Refusals },
): Promise<number> {
  const { present, restored, refused } = into;
  const plan = new PlannedFiles(entry.blobs, entry.paths, present);
  let current: LocalBlobWriter | undefined;
  /** A member's file being opened (its lease taken): reading may stop before it gets its sink. */
  let opening: Promise<LocalBlobWriter> | undefined;
  /** A member's file being verified and placed: reading may stop while it is. */
  let committing: Promise<void> | undefined;
  let archiveSize: number | undefined;
  const known = entry.blobs.reduce((sum, b) => sum + (b.size ?? 0), 0);
  const unknown = entry.blobs.some((b) => b.size === undefined);
  // Model files hardly compress: the archive expands to their sizes plus headers. A file whose
  // size the plan does not know may take up to 8 times the archive's own size.
  const maxBytes = () => known + 64 * MiB + (unknown ? 8 * (archiveSize ?? 64 * MiB) : 0);
  const reader = new ArchiveReader(async (member) => {
    const blob = plan.take(member, refused);
    if (!blob) return undefined;
    opening = openLocalBlob(blob, member.size, deps.signal);
    const writer = await opening;
    opening = undefined;
    current = writer;
    return sink(writer, () => {
      current = undefined;
      committing = writer.commit().then((outcome) => {
        if (outcome.ok) restored.set(blob.target, outcome.size);
        else refused.add('not the planned bytes', member.name);
      });
      return committing;
    });
  }, maxBytes);

  let ok = false;
  try {
    // Knowing the size up front lets every connection start at once (else the first one learns it).
    archiveSize = await sizeOf(deps.http, found.url, deps.signal);
    await checkRoom(entry, present, archiveSize);
    entry.progress?.start(archiveSize);
    const result = await streamBlob(
      {
        label: `cache entry ${entry.key}`,
        locate: async () => ({ url: found.url }),
        ...(archiveSize !== undefined ? { size: archiveSize } : {}),
      },
      {
        http: deps.http,
        connections: deps.connections,
        retry: deps.retry,
        ...(deps.signal ? { signal: deps.signal } : {}),
        onSize: (size) => {
          archiveSize = size;
          entry.progress?.size(size);
        },
        ...(entry.progress ? { onBytes: (n: number) => entry.progress!.bytes(n) } : {}),
      },
      (chunk) => reader.write(chunk),
    );
    await reader.end();
    ok = true;
    return result.size;
  } catch (error) {
    reader.destroy();
    throw error;
  } finally {
    // Reading may stop while a file is being placed (it then counts as restored) or opened (it
    // is dropped too, with its lease and staging file).
    await committing?.catch(() => undefined);
    const orphan = await opening?.catch(() => undefined);
    await orphan?.abort();
    await current?.abort();
    entry.progress?.end(ok);
  }
}

/**
 * Fails before the first byte when the files to restore cannot fit beside what is free where
 * they land (the archive itself is read in memory and takes no room).
 */
async function checkRoom(
  entry: RestoreEntry,
  present: ReadonlyMap<string, number>,
  archiveSize: number | undefined,
): Promise<void> {
  const byFolder = new Map<string, number>();
  for (const blob of entry.blobs) {
    if (present.has(blob.target) || blob.size === undefined) continue;
    byFolder.set(blob.ingestDir, (byFolder.get(blob.ingestDir) ?? 0) + blob.size);
  }
  const [short] = await shortfalls(byFolder);
  if (short) {
    const { need, free, at } = short;
    const archive = archiveSize !== undefined ? ` from a ${formatBytes(archiveSize)} archive` : '';
    throw new ModelPullError(
      'ERR_DISK_SPACE',
      `not enough disk space under ${at}: ${formatBytes(need)} of files to restore${archive}, ${formatBytes(free)} free`,
    );
  }
}

/**
 * Looks the entry up with the key and version @actions/cache saved it under, downloading
 * nothing (fail-on-cache-miss asks this of every model first). Undefined on a miss; throws when
 * the service cannot be used.
 */
export async function findEntry(
  entry: Pick<RestoreEntry, 'key' | 'paths'>,
  deps: RestoreDeps,
): Promise<FoundEntry | undefined> {
  const paths = savedPathList(entry.paths);
  const ask = (method: string, signal: AbortSignal | undefined) =>
    lookupEntry(deps.http, deps.retry, deps.service, entry.key, cacheVersion(paths, method), signal);
  const probe = compressionMethod();
  // Runners have zstd: the lookup under its version goes out while the probe (a process spawned,
  // 25 ms and more under load, once per run) answers, instead of after it.
  const dropped = new AbortController();
  const signal = deps.signal ? AbortSignal.any([deps.signal, dropped.signal]) : dropped.signal;
  const likely = ask('zstd-without-long', signal);
  // Its failure is the caller's only once it is the answer (returned below), never unhandled.
  likely.catch(() => undefined);
  if ((await probe) === 'zstd-without-long') return likely;
  // No zstd here: the saving job filed the entry under gzip's version.
  dropped.abort();
  return ask(await probe, deps.signal);
}

/** The archive's size from a HEAD of its signed URL (Azure answers it); undefined if it will not say. */
async function sizeOf(
  http: HttpClient,
  url: string,
  signal: AbortSignal | undefined,
): Promise<number | undefined> {
  try {
    const response = await http.request(url, { method: 'HEAD', ...(signal ? { signal } : {}) });
    await response.body.dump().catch(() => undefined);
    const length = Number(response.headers['content-length']);
    return response.status === 200 && Number.isSafeInteger(length) && length > 0 ? length : undefined;
  } catch {
    return undefined;
  }
}

function sink(writer: LocalBlobWriter, end: () => Promise<void>): MemberSink {
  return { write: (chunk) => writer.write(chunk), end };
}

/**
 * Maps archive member names to planned files. @actions/cache names members relative to the
 * saving job's workspace (`../../home/runner/.ollama/models/blobs/sha256-…` when the store is
 * outside it), and the workspace's depth differs between runners, so a name maps to the planned
 * file whose path ends with the name's segments once its leading `../` are set aside. Any other
 * `.`, `..` or empty segment, an absolute name, or a name no planned path ends with maps to
 * nothing. The name only ever selects a planned file; it is never joined into a path.
 */
class PlannedFiles {
  readonly #blobs = new Map<string, BlobSpec[]>();
  readonly #others = new Map<string, number>();
  readonly #seen = new Set<string>();

  constructor(
    blobs: readonly BlobSpec[],
    paths: readonly string[],
    /** Targets already in place: their members are passed over, not written again. */
    private readonly present: ReadonlyMap<string, number> = new Map(),
  ) {
    const targets = new Set(blobs.map((b) => b.target));
    for (const blob of blobs) for (const suffix of suffixes(blob.target)) push(this.#blobs, suffix, blob);
    for (const path of paths) {
      if (targets.has(path)) continue;
      for (const suffix of suffixes(path)) this.#others.set(suffix, (this.#others.get(suffix) ?? 0) + 1);
    }
  }

  /** The planned blob this member fills, or undefined (refused, or a record passed over). */
  take(member: TarMember, refused: Refusals): BlobSpec | undefined {
    if (member.problem) return void refused.add(member.problem, member.name);
    const key = relativeKey(member.name);
    if (key === undefined) return void refused.add('a path outside the planned files', member.name);
    const kind = typeName(member.type);
    const matches = this.#blobs.get(key) ?? [];
    if (matches.length === 0) {
      // Our own saves hold records a commit writes again; they are not the cache's to restore.
      if (kind === undefined && this.#others.get(key) === 1) return undefined;
      return void refused.add(kind ?? 'a file not in the plan', member.name);
    }
    if (kind !== undefined) return void refused.add(kind, member.name);
    if (matches.length > 1) return void refused.add('an ambiguous name', member.name);
    const blob = matches[0]!;
    if (this.#seen.has(blob.target)) return void refused.add('a duplicate', member.name);
    this.#seen.add(blob.target);
    if (blob.size !== undefined && member.size !== blob.size) {
      return void refused.add(
        `a size other than planned (${member.size} bytes, not ${blob.size})`,
        member.name,
      );
    }
    return this.present.has(blob.target) ? undefined : blob;
  }
}

/**
 * Every trailing run of segments of an absolute path: `a/b/c` → `c`, `b/c`, `a/b/c` (Windows
 * separators too: the library writes member names with `/` there).
 */
function suffixes(path: string): string[] {
  const parts = path.split(/[\\/]/).filter((p) => p !== '');
  return parts.map((_, i) => parts.slice(i).join('/'));
}

/** The member name without its leading `../` segments; undefined for anything else unusual. */
function relativeKey(name: string): string | undefined {
  if (name === '' || name.startsWith('/') || name.includes('\\') || name.includes('\0')) return undefined;
  const parts = name.split('/');
  let i = 0;
  while (parts[i] === '..') i++;
  const rest = parts.slice(i);
  if (rest.length === 0 || rest.some((p) => p === '' || p === '.' || p === '..')) return undefined;
  return rest.join('/');
}

/** Why a member of this type is refused; undefined for a regular file. */
function typeName(type: string): string | undefined {
  switch (type) {
    case '0':
      return undefined;
    case '1':
      return 'a hard link';
    case '2':
      return 'a symlink';
    case '3':
    case '4':
      return 'a device';
    case '5':
      return 'a folder';
    case '6':
      return 'a FIFO';
    default:
      return `a member of type ${JSON.stringify(type)}`;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Refused members by reason, with a few names each, for the one warning. */
class Refusals {
  readonly #byReason = new Map<string, string[]>();
  count = 0;

  add(reason: string, name: string): void {
    this.count++;
    const names = this.#byReason.get(reason) ?? [];
    names.push(name);
    this.#byReason.set(reason, names);
  }

  describe(): string | undefined {
    if (this.count === 0) return undefined;
    const parts = [...this.#byReason].map(([reason, names]) => {
      const shown = names.slice(0, 3).map(quote).join(', ');
      const more = names.length > 3 ? ` and ${names.length - 3} more` : '';
      return `${names.length} × ${reason} (${shown}${more})`;
    });
    return `refused ${this.count} archive member${this.count === 1 ? '' : 's'}: ${parts.join(', ')}`;
  }
}

/** A member name as a short, printable, quoted string: it is attacker-controlled text. */
function quote(name: string): string {
  const short = name.length > 120 ? `${name.slice(0, 117)}...` : name;
  return JSON.stringify(short.replace(/[\p{Cc}\p{Cf}]/gu, '?'));
}
