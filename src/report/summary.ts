import { describeError, isModelPullError } from '../errors.js';
import { formatBytes, formatDuration, formatRate } from './format.js';
import { cellCodeSpan, codeSpan } from './text.js';
import type { ModelOutput, PullReport } from './types.js';

/** A line that could not be pulled: its place in the `models` output says why. */
export interface FailedModelOutput {
  readonly ref: string;
  readonly source: ModelOutput['source'];
  readonly error: string;
}

/**
 * The `models` output: one object per line, in input order (README.md, "Outputs"), so index i is
 * always line i; a failed line has only `ref`, `source` and `error`.
 */
export function modelsJson(report: PullReport): (ModelOutput | FailedModelOutput)[] {
  return report.models.map(
    (m) => m.output ?? { ref: m.line, source: m.source, error: describeError(m.error ?? 'failed') },
  );
}

/**
 * The `paths` output: each line as written (trimmed, comment removed) → its model's `path`, so a
 * step can write `fromJSON(steps.m.outputs.paths)['hf:o/r']`; a line that failed has none.
 */
export function pathsJson(report: PullReport): Record<string, string> {
  const paths: Record<string, string> = {};
  for (const m of report.models) if (m.output) paths[m.line] = m.output.path;
  return paths;
}

/**
 * The `downloaded-from` output: each line that downloaded bytes in this run → the hosts that
 * served them and how many bytes each (a registry-mirror, the origin, the Hub's CDN), so a step
 * can check that a warm mirror served everything.
 */
export function downloadedFromJson(report: PullReport): Record<string, Readonly<Record<string, number>>> {
  const from: Record<string, Readonly<Record<string, number>>> = {};
  for (const m of report.models) if (m.from) from[m.line] = m.from;
  return from;
}

/** What `mirror-to` did with one line (src/mirror/run.ts ModelPush). */
export interface PushOutcome {
  readonly line: string;
  readonly names: readonly string[];
  readonly digest?: string;
  readonly blobs?: readonly { readonly outcome: string; readonly sentBytes: number }[];
  readonly error?: Error;
}

/** Summary lines for `mirror-to`: where each line went, and what its push sent. */
function pushLines(pushes: readonly PushOutcome[]): string[] {
  if (pushes.length === 0) return [];
  const items = pushes.map((p) => {
    if (p.error) return `- ${codeSpan(p.line)}: not pushed: ${codeSpan(describeError(p.error))}`;
    const blobs = p.blobs ?? [];
    const sent = blobs.reduce((n, b) => n + b.sentBytes, 0);
    const uploaded = blobs.filter((b) => b.outcome === 'uploaded').length;
    return `- ${codeSpan(p.line)} → ${p.names.map(codeSpan).join(', ')}: ${uploaded} of ${blobs.length} blobs uploaded (${formatBytes(sent)})`;
  });
  return ['', '**Pushed (mirror-to)**', '', ...items];
}

/** Summary lines: each host that served bytes, how many, and for which lines. */
function hostLines(report: PullReport): string[] {
  const hosts = new Map<string, { bytes: number; lines: string[] }>();
  for (const m of report.models) {
    for (const [host, bytes] of Object.entries(m.from ?? {})) {
      const entry = hosts.get(host) ?? { bytes: 0, lines: [] };
      entry.bytes += bytes;
      entry.lines.push(codeSpan(m.line));
      hosts.set(host, entry);
    }
  }
  if (hosts.size === 0) return [];
  const items = [...hosts].map(
    ([host, { bytes, lines }]) => `- ${codeSpan(host)}: ${formatBytes(bytes)} (${lines.join(', ')})`,
  );
  return ['', '**Downloaded from**', '', ...items];
}

/**
 * A Markdown job summary: a row per model with source, size, cache state, bytes, time,
 * throughput and its cache entry's key; then each failure with the fix it suggests. Lines and
 * errors quote what users and servers wrote, so they go in code spans: never markup.
 */
export function summaryMarkdown(report: PullReport, pushes: readonly PushOutcome[] = []): string {
  const rows = report.models.map((m) => {
    const o = m.output;
    const key = m.key ? cellCodeSpan(m.key) : '–';
    const rate =
      m.downloadedBytes > 0 && m.durationMs > 0 ? formatRate((m.downloadedBytes * 1000) / m.durationMs) : '–';
    if (!o)
      return `| ${cellCodeSpan(m.line)} | – | – | failed | ${formatBytes(m.downloadedBytes)} | – | – | ${key} |`;
    return `| ${cellCodeSpan(m.line)} | ${o.source} | ${formatBytes(o.size)} | ${o.cache} | ${formatBytes(m.downloadedBytes)} | ${formatDuration(m.durationMs)} | ${rate} | ${key} |`;
  });
  const failures = report.models.flatMap((m) => (m.error ? failureItem(m.error, m.line) : []));
  return [
    '### model-pull',
    '',
    '| model | source | size | cache | downloaded | time | throughput | cache key |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    `Downloaded ${formatBytes(report.downloadedBytes)}, restored ${formatBytes(report.cachedBytes)} from the Actions cache.`,
    ...hostLines(report),
    ...pushLines(pushes),
    ...(failures.length ? ['', '**Failed**', '', ...failures] : []),
    '',
  ].join('\n');
}

/** The summary of a run that stopped before any model was pulled (a frozen lock that lacks lines…). */
export function stoppedMarkdown(error: unknown): string {
  return ['### model-pull', '', '**Failed before any download**', '', ...failureItem(error), ''].join('\n');
}

/** A list item: what went wrong (for a line, when given), then the fix the error suggests. */
function failureItem(error: unknown, line?: string): string[] {
  const reason = isModelPullError(error) ? error.reason : describeError(error);
  const fix = isModelPullError(error) ? error.fix : undefined;
  return [
    line === undefined ? `- ${codeSpan(reason)}` : `- ${codeSpan(line)}: ${codeSpan(reason)}`,
    ...(fix ? [`  - **Fix:** ${codeSpan(fix)}`] : []),
  ];
}
