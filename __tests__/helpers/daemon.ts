import { type ChildProcess, spawn } from 'node:child_process';

export interface Daemon {
  readonly child: ChildProcess;
  /** What it wrote to stderr so far (for the error when it does not start). */
  stderr(): string;
  /** SIGTERM (if still running), waits for the exit, then removes its folder. */
  close(): Promise<void>;
}

/** A server binary a test runs (docker-registry, nginx), its folder removed once it has exited. */
export function spawnDaemon(
  binary: string,
  args: readonly string[],
  dir: { remove(): Promise<void> },
): Daemon {
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    stderr: () => stderr,
    close: async () => {
      // SIGTERM: both stop at once (nginx's master stops its workers first).
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      await dir.remove();
    },
  };
}
