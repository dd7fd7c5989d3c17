import { describeError } from '../errors.js';
import { formatBytes, formatDuration } from './format.js';
import type { Logger } from './logger.js';
import type { ModelListener } from './phases.js';
import type { ModelReport } from './types.js';

/**
 * Each model's phases as log lines, for a CI log or a terminal: `ollama:x: resolving manifest`,
 * `…: listing files (3)`, `…: downloading 2 files, 1.2 GiB`, `…: writing manifest`, then one
 * line when it is done, or one error line as soon as it fails.
 */
export function modelLog(log: Logger, options: { paths?: boolean } = {}): ModelListener {
  return (event) => {
    if (event.phase === 'failed') log.error(failureLine(event.line, event.error ?? 'failed'));
    else if (event.phase === 'done' && event.report) log.info(doneLine(event.report, options.paths ?? true));
    else log.info(`${event.line}: ${event.text}`);
  };
}

/**
 * `<line>: <why>`, naming the line once: an engine message that starts with the line (or its
 * reference, as blob labels do: `hf:org/x model.safetensors: …`) is not prefixed again.
 */
export function failureLine(line: string, error: unknown): string {
  return `${line}: ${reasonFor(line, error)}`;
}

/** `hf:o/r: not pushed: why`: a line's push that failed or was skipped (mirror, mirror-to). */
export function pushFailureLine(line: string, error: unknown): string {
  return `${line}: not pushed: ${reasonFor(line, error)}`;
}

/** The error's message without the line (or its reference) it may start with. */
function reasonFor(line: string, error: unknown): string {
  const why = describeError(error);
  const reference = line.split(/\s+/)[0]!;
  for (const prefix of [`${line}: `, `${reference}: `, `${reference} `]) {
    if (why.startsWith(prefix)) return why.slice(prefix.length);
  }
  return why;
}

/** `ollama:x: done, 1.2 GiB at /path (downloaded 1.2 GiB in 4.1 s)`; `paths`: false leaves out where. */
export function doneLine(report: ModelReport, paths = true): string {
  const o = report.output!;
  const how: string[] = [];
  if (report.downloadedBytes > 0)
    how.push(`downloaded ${formatBytes(report.downloadedBytes)} in ${formatDuration(report.durationMs)}`);
  if (report.cachedBytes > 0) how.push(`restored ${formatBytes(report.cachedBytes)} from the Actions cache`);
  if (how.length === 0) how.push('already on disk, verified');
  const where = paths ? ` at ${o.path}` : '';
  return `${report.line}: done, ${formatBytes(o.size)}${where} (${how.join(', ')})`;
}
