import { Worker } from 'node:worker_threads';

/**
 * sha256 of a staged file's written prefix, computed on a worker thread shared by every blob
 * of the process. Hashing 1 GiB costs ~0.5 s of CPU; on the main thread it competed with
 * receiving, parsing (and for https decrypting) the very bytes it hashes, and the benchmark's
 * uncapped case spent a third of its time there. The worker reads the bytes back from the
 * page cache, moments after they were written, so nothing is copied between threads.
 *
 * The worker is plain JavaScript evaluated from a string, so the bundle needs no extra file;
 * `process.getBuiltinModule` works whether the host treats it as a CommonJS or an ES module.
 */
const WORKER_SOURCE = `
const { parentPort } = process.getBuiltinModule('node:worker_threads');
const { openSync, readSync, closeSync } = process.getBuiltinModule('node:fs');
const { createHash } = process.getBuiltinModule('node:crypto');
const buffer = Buffer.allocUnsafe(1 << 20);
const jobs = new Map();
function drop(id) {
  const job = jobs.get(id);
  if (job && job.fd !== undefined) closeSync(job.fd);
  jobs.delete(id);
}
parentPort.on('message', (m) => {
  const job = jobs.get(m.id);
  try {
    if (m.type === 'open') {
      jobs.set(m.id, { hash: createHash('sha256'), at: 0 });
      jobs.get(m.id).fd = openSync(m.path, 'r');
      return;
    }
    if (m.type === 'close') {
      drop(m.id);
      return parentPort.postMessage({ id: m.id });
    }
    if (!job) throw new Error('no such hash job');
    if (job.error) throw job.error;
    while (job.at < m.upTo) {
      const n = readSync(job.fd, buffer, 0, Math.min(buffer.length, m.upTo - job.at), job.at);
      if (n === 0) throw new Error('staged file ended at ' + job.at + ' bytes');
      job.hash.update(buffer.subarray(0, n));
      job.at += n;
    }
    if (m.type === 'finish') {
      drop(m.id);
      parentPort.postMessage({ id: m.id, hex: job.hash.digest('hex'), hashed: job.at });
    }
  } catch (error) {
    const failed = jobs.get(m.id);
    if (failed) failed.error = error;
    if (m.type === 'finish') {
      drop(m.id);
      parentPort.postMessage({ id: m.id, error: String((error && error.message) || error) });
    }
  }
});
`;

interface Reply {
  readonly id: number;
  readonly hex?: string;
  readonly hashed?: number;
  readonly error?: string;
}

let worker: Worker | undefined;
let users = 0;
let nextId = 1;
const waiting = new Map<number, (reply: Reply) => void>();

function acquire(): Worker {
  users++;
  if (!worker) {
    const w = new Worker(WORKER_SOURCE, { eval: true });
    // Only a pending answer keeps the process alive; a job nobody waits on never does.
    w.unref();
    w.on('message', (reply: Reply) => {
      const resolve = waiting.get(reply.id);
      waiting.delete(reply.id);
      if (waiting.size === 0) w.unref();
      resolve?.(reply);
    });
    w.on('error', (error) => {
      if (worker === w) worker = undefined;
      for (const resolve of waiting.values()) resolve({ id: 0, error: error.message });
      waiting.clear();
    });
    worker = w;
  }
  return worker;
}

function release(): void {
  if (--users > 0 || !worker) return;
  // The last user is gone: no idle thread is left behind.
  void worker.terminate();
  worker = undefined;
}

/** One file's hash job on the shared thread. */
export class ThreadHash {
  private readonly id = nextId++;
  private readonly worker = acquire();
  private sent = 0;
  private open = true;

  constructor(path: string) {
    this.worker.postMessage({ type: 'open', id: this.id, path });
  }

  /** Bytes [0, upTo) are in the file; the thread may hash them. */
  advance(upTo: number): void {
    if (!this.open || upTo <= this.sent) return;
    this.sent = upTo;
    this.worker.postMessage({ type: 'advance', id: this.id, upTo });
  }

  /** Hashes up to `total` bytes, then closes the job (and its file) and returns the digest. */
  async finish(total: number): Promise<{ hex: string; hashed: number }> {
    const reply = await this.ask({ type: 'finish', id: this.id, upTo: total });
    if (reply.error !== undefined || reply.hex === undefined) {
      throw new Error(`hashing the staged file failed: ${reply.error ?? 'no digest'}`);
    }
    return { hex: reply.hex, hashed: reply.hashed ?? 0 };
  }

  /** Gives up the job (its file is closed before this resolves); safe to call twice. */
  async dispose(): Promise<void> {
    if (!this.open) return;
    await this.ask({ type: 'close', id: this.id });
  }

  private async ask(message: { type: string; id: number; upTo?: number }): Promise<Reply> {
    if (!this.open) throw new Error('hash job already closed');
    this.open = false;
    try {
      // A thread that died took the job with it.
      if (this.worker !== worker) return { id: this.id, error: 'the hashing thread stopped' };
      return await new Promise<Reply>((resolve) => {
        waiting.set(this.id, resolve);
        this.worker.ref();
        this.worker.postMessage(message);
      });
    } finally {
      release();
    }
  }
}

/** Jobs open on the shared thread (0 when none is running); for tests of clean shutdown. */
export function hashThreadUsers(): number {
  return users;
}
