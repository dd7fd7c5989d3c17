import * as core from '@actions/core';
import type { Logger } from './logger.js';
import { printable } from './text.js';

/**
 * The action's logger: @actions/core commands (groups, annotations, masking applies). Every line
 * is made printable: a line break in a name would otherwise start a workflow command.
 */
export function coreLogger(): Logger {
  return {
    debug: (m) => core.debug(printable(m)),
    info: (m) => core.info(printable(m)),
    warning: (m) => core.warning(printable(m)),
    error: (m) => core.error(printable(m), { title: 'model-pull' }),
    group: (title, fn) => core.group(printable(title), fn),
  };
}
