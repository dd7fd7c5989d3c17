import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Timed {
  readonly wallMs: number;
  readonly stdout: string;
  /**
   * Peak resident set: the process's own maxRSS as GNU time reports it, or else the VmHWM seen
   * while polling /proc (a lower bound for short-lived tools).
   */
  readonly polledHwmKiB: number | undefined;
  /** CPU time (user + sys) of the process and every child it waited for; needs GNU time. */
  readonly cpuMs: number | undefined;
}

const POLL_MS = 50;
/** GNU time (Debian's `time`): the rusage of the whole process tree, which Node cannot read. */
const GNU_TIME = '/usr/bin/time';

/**
 * Runs a command to completion and measures its wall time from spawn to exit, so every tool
 * pays for its own start-up. A non-zero exit is a harness error: the benchmark compares
 * successful, verified downloads only.
 */
export async function runTimed(
  command: string,
  args: readonly string[],
  timeoutMs: number,
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv,
): Promise<Timed> {
  const rusageDir = existsSync(GNU_TIME)
    ? await mkdtemp(join(tmpdir(), 'model-pull-bench-time-'))
    : undefined;
  try {
    return await runMeasured(command, args, timeoutMs, rusageDir && join(rusageDir, 'rusage'), env);
  } finally {
    if (rusageDir) await rm(rusageDir, { recursive: true, force: true });
  }
}

async function runMeasured(
  command: string,
  args: readonly string[],
  timeoutMs: number,
  rusageFile: string | undefined,
  env: NodeJS.ProcessEnv | undefined,
): Promise<Timed> {
  const started = performance.now();
  const [file, argv] = rusageFile
    ? [GNU_TIME, ['-f', '%U %S %M', '-o', rusageFile, command, ...args]]
    : [command, [...args]];
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let hwm: number | undefined;
  const poll = setInterval(() => {
    if (child.pid === undefined) return;
    void readHwm(child.pid).then((kib) => {
      if (kib !== undefined) hwm = Math.max(hwm ?? 0, kib);
    });
  }, POLL_MS);
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c) => resolve(c));
    });
    const wallMs = performance.now() - started;
    if (code !== 0) {
      const tail = stderr.trim().split('\n').slice(-5).join('\n');
      throw new Error(`${command} exited with ${code ?? 'a signal'} (timeout ${timeoutMs} ms)\n${tail}`);
    }
    if (rusageFile) {
      // "user sys maxrss": seconds, seconds, KiB (the last line; earlier ones are time's notes).
      const last = (await readFile(rusageFile, 'utf8')).trim().split('\n').pop() ?? '';
      const [user, sys, rss] = last.split(' ').map(Number);
      if (
        user !== undefined &&
        sys !== undefined &&
        rss !== undefined &&
        [user, sys, rss].every(Number.isFinite)
      ) {
        return { wallMs, stdout, polledHwmKiB: rss, cpuMs: (user + sys) * 1000 };
      }
    }
    return { wallMs, stdout, polledHwmKiB: hwm, cpuMs: undefined };
  } finally {
    clearInterval(poll);
    clearTimeout(killer);
  }
}

async function readHwm(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(status);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface ServerProcess {
  readonly url: string;
  /** With `hfRate`: the fake Hugging Face Hub's and its CDN's URLs (127.0.0.1, ports of their own). */
  readonly hf?: { readonly hub: string; readonly cdn: string };
  stop(): Promise<void>;
}

/** Starts bench/server.ts in its own process and waits for the port it listens on. */
export async function startServerProcess(
  script: string,
  blobPath: string,
  trace = false,
  archive?: { readonly path: string; readonly rate: number },
  ociFolder?: string,
  hfRate?: number,
): Promise<ServerProcess> {
  // The hooks resolve the server's `.js` imports of its sibling .ts modules.
  const hooks = new URL('../__tests__/helpers/ts-hooks.mjs', import.meta.url).pathname;
  const args = ['--experimental-transform-types', '--no-warnings', '--import', hooks, script, blobPath];
  if (trace) args.push('--trace');
  if (archive) args.push('--archive', archive.path, '--archive-rate', String(archive.rate));
  if (ociFolder) args.push('--oci', ociFolder);
  if (hfRate) args.push('--hf', String(hfRate));
  const child = spawn(process.execPath, args, {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const ready = await new Promise<{ port: number; hf?: { hub: string; cdn: string } }>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        child.stdout.off('data', onData);
        resolve(JSON.parse(line) as { port: number; hf?: { hub: string; cdn: string } });
      }
    };
    child.stdout.on('data', onData);
    child.once('error', reject);
    void exited.then(() => reject(new Error('the bench server exited before listening')));
  });
  return {
    url: `http://127.0.0.1:${ready.port}`,
    ...(ready.hf ? { hf: ready.hf } : {}),
    stop: async () => {
      // Closing its stdin is the server's signal to close; the kill is the fallback.
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
