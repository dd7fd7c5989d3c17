import { Writable } from 'node:stream';

/**
 * A strict, streaming reader of the tar archives @actions/cache writes (GNU tar `--posix`: ustar
 * headers, pax extended headers for long names and large sizes). It is fed the decompressed
 * bytes and hands each member's header to a handler, which either takes the member's bytes
 * (through an async sink, so a slow disk slows the archive down instead of filling memory) or
 * lets them pass unread. It never touches the file system itself.
 *
 * Written here rather than taken from a library because the archive is hostile input and the
 * reader's job is narrow: every metadata read is bounded (a pax header or GNU long name larger
 * than MAX_META is skipped without being buffered, and the member after it is marked), the
 * header checksum is checked, sizes are validated, and a member's bytes are pushed with
 * backpressure to an async writer. node-tar and tar-stream parse more formats but buffer pax
 * headers whole (tar-stream) or stream entries through their own event model, and extraction
 * policy (which names, which types) is ours either way.
 */

export interface TarMember {
  /** The member's name as stored (pax `path`, GNU long name, or ustar prefix + name). */
  readonly name: string;
  /** The type flag: '0' regular file, '1' hard link, '2' symlink, '5' folder, … */
  readonly type: string;
  readonly size: number;
  /** Set when the reader itself refuses the member (an oversize or malformed extended header). */
  readonly problem?: string;
}

/** Receives one member's bytes in order; `end` is called after the last one. */
export interface MemberSink {
  /** Once this resolves the chunk is the reader's again: a sink keeps no reference to it. */
  write(chunk: Buffer): Promise<void>;
  end(): Promise<void>;
}

/** Decides per member: a sink takes its bytes, undefined skips them. */
export type MemberHandler = (member: TarMember) => Promise<MemberSink | undefined>;

export interface TarReaderOptions {
  /**
   * Told each chunk written to the reader once the reader and every sink are done with it (its
   * bytes copied or written out), so that its owner may reuse or free its memory.
   */
  readonly release?: (chunk: Buffer) => void;
}

export class TarFormatError extends Error {}

const BLOCK = 512;
/** The most bytes of one extended header (pax records, GNU long name) we hold in memory. */
export const MAX_META = 64 * 1024;

type State =
  | { kind: 'header' }
  | { kind: 'meta'; type: string; left: number; pad: number; parts: Buffer[]; oversize: boolean }
  | { kind: 'data'; left: number; pad: number; sink: MemberSink | undefined }
  | { kind: 'pad'; left: number }
  | { kind: 'done' };

/** Extended-header values that apply to the next member. */
interface Pending {
  path?: string;
  size?: number;
  problem?: string;
}

export class TarReader extends Writable {
  #state: State = { kind: 'header' };
  #header = Buffer.alloc(BLOCK);
  #headerFill = 0;
  #zeroBlocks = 0;
  #pending: Pending = {};
  #offset = 0;
  readonly #handler: MemberHandler;
  readonly #release: ((chunk: Buffer) => void) | undefined;
  /** Members whose header was read (for the caller's accounting). */
  members = 0;

