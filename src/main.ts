import * as core from '@actions/core';
import { runAction, StopRequest } from './action/run.js';
import { describeError } from './errors.js';
import { keepYoungGenerationSmall } from './memory.js';

// The action's entry point: the only place that sets the step's outcome. A cancelled job gets
// SIGINT, then SIGTERM: either stops the downloads cleanly (progress kept, staging leases
// released) or a cache restore (the files it committed kept), the run says which as it stops,
// and the step still reports what happened to each model.
keepYoungGenerationSmall();
const controller = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => controller.abort(new StopRequest(signal)));
}
try {
  const outcome = await runAction(process.env, undefined, controller.signal);
  if (outcome?.told) {
    // Each failed model has its annotation already: one summary line, and the step fails.
    core.info(outcome.failure);
    process.exitCode = core.ExitCode.Failure;
  } else if (outcome) {
    core.setFailed(outcome.failure);
  }
} catch (error) {
  core.setFailed(describeError(error));
}
