// The bench servers' rate caps: a token bucket per TCP connection (keep-alive requests on one
// socket share it, so the cap is per connection, as a CDN's per-flow limit) and a sender that
// writes a body through any number of buckets.
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

const KiB = 1024;
export const CAPPED_CHUNK = 64 * KiB;
const UNCAPPED_CHUNK = 1024 * KiB;

/** Tokens are bytes; refilled at `rate` per second up to `burst`, so a cap holds over ~16 ms. */
export class TokenBucket {
  private tokens: number;
  private last = performance.now();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** Resolves once `n` bytes may be sent. */
  async take(n: number): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
      this.last = now;
      if (this.tokens >= n) {
        this.tokens -= n;
        return;
      }
      const waitMs = ((n - this.tokens) * 1000) / this.rate;
      await new Promise((resolve) => setTimeout(resolve, Math.max(1, Math.ceil(waitMs))));
    }
  }
}

const socketBuckets = new WeakMap<Socket, TokenBucket>();

/** The bucket of a connection, made on its first capped request. */
export function bucketFor(socket: Socket, rate: number): TokenBucket {
  let bucket = socketBuckets.get(socket);
  if (!bucket) {
    bucket = new TokenBucket(rate, Math.max(CAPPED_CHUNK, rate / 64));
    socketBuckets.set(socket, bucket);
  }
  return bucket;
}

/** Writes `data[start, end)` through every bucket (none: uncapped), minding backpressure. */
export async function send(
  res: ServerResponse,
  data: Uint8Array,
  start: number,
  end: number,
  buckets: readonly TokenBucket[],
): Promise<void> {
  const chunk = buckets.length > 0 ? CAPPED_CHUNK : UNCAPPED_CHUNK;
  for (let offset = start; offset < end; ) {
    if (res.destroyed) return;
    const n = Math.min(chunk, end - offset);
    for (const bucket of buckets) await bucket.take(n);
    if (res.destroyed) return;
    const ok = res.write(data.subarray(offset, offset + n));
    offset += n;
    if (!ok) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
  }
  res.end();
}
