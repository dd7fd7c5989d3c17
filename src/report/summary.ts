import { describeError } from '../errors.js';
import type { ModelOutput, PullReport } from '../pull.js';
import { formatBytes, formatDuration, formatRate } from './format.js';

/** The `models` output: one object per line, in input order (failed lines are left out). */
export function modelsJson(report: PullReport): ModelOutput[] {
  return report.models.flatMap((m) => (m.output ? [m.output] : []));
}

/** A Markdown job summary: a row per model with source, size, cache, bytes, time, throughput. */
export function summaryMarkdown(report: PullReport): string {
  const rows = report.models.map((m) => {
    const o = m.output;
    const rate =
      m.downloadedBytes > 0 && m.durationMs > 0 ? formatRate((m.downloadedBytes * 1000) / m.durationMs) : '–';
    if (!o) return `| \`${cell(m.line)}\` | – | – | failed | ${formatBytes(m.downloadedBytes)} | – | – |`;
    return `| \`${cell(m.line)}\` | ${o.source} | ${formatBytes(o.size)} | ${o.cache} | ${formatBytes(m.downloadedBytes)} | ${formatDuration(m.durationMs)} | ${rate} |`;
  });
  const failures = report.models
    .filter((m) => m.error)
    .map((m) => `- \`${cell(m.line)}\`: ${cell(describeError(m.error))}`);
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

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/`/g, "'");
}
