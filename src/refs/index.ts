import type { SourceKind } from '../plan.js';
import { claimingSource, type SourceList } from '../sources/descriptor.js';
import { badLine, plainKey, splitLine } from './line.js';

/** A model line parsed by the source that claims it; `ref` is that source's own type. */
export interface ModelRef {
  readonly kind: SourceKind;
  /** As written: trimmed, trailing comment removed. */
  readonly line: string;
  /**
   * The canonical form of the line (defaults written out, `hf:a/b` → `hf:a/b@main`): two lines
   * that name the same model have the same key. The lock file is keyed by it.
   */
  readonly key: string;
  readonly ref: unknown;
}

/** Parses one model line; a malformed line fails here, before any request. */
export function parseLine(text: string, sources: SourceList): ModelRef {
  const parts = splitLine(text);
  const source = claimingSource(sources, parts.reference);
  if (!source) throw badLine(parts.line, `expected ${alternatives(sources.map((s) => s.syntax))}`);
  const ref = source.parse(parts);
  const key = source.canonical ? source.canonical(ref) : plainKey(parts);
  return { kind: source.kind, line: parts.line, key, ref };
}

/** Parses every line first, so one bad line stops the run before anything is fetched. */
export function parseLines(lines: readonly string[], sources: SourceList): ModelRef[] {
  const refs = lines.map((line) => parseLine(line, sources));
  for (const source of sources) source.checkLines?.(refs.filter((r) => r.kind === source.kind));
  return refs;
}

/** `a`, `a or b`, `a, b or c`. */
function alternatives(words: readonly string[]): string {
  return words.length <= 1
    ? (words[0] ?? 'a model line')
    : `${words.slice(0, -1).join(', ')} or ${words.at(-1)}`;
}
