import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createGunzip, createZstdDecompress } from 'node:zlib';
import { freeMemory } from '../memory.js';
import { type MemberHandler, TarFormatError, TarReader } from './tar-reader.js';

const MiB = 1024 * 1024;
/** The decompressor's output buffers: each is filled by zlib, then handed on in slices. */
const OUTPUT_CHUNK = MiB;

/**
 * Reads a cache archive pushed to it in order: sniffs the compression (zstd, with or without
 * `--long`, or gzip: what @actions/cache writes), decompresses, and feeds the tar reader, whose
 * handler decides what happens to each member. Decompressed output is capped at `maxBytes`, so
 * a small archive that expands without end (a "zip bomb") stops there.
 *
 * Memory is reused rather than renewed, which is most of what a restore costs: `write`
 * resolves only once the decompressor has read the whole chunk (the caller fills it again),
 * and each of zlib's output buffers is freed as soon as the tar reader is done with its last
 * slice. Fresh memory for every MiB in and out cost 2–3 CPU-seconds per GiB in page faults and
 * garbage collection, against ~0.3 s for decompressing itself (measured on incompressible
 * weights, whose zstd frames are raw blocks: the decompressor is a memcpy).
 */
export class ArchiveReader {
  #head: Buffer[] = [];
  #headSize = 0;
  #input: Transform | undefined;
  #done: Promise<void> | undefined;
  readonly #tar: TarReader;
  readonly #maxBytes: () => number;
  /** Decompressed bytes so far. */
  expanded = 0;

  /** `maxBytes` is asked as the bytes come: it may grow once the archive's size is known. */
  constructor(handler: MemberHandler, maxBytes: () => number) {
    this.#tar = new TarReader(handler, { release: releaseOutput });
    this.#maxBytes = maxBytes;
  }

  /** Members whose header was read. */
  get members(): number {
    return this.#tar.members;
  }

  /** Resolves once the chunk was read (the caller may then reuse its memory). */
  async write(chunk: Buffer): Promise<void> {
    if (!this.#input) {
      this.#head.push(chunk);
      this.#headSize += chunk.length;
      if (this.#headSize < 4) return;
      const head = Buffer.concat(this.#head);
      this.#head = [];
      this.#start(head);
      return this.#push(head);
    }
    return this.#push(chunk);
  }

  async end(): Promise<void> {
    if (!this.#input) {
      const head = Buffer.concat(this.#head);
      if (head.length === 0) throw new TarFormatError('the archive is empty');
      this.#start(head);
      await this.#push(head);
    }
    this.#input!.end();
    await this.#done;
  }

  /** Stops reading (the download failed): the member in progress is left to its handler's abort. */
  destroy(): void {
    this.#input?.destroy();
    this.#tar.destroy();
  }

  #start(head: Buffer): void {
    const input = decompressorFor(head);
    const maxBytes = this.#maxBytes;
    const counter = new Transform({
      highWaterMark: 4 * MiB,
      transform: (chunk: Buffer, _encoding, callback: TransformCallback) => {
        this.expanded += chunk.length;
        const cap = maxBytes();
        if (this.expanded > cap) {
          callback(new TarFormatError(`the archive expands to more than ${cap} bytes`));
          return;
        }
        callback(null, chunk);
      },
    });
    this.#input = input;
    this.#done = pipeline(input, counter, this.#tar);
    // The pipeline's failure is read by write()/end(); until then it must not go unhandled.
    this.#done.catch(() => undefined);
  }

  async #push(chunk: Buffer): Promise<void> {
    const input = this.#input!;
    if (input.destroyed) return this.#failure();
    // zlib calls back once it has read the whole chunk (its output may still be on its way).
    const read = new Promise<void>((resolve, reject) =>
      input.write(chunk, (error) => (error ? reject(error) : resolve())),
    );
    // A write that fails is told by the pipeline's own error (the first, and the clearer one).
    await Promise.race([read.catch(() => this.#failure()), this.#done!.then(() => this.#failure())]);
  }

  async #failure(): Promise<never> {
    await this.#done;
    throw new TarFormatError('the archive reader stopped');
  }
}

/**
 * Frees one of zlib's output buffers once the tar reader is done with the slice that ends it.
 * zlib fills a buffer of OUTPUT_CHUNK bytes, pushes it on in slices as they fill, and takes a
 * fresh one as soon as one is full, writing only there from then on: the slice that reaches a
 * buffer's end is its last, and the reader takes slices in order, so none of the buffer is in
 * use any more. Left to the collector, the buffers of 1 GiB of output piled up and each new one
 * was fresh memory.
 */
function releaseOutput(chunk: Buffer): void {
  const { buffer } = chunk;
  if (buffer.byteLength === OUTPUT_CHUNK && chunk.byteOffset + chunk.length === OUTPUT_CHUNK) {
    freeMemory(buffer);
  }
}

function decompressorFor(head: Buffer): Transform {
  // zstd frames start with 28 B5 2F FD; gzip with 1F 8B.
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
    // `--long=30` archives need a 1 GiB window; 31 is zstd's own ceiling on 64-bit.
    return createZstdDecompress({
      chunkSize: OUTPUT_CHUNK,
      params: { [constants.ZSTD_d_windowLogMax]: 31 },
    });
  }
  if (head[0] === 0x1f && head[1] === 0x8b) return createGunzip({ chunkSize: OUTPUT_CHUNK });
  throw new TarFormatError(
    `not a zstd or gzip archive (it starts with 0x${head.subarray(0, 4).toString('hex')})`,
  );
}
