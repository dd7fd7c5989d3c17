#!/usr/bin/env node
import { runCli } from './cli/main.js';

// The CLI's entry point: the only place that touches argv, signals and the exit code.
// SIGTERM (what CI systems and `timeout` send on cancel) stops like Ctrl-C: downloads end,
// their progress and staging leases are left in order for the next run.
const controller = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write('\nstopping: progress is kept for the next run (Ctrl-C again to quit at once)\n');
    controller.abort(new Error('interrupted'));
    process.once(signal, () => {
      // The progress bars hide the cursor; a forced quit skips their cleanup, so show it here.
      if (process.stderr.isTTY) process.stderr.write('\u001b[?25h\n');
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  });
}
process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  signal: controller.signal,
});
