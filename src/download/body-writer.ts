import { writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { ModelPullError } from '../errors.js';
import type { RawBody } from '../http/raw.js';
import { freeWhole } from '../memory.js';
import type { Segment } from './range-plan.js';

/** Bytes handed to an asynchronous sink and not yet written, per connection, before we pause. */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = HIGH_WATER / 4;

/**
 * Where a body's bytes go: a staging file (a FileHandle is one), or a stream's in-memory window,
 * whose write resolves only once there is room (the body then pauses, as for a slow disk).
 */
export interface ByteSink {
  write(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  /**
   * A file's descriptor (a FileHandle has one): each chunk is then written with one synchronous
   * positioned write as it arrives, as curl and aria2c write. A write handed to libuv's thread
   * pool cost more main-thread time than the write itself (~45 µs per 64 KiB chunk: 0.7 s of CPU
   * per GiB against 0.35 s, measured), and the writes in flight held up to 1 MiB per connection.
   */
  readonly fd?: number;
  /**
   * Takes the bytes at once when it can (a stream's window with room for them), so that a chunk
   * costs no promise; false when the write has to wait, and `write` is used instead.
   */
  tryWrite?(buffer: Buffer, position: number): boolean;
}

export interface BodyTarget {
  readonly file: ByteSink;
  /** Bytes land at `segment.pos` onwards; `pos` advances only over bytes in the file. */
  readonly segment: Segment;
  /** Called in file order once `bytes` (at `offset`, all ours) are in the file. */
  landed(offset: number, bytes: Buffer): void;
  /** Turns an error of the body stream (reset, stall, abort) into ours. */
  bodyError(error: unknown): Error;
  /** Where this response's bytes end (exclusive), when the server said so. */
  readonly bodyEnd?: number;
  /**
   * How many more bytes may land before progress is recorded (writeRawBody splits a read there,
   * so a kill loses no more than the record interval, whatever the size of a read).
   */
  readonly untilRecord?: () => number;
}

interface PendingWrite {
  readonly offset: number;
  readonly piece: Buffer;
  done: boolean;
}

/**
 * Streams a response body into the staging file at its segment, until the body ends or a thief
 * has moved `segment.end` below what arrived. Writes are issued as chunks arrive, several at
 * once, and retired in order: awaiting each write before reading the next chunk paused the
 * parser on every chunk, and undici then re-joins the socket's buffered reads into new buffers
 * (a second copy of every byte, and twice the garbage).
 */
export function writeBody(body: Readable, target: BodyTarget): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    new BodyWriter(body, target, resolve, reject).start();
  });
}

class BodyWriter {
  private readonly queue: PendingWrite[] = [];
  private readonly segment: Segment;
  /** Offset of the next byte that arrives (writes in flight lie between pos and next). */
  private next: number;
  private inFlight = 0;
  private ended = false;
  private settled = false;
  /** The segment ends before the body does (a thief took the rest): we stop reading. */
  private cut = false;
  /** A reset or stall: bytes that arrived before it are still good once their writes land. */
  private failure: Error | undefined;
  /** The sink's file descriptor: chunks are written synchronously, nothing is queued. */
  private readonly fd: number | undefined;

  constructor(
    private readonly body: Readable,
    private readonly target: BodyTarget,
    private readonly resolve: () => void,
    private readonly reject: (error: Error) => void,
  ) {
    this.segment = target.segment;
    this.next = this.segment.pos;
    const fd = target.file.fd;
    this.fd = typeof fd === 'number' ? fd : undefined;
  }

