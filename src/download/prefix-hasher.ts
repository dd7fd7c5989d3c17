import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { createDigestHash, type Digest } from '../digest.js';

const MiB = 1024 * 1024;
const READ_BLOCK = MiB;

/**
 * Hashes a blob while it downloads, on the thread that writes it. Ranges land out of order, so
 * the hash follows the contiguous written prefix; the range plan hands out work in file order so
 * that prefix keeps up. A chunk that lands exactly at the frontier is hashed from memory, right
 * after its write (on one connection, every chunk); bytes beyond it are read back from the page
 * cache once the gap before them closes. Either way the digest is ready right after the last
 * byte, with no second pass over the file.
 *
 * A worker thread hashing a read-back copy cost more than it saved: its second V8 isolate held
 * 15–20 MiB, and reading every byte back ~0.25 s of CPU per GiB (issue 17, measured). sha256 of
 * 1 GiB is ~0.7 s here with SHA-NI whichever thread runs it.
 */
export class PrefixHasher {
  private hash: Hash | undefined;
  private frontier = 0;
  private catchingUp: Promise<void> | undefined;
  private failure: unknown;
  /** One read buffer for the blob's whole life (a fresh one per catch-up was garbage). */
  private buffer: Buffer | undefined;

  constructor(
    private readonly algorithm: Digest['algorithm'],
    private readonly file: FileHandle,
    /** The blob's size, once known (a plain URL's is learned from the first response). */
    private readonly sizeOf: () => number | undefined,
    /** Bytes [0, n) are written to the file. */
    private readonly writtenPrefix: () => number,
  ) {}

  /** Starts the hash once there are bytes to hash (git-sha1 needs the size first). */
  private start(): void {
    this.hash ??= createDigestHash(this.algorithm, this.sizeOf());
  }

  /**
   * Called once `chunk` is written at `offset`, or while it is being written: only a chunk at the
   * frontier is hashed from memory; any other is read back up to `writtenPrefix` later.
   */
  written(offset: number, chunk: Uint8Array): void {
    this.start();
    if (this.hash && !this.catchingUp && offset === this.frontier) {
      this.hash.update(chunk);
      this.frontier += chunk.length;
      return;
    }
    this.catchUp();
  }

  /** Hashes whatever written prefix it has not seen yet, reading it back from the file. */
  catchUp(): void {
    const prefix = this.writtenPrefix();
    if (prefix > 0) this.start();
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
    await this.catchingUp;
    if (this.failure) throw this.failure;
    if (this.frontier < total) {
      await this.readForward();
    }
    return { hex: this.hash!.digest('hex'), hashed: this.frontier };
  }

  /** Waits for a read in flight, so the file can be closed under no one. */
  async dispose(): Promise<void> {
    await this.catchingUp;
  }
}
