import { Worker } from 'node:worker_threads';
import type { Digest } from '../digest.js';

const MiB = 1024 * 1024;
/** Written bytes the worker is told about at once (a message per chunk would cost more). */
const NOTIFY_BYTES = 8 * MiB;

/**
 * The worker's code, as text so that the ncc bundle needs no second file. It hashes files by
 * reading them back through descriptors the main thread holds open (threads share them), up to
 * the byte the main thread says is written: what it hashes is what is in the file.
 */
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { readSync } = require('node:fs');
const { createHash } = require('node:crypto');
const buffer = Buffer.allocUnsafe(${4 * MiB});
const jobs = new Map();
function forward(job, upTo) {
  while (job.at < upTo) {
    const n = readSync(job.fd, buffer, 0, Math.min(buffer.length, upTo - job.at), job.at);
    if (n === 0) throw new Error('the file ended at ' + job.at + ' bytes');
    job.hash.update(buffer.subarray(0, n));
    job.at += n;
  }
}
parentPort.on('message', (m) => {
  if (m.type === 'open') {
    const hash = createHash(m.hash);
    if (m.header) hash.update(m.header);
    jobs.set(m.id, { fd: m.fd, hash, at: 0, failure: undefined });
    return;
  }
  const job = jobs.get(m.id);
  if (!job) return;
  if (m.type === 'close') {
    jobs.delete(m.id);
    parentPort.postMessage({ id: m.id });
    return;
  }
  try {
    if (!job.failure) forward(job, m.upTo);
  } catch (error) {
    job.failure = String(error && error.message || error);
  }
  if (m.type === 'finish') {
    jobs.delete(m.id);
    parentPort.postMessage(job.failure ? { id: m.id, error: job.failure } : { id: m.id, hex: job.hash.digest('hex'), hashed: job.at });
  }
});
`;

interface Reply {
  readonly id: number;
  readonly hex?: string;
  readonly hashed?: number;
  readonly error?: string;
}

interface HashThread {
  readonly worker: Worker;
  readonly pending: Map<number, (reply: Reply) => void>;
  /** Why the thread stopped (it then answers nothing more). */
  stopped?: string;
}

let shared: HashThread | undefined;
let nextId = 1;

/** The process's one hashing thread, started on first use; it keeps the process alive only while it has work. */
function hashThread(): HashThread {
  if (shared) return shared;
  const worker = new Worker(SOURCE, { eval: true });
  const pending = new Map<number, (reply: Reply) => void>();
  const thread: HashThread = { worker, pending };
  worker.on('message', (reply: Reply) => {
    const settle = pending.get(reply.id);
    pending.delete(reply.id);
    if (pending.size === 0) worker.unref();
    settle?.(reply);
  });
  const fail = (error: unknown) => {
    if (shared === thread) shared = undefined;
    const message = error instanceof Error ? error.message : String(error);
    thread.stopped ??= `the hashing thread stopped: ${message}`;
    for (const settle of pending.values()) settle({ id: 0, error: thread.stopped });
    pending.clear();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
  worker.unref();
  shared = thread;
  return thread;
}

/**
 * A FileHasher for the file behind `fd`, or undefined when no thread can be started (the caller
 * then hashes on its own thread).
 */
export function startFileHasher(
  fd: number,
  algorithm: Digest['algorithm'],
  size: number,
): FileHasher | undefined {
  try {
    return new FileHasher(fd, algorithm, size);
  } catch {
    return undefined;
  }
}

/**
 * Hashes a file written strictly in order, on a thread of its own: the main thread only says
 * how far the file is written, and the hashing thread reads those bytes back (from the page
 * cache) and hashes them. A cache restore's main thread also drives the HTTP of every
 * connection, the decompressor and the writes, each step of which waits for it; hashing there
 * (sha256 is ~0.7 s per GiB) held all of them up. Reading back costs a copy per byte and the
 * thread's isolate ~15 MiB, which is why the download engine, whose main thread has less to do,
 * hashes from memory instead (prefix-hasher.ts) and only large local files are hashed this way.
 */
export class FileHasher {
  private readonly id = nextId++;
  private readonly thread = hashThread();
  private told = 0;
  private done = false;

  constructor(fd: number, algorithm: Digest['algorithm'], size: number) {
    this.thread.worker.postMessage({
      type: 'open',
      id: this.id,
      fd,
      hash: algorithm === 'sha256' ? 'sha256' : 'sha1',
      ...(algorithm === 'git-sha1' ? { header: `blob ${size}\0` } : {}),
    });
  }

  /** Bytes [0, `prefix`) are in the file. */
  written(prefix: number): void {
    if (prefix - this.told < NOTIFY_BYTES) return;
    this.told = prefix;
    this.thread.worker.postMessage({ type: 'update', id: this.id, upTo: prefix });
  }

  /** The digest of bytes [0, `total`), all of them written. */
  async finish(total: number): Promise<{ hex: string; hashed: number }> {
    const reply = await this.ask({ type: 'finish', id: this.id, upTo: total });
    this.done = true;
    if (reply.error !== undefined || reply.hex === undefined) {
      throw new Error(`hashing the file failed: ${reply.error ?? 'no digest'}`);
    }
    return { hex: reply.hex, hashed: reply.hashed ?? 0 };
  }

  /** Waits until the hashing thread no longer reads the file (its descriptor may then close). */
  async dispose(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.ask({ type: 'close', id: this.id });
  }

  private ask(message: { type: string; id: number; upTo?: number }): Promise<Reply> {
    const { worker, pending, stopped } = this.thread;
    if (stopped !== undefined) return Promise.resolve({ id: this.id, error: stopped });
    return new Promise<Reply>((resolve) => {
      pending.set(this.id, resolve);
      worker.ref();
      worker.postMessage(message);
    });
  }
}
