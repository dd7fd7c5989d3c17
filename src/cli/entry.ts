import { runCli } from './main.js';

// The CLI proper, loaded by src/cli.ts once Node is new enough: the only place that touches
// argv, signals and the exit code.
// SIGTERM (what CI systems and `timeout` send on cancel) stops like Ctrl-C: downloads end,
// their progress and staging leases are left in order for the next run.
const controller = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    // runCli says "stopping: …" where it stays visible (above the progress bars, if any).
    controller.abort(new Error('interrupted'));
    process.once(signal, () => {
      // The progress bars hide the cursor; a forced quit skips their cleanup, so show it here.
      if (process.stderr.isTTY) process.stderr.write('\u001b[?25h\n');
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  });
}
// `model-pull verify | head -1`: the reader has gone, so there is nobody left to tell anything;
// end quietly instead of crashing on the unhandled EPIPE (and hashing on for nobody).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });
}
process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  signal: controller.signal,
});
