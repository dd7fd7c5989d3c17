import { describeError, redactUrl } from '../errors.js';
import type { Captured, CoreLine } from './capture.js';

/**
 * Why a save did not do its job, read from what @actions/cache 6.3 logged (it reports
 * failures only that way, see capture.ts). The message texts matched here are the library's; the
 * tests drive the real library against a local cache service, so a change in them shows up there.
 *
 * - `service`: the cache service cannot be used (no token, 5xx after the client's own retries,
 *   429, refused connection, quota): stop calling it for the rest of the run.
 * - `disabled`: the runner's cache policy forbids this direction (read-only token, cache-mode).
 * - `conflict`: saving only; the entry is being (or was) created by another job.
 * - `entry`: this one entry failed (archive download, tar, upload); others may still work.
 */
export type Problem =
  | { readonly kind: 'service' | 'disabled' | 'conflict' | 'entry'; readonly reason: string }
  | undefined;

/** Any failed Twirp call, or a missing token, means the service itself is unusable in this run. */
const SERVICE_FAILURE =
  /Failed to (?:GetCacheEntryDownloadURL|CreateCacheEntry|FinalizeCacheEntryUpload):|ACTIONS_RUNTIME_TOKEN|Cache storage quota/;
const POLICY = /cache (?:read|write) denied:|effective cache-mode/;

export function saveProblem(result: Captured<number>): Problem {
  if (!result.ok) return { kind: 'entry', reason: clean(describeError(result.error)) };
  if (Number.isFinite(result.value) && result.value !== -1) return undefined;
  const skipped = find(result.lines, undefined, 'Cache save skipped:');
  if (skipped) return { kind: 'disabled', reason: clean(skipped) };
  const reserve = reserveFailure(result.lines);
  if (reserve !== undefined) return reserve;
  const failure =
    find(result.lines, 'any', 'Failed to save: ') ?? result.lines.find((l) => isAnnotation(l))?.message;
  return {
    kind: failure === undefined ? 'entry' : failureKind(failure),
    reason: clean(failure ?? 'the cache service did not confirm the entry'),
  };
}

function failureKind(message: string): 'service' | 'disabled' | 'entry' {
  if (POLICY.test(message)) return 'disabled';
  return SERVICE_FAILURE.test(message) ? 'service' : 'entry';
}

/**
 * The library turns every CreateCacheEntry failure into "Unable to reserve cache with key …,
 * another job may be creating this cache" (an info line); only the debug line it writes just
 * before says why. A 409 or `ok: false` is a real conflict, anything else a failing service.
 */
function reserveFailure(lines: readonly CoreLine[]): Problem {
  const at = lines.findIndex(
    (l) => l.command === undefined && l.message.startsWith('Failed to save: Unable to reserve'),
  );
  if (at < 0) return undefined;
  const cause = lines
    .slice(0, at)
    .reverse()
    .find((l) => l.command === 'debug' && l.message.startsWith('Failed to reserve cache: '))?.message;
  const reason = clean(
    cause?.slice('Failed to reserve cache: '.length).replace(/^Error: /, '') ?? lines[at]!.message,
  );
  if (cause !== undefined && !/\(409\)/.test(cause) && SERVICE_FAILURE.test(cause))
    return { kind: 'service', reason };
  return { kind: 'conflict', reason };
}

function isAnnotation(line: CoreLine): boolean {
  return line.command === 'warning' || line.command === 'error';
}

/** The message of the first line starting with `prefix`, written as an annotation ('any') or as info (undefined). */
function find(lines: readonly CoreLine[], kind: 'any' | undefined, prefix: string): string | undefined {
  const line = lines.find(
    (l) => (kind === 'any' ? isAnnotation(l) : l.command === undefined) && l.message.startsWith(prefix),
  );
  return line?.message;
}

/** One line, no signed URL, no leading "Failed to restore:" noise. */
function clean(message: string): string {
  return message
    .replace(/^Failed to (?:restore|save): /, '')
    .replace(/https?:\/\/[^\s"'<>]+/g, (url) => redactUrl(url))
    .replace(/\s*\n\s*/g, ' ')
    .trim();
}