  start(): void {
    if (this.next >= this.segment.end) {
      this.settle();
      return;
    }
    this.body
      .on('data', this.onData)
      .on('end', this.onEnd)
      .on('error', this.onError)
      .on('close', this.onClose);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.failure) return;
    const room = this.segment.end - this.next;
    if (room <= 0) {
      this.cut = true;
      this.body.pause();
      this.retire();
      return;
    }
    const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
    // Behind a queued write, a chunk waits its turn.
    if ((this.fd !== undefined || this.queue.length === 0) && this.writeNow(piece)) return;
    const write: PendingWrite = { offset: this.next, piece, done: false };
    this.queue.push(write);
    this.next += piece.length;
    this.inFlight += piece.length;
    this.target.file.write(piece, 0, piece.length, write.offset).then(
      ({ bytesWritten }) => {
        // A short write means bytes we would count but never wrote: fail, never skip them.
        if (bytesWritten !== piece.length) {
          this.settle(writeError(Object.assign(new Error('short write'), { code: 'ENOSPC' })));
          return;
        }
        write.done = true;
        this.inFlight -= piece.length;
        try {
          this.retire();
        } catch (error) {
          this.settle(error instanceof Error ? error : new Error(String(error)));
        }
      },
      (error: unknown) => this.settle(writeError(error)),
    );
    this.noteCut();
    if (this.inFlight >= HIGH_WATER || this.cut) this.body.pause();
  };

  /**
   * A chunk written synchronously (to a file, or a window with room): counted and freed before
   * the next one is read. False when the sink cannot take it now (nothing happened).
   */
  private writeNow(piece: Buffer): boolean {
    const offset = this.next;
    try {
      if (this.fd !== undefined) {
        const written = writeSync(this.fd, piece, 0, piece.length, offset);
        // A short write means bytes we would count but never wrote: fail, never skip them.
        if (written !== piece.length) throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
      } else if (!this.target.file.tryWrite?.(piece, offset)) {
        return false;
      }
      this.next += piece.length;
      this.segment.pos = this.next;
      this.target.landed(offset, piece);
    } catch (error) {
      this.settle(writeError(error));
      return true;
    }
    freeWhole(piece);
    this.noteCut();
    if (this.cut) this.retire();
    return true;
  }

  private readonly onEnd = (): void => {
    this.ended = true;
    this.retire();
  };

  private readonly onError = (error: unknown): void => {
    this.failure ??= this.target.bodyError(error);
    this.retire();
  };

  private readonly onClose = (): void => {
    if (!this.body.readableEnded) this.onError(new Error('the response body closed early'));
  };

  /** Reports written pieces in file order, then resumes, waits, or finishes. */
  private retire(): void {
    const { segment } = this;
    while (this.queue[0]?.done && !this.settled) {
      const { offset, piece } = this.queue.shift()!;
      // A thief may have moved `end` below this piece while it was being written; the
      // overlap holds the same bytes the thief writes, but only our share counts as ours.
      const ours = Math.max(0, Math.min(piece.length, segment.end - offset));
      if (ours > 0) {
        segment.pos = offset + ours;
        this.target.landed(offset, ours === piece.length ? piece : piece.subarray(0, ours));
      }
      freeWhole(piece);
    }
    this.noteCut();
    if (this.inFlight <= LOW_WATER && this.body.isPaused() && !this.cut) this.body.resume();
    // The body's own end keeps the connection reusable; we cut it only when it has more.
    if (this.queue.length === 0 && (this.ended || this.cut || this.failure)) this.settle(this.failure);
  }

  private noteCut(): void {
    const bodyEnd = this.target.bodyEnd ?? Number.POSITIVE_INFINITY;
    if (this.next >= this.segment.end && this.segment.end < bodyEnd) this.cut = true;
  }

  private settle(error?: Error): void {
    if (this.settled) return;
    this.settled = true;
    const { body } = this;
    body
      .off('data', this.onData)
      .off('end', this.onEnd)
      .off('error', this.onError)
      .off('close', this.onClose);
    // A body we stop reading early would hold its socket, so it goes (undici reports that as
    // an abort, which is expected here and ignored).
    if (!body.readableEnded) body.on('error', () => undefined).destroy();
    if (error) this.reject(error);
    else this.resolve();
  }
}

/**
 * Writes a body read in place (raw.ts) into the file at `fd`: each read's bytes are written at
 * their position and handed to `landed` (which hashes them) inside the read callback, and the
 * read buffer is reused once the call returns; nothing is queued, copied or kept. Stops when the
 * body ends or a thief has moved `segment.end` below what arrived (the connection then goes:
 * the rest of the body is in flight). `check` is asked after each read (the rate guard): an
 * error it returns ends the body.
 */
export function writeRawBody(
  body: RawBody,
  fd: number,
  target: BodyTarget,
  check: (bytes: number) => Error | undefined,
): Promise<void> {
  const { segment } = target;
  const bodyEnd = target.bodyEnd ?? Number.POSITIVE_INFINITY;
  return new Promise<void>((resolve, reject) => {
    if (segment.pos >= segment.end) {
      body.dump();
      return resolve();
    }
    let failure: Error | undefined;
    body.pump({
      data(view) {
        const room = segment.end - segment.pos;
        if (room <= 0) return false;
        const ours = view.length > room ? view.subarray(0, room) : view;
        try {
          // A read (up to 1 MiB) lands in pieces that end where progress is to be recorded.
          for (let at = 0; at < ours.length; ) {
            const length = Math.min(ours.length - at, Math.max(1, target.untilRecord?.() ?? ours.length));
            const piece = ours.subarray(at, at + length);
            const offset = segment.pos;
            const written = writeSync(fd, piece, 0, length, offset);
            // A short write means bytes we would count but never wrote: fail, never skip them.
            if (written !== length) throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
            segment.pos = offset + length;
            at += length;
            target.landed(offset, piece);
          }
        } catch (error) {
          failure = writeError(error);
          return false;
        }
        failure = check(ours.length);
        if (failure) return false;
        // A thief took the rest: what is left of the body is not ours.
        return !(segment.pos >= segment.end && segment.end < bodyEnd);
      },
      end(error) {
        if (failure) reject(failure);
        else if (error) reject(target.bodyError(error));
        else resolve();
      },
    });
  });
}

function writeError(error: unknown): Error {
  if ((error as { code?: string }).code === 'ENOSPC') {
    return new ModelPullError('ERR_DISK_SPACE', 'the disk filled up while writing the download', {
      cause: error,
    });
  }
  return error instanceof Error ? error : new Error(String(error));
}
