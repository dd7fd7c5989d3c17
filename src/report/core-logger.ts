import * as core from '@actions/core';
import type { Logger } from './logger.js';

/** The action's logger: @actions/core commands (groups, annotations, masking applies). */
export function coreLogger(): Logger {
  return {
    debug: (m) => core.debug(m),
    info: (m) => core.info(m),
    warning: (m) => core.warning(m),
    error: (m) => core.error(m),
    group: (title, fn) => core.group(title, fn),
  };
}