  constructor(handler: MemberHandler, options: TarReaderOptions = {}) {
    super({ highWaterMark: 4 * 1024 * 1024 });
    this.#handler = handler;
    this.#release = options.release;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#consume(chunk).then(
      () => {
        this.#release?.(chunk);
        callback();
      },
      (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    const state = this.#state;
    // GNU tar ends with two zero blocks; one is tolerated, as GNU tar itself does.
    const ended = state.kind === 'header' && this.#headerFill === 0 && this.#zeroBlocks >= 1;
    if (state.kind === 'done' || ended) {
      callback();
      return;
    }
    callback(
      new TarFormatError(
        `the archive is truncated (it ends at byte ${this.#offset} inside ${describe(state)})`,
      ),
    );
  }

  async #consume(chunk: Buffer): Promise<void> {
    let at = 0;
    while (at < chunk.length) {
      const state = this.#state;
      switch (state.kind) {
        case 'done':
          // Whatever follows the end marker (GNU tar pads to a 10 KiB record) is never read.
          this.#offset += chunk.length - at;
          return;
        case 'header': {
          const take = Math.min(BLOCK - this.#headerFill, chunk.length - at);
          chunk.copy(this.#header, this.#headerFill, at, at + take);
          this.#headerFill += take;
          at += take;
          this.#offset += take;
          if (this.#headerFill === BLOCK) {
            this.#headerFill = 0;
            await this.#onHeader();
          }
          break;
        }
        case 'meta': {
          const take = Math.min(state.left, chunk.length - at);
          if (!state.oversize) state.parts.push(Buffer.from(chunk.subarray(at, at + take)));
          state.left -= take;
          at += take;
          this.#offset += take;
          if (state.left === 0) this.#onMeta(state);
          break;
        }
        case 'data': {
          const take = Math.min(state.left, chunk.length - at);
          if (take > 0 && state.sink) await state.sink.write(chunk.subarray(at, at + take));
          state.left -= take;
          at += take;
          this.#offset += take;
          if (state.left === 0) {
            if (state.sink) await state.sink.end();
            this.#state = state.pad > 0 ? { kind: 'pad', left: state.pad } : { kind: 'header' };
          }
          break;
        }
        case 'pad': {
          const take = Math.min(state.left, chunk.length - at);
          state.left -= take;
          at += take;
          this.#offset += take;
          if (state.left === 0) this.#state = { kind: 'header' };
          break;
        }
      }
    }
  }

  async #onHeader(): Promise<void> {
    const header = this.#header;
    if (header.every((b) => b === 0)) {
      this.#zeroBlocks++;
      if (this.#zeroBlocks >= 2) this.#state = { kind: 'done' };
      return;
    }
    if (this.#zeroBlocks > 0)
      throw new TarFormatError(`a header follows the end-of-archive marker at byte ${this.#offset - BLOCK}`);
    checkChecksum(header, this.#offset - BLOCK);
    const type = header[156] === 0 ? '0' : String.fromCharCode(header[156] ?? 0x30);
    const pending = this.#pending;
    const extended = type === 'x' || type === 'g' || type === 'L' || type === 'K';
    // A pax `size` is the next member's; an extended header's own size is in its header.
    const size = (extended ? undefined : pending.size) ?? headerSize(header, this.#offset - BLOCK);
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    // Extended headers: kept (bounded) and applied to the next member.
    if (extended) {
      this.#state = { kind: 'meta', type, left: size, pad, parts: [], oversize: size > MAX_META };
      if (size === 0) this.#onMeta(this.#state);
      return;
    }
    this.#pending = {};
    this.members++;
    const name = pending.path ?? ustarName(header);
    const member: TarMember = pending.problem
      ? { name, type, size, problem: pending.problem }
      : { name, type, size };
    const sink = await this.#handler(member);
    this.#state = { kind: 'data', left: size, pad, sink };
    if (size === 0) {
      if (sink) await sink.end();
      this.#state = pad > 0 ? { kind: 'pad', left: pad } : { kind: 'header' };
    }
  }

  #onMeta(state: Extract<State, { kind: 'meta' }>): void {
    this.#state = state.pad > 0 ? { kind: 'pad', left: state.pad } : { kind: 'header' };
    if (state.oversize) {
      if (state.type === 'x' || state.type === 'L')
        this.#pending.problem = `an extended header larger than ${MAX_META} bytes`;
      return;
    }
    const data = Buffer.concat(state.parts);
    if (state.type === 'L') {
      this.#pending.path = cString(data);
    } else if (state.type === 'x') {
      const records = paxRecords(data);
      if (records === undefined) {
        this.#pending.problem = 'a malformed pax header';
        return;
      }
      if (records.path !== undefined) this.#pending.path = records.path;
      if (records.size !== undefined) {
        if (!/^\d{1,16}$/.test(records.size) || !Number.isSafeInteger(Number(records.size))) {
          throw new TarFormatError(
            `a pax header gives the size ${JSON.stringify(records.size.slice(0, 40))}`,
          );
        }
        this.#pending.size = Number(records.size);
      }
    }
    // 'g' (global) and 'K' (long link target) say nothing we use.
  }
}

function describe(state: State): string {
  switch (state.kind) {
    case 'header':
      return 'a header';
    case 'meta':
      return 'an extended header';
    case 'data':
      return `a member, ${state.left} bytes short`;
    case 'pad':
      return 'the padding after a member';
    case 'done':
      return 'nothing';
  }
}

function checkChecksum(header: Buffer, at: number): void {
  const stored = Number.parseInt(cString(header.subarray(148, 156)).trim() || 'x', 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  if (stored !== unsigned && stored !== signed) {
    throw new TarFormatError(`not a tar archive, or a damaged one (bad header checksum at byte ${at})`);
  }
}

/** Octal, or GNU base-256 (first byte 0x80) for sizes of 8 GiB and more. */
function headerSize(header: Buffer, at: number): number {
  const field = header.subarray(124, 136);
  if (((field[0] ?? 0) & 0x80) !== 0) {
    if (field[0] !== 0x80) throw new TarFormatError(`a negative or oversize member size at byte ${at}`);
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] ?? 0);
    if (!Number.isSafeInteger(value)) throw new TarFormatError(`an oversize member size at byte ${at}`);
    return value;
  }
  const text = cString(field).trim();
  if (!/^[0-7]*$/.test(text)) throw new TarFormatError(`a malformed member size at byte ${at}`);
  return text === '' ? 0 : Number.parseInt(text, 8);
}

function ustarName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const ustar = header.toString('latin1', 257, 262) === 'ustar';
  const prefix = ustar ? cString(header.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.toString('utf8', 0, end < 0 ? bytes.length : end);
}

/** `<length> <key>=<value>\n` records; undefined when they do not add up. */
function paxRecords(data: Buffer): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0 || space - at > 20) return undefined;
    const length = Number(data.toString('latin1', at, space));
    if (!Number.isSafeInteger(length) || length <= space - at + 1 || at + length > data.length)
      return undefined;
    if (data[at + length - 1] !== 0x0a) return undefined;
    const record = data.toString('utf8', space + 1, at + length - 1);
    const eq = record.indexOf('=');
    if (eq <= 0) return undefined;
    out[record.slice(0, eq)] = record.slice(eq + 1);
    at += length;
  }
  return out;
}
