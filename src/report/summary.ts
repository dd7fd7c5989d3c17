import { describeError } from '../errors.js';
import { formatBytes, formatDuration, formatRate } from './format.js';
import { codeSpan } from './text.js';
import type { ModelOutput, PullReport } from './types.js';

/** A line that could not be pulled: its place in the `models` output says why. */
export interface FailedModelOutput {
  readonly ref: string;
  readonly source: ModelOutput['source'];
  readonly error: string;
}

/**
 * The `models` output: one object per line, in input order (interface.md), so index i is
 * always line i; a failed line has only `ref`, `source` and `error`.
 */
export function modelsJson(report: PullReport): (ModelOutput | FailedModelOutput)[] {
  return report.models.map(
    (m) => m.output ?? { ref: m.line, source: m.source, error: describeError(m.error ?? 'failed') },
  );
}

/**
 * A Markdown job summary: a row per model with source, size, cache, bytes, time, throughput.
 * Lines and errors quote what users and servers wrote, so they go in code spans: never markup.
 */
export function summaryMarkdown(report: PullReport): string {
  const rows = report.models.map((m) => {
    const o = m.output;
    const rate =
      m.downloadedBytes > 0 && m.durationMs > 0 ? formatRate((m.downloadedBytes * 1000) / m.durationMs) : '–';
    if (!o) return `| ${codeSpan(m.line)} | – | – | failed | ${formatBytes(m.downloadedBytes)} | – | – |`;
    return `| ${codeSpan(m.line)} | ${o.source} | ${formatBytes(o.size)} | ${o.cache} | ${formatBytes(m.downloadedBytes)} | ${formatDuration(m.durationMs)} | ${rate} |`;
  });
  const failures = report.models
    .filter((m) => m.error)
    .map((m) => `- ${codeSpan(m.line)}: ${codeSpan(describeError(m.error))}`);
  return [
    '### model-pull',
    '',
    '| model | source | size | cache | downloaded | time | throughput |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    `Downloaded ${formatBytes(report.downloadedBytes)}, restored ${formatBytes(report.cachedBytes)} from the Actions cache.`,
    ...(failures.length ? ['', '**Failed**', '', ...failures] : []),
    '',
  ].join('\n');
}
