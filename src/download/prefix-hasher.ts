import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { createDigestHash, type Digest } from '../digest.js';

const READ_BLOCK = 1 << 20;

/**
 * Hashes a blob while it downloads. Ranges land out of order, so the hash follows the
 * contiguous written prefix: a chunk that lands exactly at the frontier is hashed from memory;
 * anything beyond waits in the file and is read back (from the page cache, moments after it
 * was written) once the gap before it closes. The digest is ready right after the last byte,
 * with no second pass over the finished file.
 */
export class PrefixHasher {
  private hash: Hash;
  private frontier = 0;
  private catchingUp: Promise<void> | undefined;
  private failure: unknown;

  constructor(
    private readonly algorithm: Digest['algorithm'],
    private readonly size: number | undefined,
    private readonly file: FileHandle,
    /** Bytes [0, n) are written to the file. */
    private readonly writtenPrefix: () => number,
  ) {
    this.hash = createDigestHash(algorithm, size);
  }

  get hashedBytes(): number {
    return this.frontier;
  }

  /** Forgets everything: the blob restarts from byte 0 (a server that ignored Range). */
  async reset(): Promise<void> {
    await this.catchingUp;
    this.hash = createDigestHash(this.algorithm, this.size);
    this.frontier = 0;
  }

  /** Called after `chunk` was written at `offset`. */
  written(offset: number, chunk: Uint8Array): void {
    if (!this.catchingUp && offset === this.frontier) {
      this.hash.update(chunk);
      this.frontier += chunk.length;
      return;
    }
    this.catchUp();
  }

  /** Reads from the file whatever written prefix the hash has not seen yet. */
  catchUp(): void {
    if (this.catchingUp || this.frontier >= this.writtenPrefix()) return;
    this.catchingUp = this.readForward()
      .catch((error: unknown) => {
        this.failure = error;
      })
      .finally(() => {
        this.catchingUp = undefined;
      });
  }

  private async readForward(): Promise<void> {
    const buffer = Buffer.allocUnsafe(READ_BLOCK);
    for (;;) {
      const target = this.writtenPrefix();
      if (this.frontier >= target) return;
      const want = Math.min(READ_BLOCK, target - this.frontier);
      const { bytesRead } = await this.file.read(buffer, 0, want, this.frontier);
      if (bytesRead === 0) throw new Error(`staged file ended at ${this.frontier} bytes`);
      this.hash.update(buffer.subarray(0, bytesRead));
      this.frontier += bytesRead;
    }
  }

  /** Hashes any remaining prefix up to `total` bytes and returns the hex digest. */
  async finish(total: number): Promise<{ hex: string; hashed: number }> {
    await this.catchingUp;
    if (this.failure) throw this.failure;
    if (this.frontier < total) {
      await this.readForward();
    }
    return { hex: this.hash.digest('hex'), hashed: this.frontier };
  }
}
