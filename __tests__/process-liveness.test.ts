import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { isAlive } from '../src/process-liveness.js';
import { startTs } from './helpers/child.js';

const CHILD = fileURLToPath(new URL('./fixtures/liveness-child.ts', import.meta.url));

/** A child that runs until killed; `gone()` kills it and waits until it is reaped. */
async function sleeper(): Promise<{ pid: number; gone(): Promise<void> }> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await once(child, 'spawn');
  const exited = once(child, 'exit');
  return {
    pid: child.pid!,
    async gone() {
      child.kill('SIGKILL');
      // 'exit' comes after Node has reaped it: from then on the pid names no process.
      await exited;
    },
  };
}

describe('isAlive', () => {
  test('a running process is alive; once it has ended and been reaped, it is not', async () => {
    expect(isAlive(process.pid)).toBe(true);
    const child = await sleeper();
    expect(isAlive(child.pid)).toBe(true);
    await child.gone();
    expect(isAlive(child.pid)).toBe(false);
  });

  test.each([0, -1, 1.5, Number.NaN, 2 ** 31])(
    '%p names no single process: not alive (signal 0 to 0 or -1 would reach a whole group)',
    (pid) => {
      expect(isAlive(pid)).toBe(false);
    },
  );

  // As root every signal is allowed: the check runs as nobody, for whom our process answers EPERM.
  (process.getuid?.() === 0 ? test : test.skip)(
    "another user's process is alive (EPERM); a pid with no process is not (ESRCH)",
    async () => {
      const ended = await sleeper();
      await ended.gone();
      const result = await startTs(CHILD, [String(process.pid), String(ended.pid)], {
        uid: 65534,
        gid: 65534,
      }).done;
      expect(result.stderr).toBe('');
      expect(JSON.parse(result.stdout)).toEqual([
        { pid: process.pid, alive: true, signal0: 'EPERM' },
        { pid: ended.pid, alive: false, signal0: 'ESRCH' },
      ]);
    },
  );
});
