import { readBounded } from '../download/safe-fs.js';

/** How much of the end of a log an error quotes from (a log kept across runs grows without bound). */
export const LOG_TAIL_BYTES = 4000;

const LF = 0x0a;

/** The last lines of a log, or why it could not be read. */
export type LogTail =
  | { readonly kind: 'lines'; readonly lines: string[] }
  | { readonly kind: 'refused'; readonly reason: string };

/**
 * The last `count` non-blank lines within the last `window` bytes of the log at `path`, read
 * bounded and never through a link. A missing log has no lines.
 */
export async function readLogTail(path: string, count: number, window = LOG_TAIL_BYTES): Promise<LogTail> {
  // One byte more than the window: the byte before it says whether the window starts a line.
  const read = await readBounded(path, window + 1, { tail: true });
  if (read.kind === 'refused') return read;
  return { kind: 'lines', lines: read.kind === 'read' ? tailLines(read.bytes, window).slice(-count) : [] };
}

/**
 * The non-blank lines, trimmed, of the last `window` bytes of a log, given its last `window + 1`
 * bytes (fewer when the log is shorter). A window cut from a longer log starts inside a line
 * unless the byte before it ends one; that part-line is left out, except when it is all the
 * window holds (one line longer than the window): then its end is quoted after an ellipsis.
 */
export function tailLines(bytes: Buffer, window: number): string[] {
  if (bytes.length <= window) return nonBlank(bytes.toString('utf8'));
  const inside = bytes.subarray(bytes.length - window);
  if (bytes[bytes.length - window - 1] === LF) return nonBlank(inside.toString('utf8'));
  const lineEnd = inside.indexOf(LF);
  const whole = lineEnd < 0 ? [] : nonBlank(inside.subarray(lineEnd + 1).toString('utf8'));
  if (whole.length > 0) return whole;
  // The cut may fall inside a UTF-8 sequence: its continuation bytes (10xxxxxx) are skipped.
  let start = 0;
  while (start < inside.length && ((inside[start] ?? 0) & 0xc0) === 0x80) start++;
  const part = nonBlank(inside.subarray(start, lineEnd < 0 ? inside.length : lineEnd).toString('utf8'));
  return part.length > 0 ? [`…${part[0]}`] : [];
}

function nonBlank(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean);
}
