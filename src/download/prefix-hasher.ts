import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { createDigestHash, type Digest } from '../digest.js';
import { ThreadHash } from './hash-thread.js';

const MiB = 1024 * 1024;
const READ_BLOCK = MiB;
/** From this size a blob is hashed on the shared thread; below, a thread costs more than it saves. */
const THREAD_MIN_SIZE = 64 * MiB;
/** The thread hears about the written prefix in steps of this much (a message each). */
const THREAD_STEP = 4 * MiB;

/**
 * Hashes a blob while it downloads. Ranges land out of order, so the hash follows the
 * contiguous written prefix; the range plan hands out work in file order so that prefix keeps
 * up. A large sha256 blob is hashed on a worker thread (hash-thread.ts) that reads the prefix
 * back from the page cache. A small one, or a git-sha1, is hashed here: a chunk that lands
 * exactly at the frontier from memory, anything beyond read back once the gap before it closes.
 * Either way the digest is ready right after the last byte, with no second pass over the file.
 */
export class PrefixHasher {
  private thread: ThreadHash | undefined;
  private hash: Hash | undefined;
  private frontier = 0;
  private catchingUp: Promise<void> | undefined;
  private failure: unknown;
  /** One read buffer for the blob's whole life (a fresh one per catch-up was garbage). */
  private buffer: Buffer | undefined;

  constructor(
    private readonly algorithm: Digest['algorithm'],
    private readonly file: FileHandle,
    private readonly path: string,
    /** The blob's size, once known (a plain URL's is learned from the first response). */
    private readonly sizeOf: () => number | undefined,
    /** Bytes [0, n) are written to the file. */
    private readonly writtenPrefix: () => number,
  ) {}

  /** Picks where to hash once the size is known, or once there are bytes to hash. */
  private start(): void {
    if (this.thread || this.hash) return;
    const size = this.sizeOf();
    if (this.algorithm === 'sha256' && size !== undefined && size >= THREAD_MIN_SIZE) {
      this.thread = new ThreadHash(this.path);
    } else {
      this.hash = createDigestHash(this.algorithm, size);
    }
  }

  /** Called after `chunk` was written at `offset`. */
  written(offset: number, chunk: Uint8Array): void {
    this.start();
    if (this.hash && !this.catchingUp && offset === this.frontier) {
      this.hash.update(chunk);
      this.frontier += chunk.length;
      return;
    }
    this.catchUp();
  }

  /** Hashes (or lets the thread hash) whatever written prefix it has not seen yet. */
  catchUp(): void {
    const prefix = this.writtenPrefix();
    if (this.sizeOf() !== undefined || prefix > 0) this.start();
    if (this.thread) {
      if (prefix - this.frontier >= THREAD_STEP) {
        this.frontier = prefix;
        this.thread.advance(prefix);
      }
      return;
    }
    if (!this.hash || this.catchingUp || this.frontier >= prefix) return;
    this.catchingUp = this.readForward()
      .catch((error: unknown) => {
        this.failure = error;
      })
      .finally(() => {
        this.catchingUp = undefined;
      });
  }

  private async readForward(): Promise<void> {
    this.buffer ??= Buffer.allocUnsafe(READ_BLOCK);
    const buffer = this.buffer;
    for (;;) {
      const target = this.writtenPrefix();
      if (this.frontier >= target) return;
      const want = Math.min(READ_BLOCK, target - this.frontier);
      const { bytesRead } = await this.file.read(buffer, 0, want, this.frontier);
      if (bytesRead === 0) throw new Error(`staged file ended at ${this.frontier} bytes`);
      this.hash!.update(buffer.subarray(0, bytesRead));
      this.frontier += bytesRead;
    }
  }

  /** Hashes any remaining prefix up to `total` bytes and returns the hex digest. */
  async finish(total: number): Promise<{ hex: string; hashed: number }> {
    this.start();
    if (this.thread) return this.thread.finish(total);
    await this.catchingUp;
    if (this.failure) throw this.failure;
    if (this.frontier < total) {
      await this.readForward();
    }
    return { hex: this.hash!.digest('hex'), hashed: this.frontier };
  }

  /** Lets go of the thread's job (and its handle on the file) when the run ends early. */
  async dispose(): Promise<void> {
    await this.thread?.dispose();
  }
}
