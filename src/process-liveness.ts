/** The largest pid_t: past it a number names no process (Node refuses it outright). */
const MAX_PID = 2 ** 31 - 1;

/**
 * Whether a process with this pid runs on this machine (in this pid namespace). Signal 0 is a
 * check that sends nothing: EPERM means the process runs under another user (alive, not ours
 * to signal), ESRCH that there is none. 0 and negative numbers address process groups, which
 * would answer for a whole group, so a pid that is not a positive integer (read from a lease
 * file another process wrote) is no live process.
 */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid > MAX_PID) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
