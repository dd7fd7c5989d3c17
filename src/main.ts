import * as core from '@actions/core';
import { runAction } from './action/run.js';
import { describeError } from './errors.js';

// The action's entry point: the only place that sets the step's outcome.
try {
  const failure = await runAction(process.env);
  if (failure) core.setFailed(failure);
} catch (error) {
  core.setFailed(describeError(error));
}
