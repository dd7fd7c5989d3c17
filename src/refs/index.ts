import { type HfRef, parseHfRef } from '../sources/hf/ref.js';
import { type OllamaRef, parseOllamaRef } from '../sources/ollama/ref.js';
import { parseUrlRef, type UrlRef } from '../sources/url/ref.js';
import { badLine, splitLine } from './line.js';

export type ModelRef =
  | { readonly kind: 'ollama'; readonly line: string; readonly ref: OllamaRef }
  | { readonly kind: 'hf'; readonly line: string; readonly ref: HfRef }
  | { readonly kind: 'url'; readonly line: string; readonly ref: UrlRef };

/** Parses one model line; a malformed line fails here, before any request. */
export function parseLine(text: string): ModelRef {
  const parts = splitLine(text);
  const { line, reference } = parts;
  if (reference.startsWith('ollama:')) return { kind: 'ollama', line, ref: parseOllamaRef(parts) };
  if (reference.startsWith('hf:')) return { kind: 'hf', line, ref: parseHfRef(parts) };
  if (/^https?:\/\//i.test(reference)) return { kind: 'url', line, ref: parseUrlRef(parts) };
  throw badLine(line, 'expected ollama:NAME, hf:OWNER/REPO or an https:// URL with sha256=');
}

/** Parses every line first, so one bad line stops the run before anything is fetched. */
export function parseLines(lines: readonly string[]): ModelRef[] {
  const refs = lines.map(parseLine);
  // URL lines land as <files-dir>/<file name>: two different files may not share one.
  const byName = new Map<string, UrlRef>();
  for (const r of refs) {
    if (r.kind !== 'url') continue;
    const first = byName.get(r.ref.fileName);
    if (first && first.sha256 !== r.ref.sha256) {
      throw badLine(
        r.line,
        `its file name "${r.ref.fileName}" is already used by "${first.line}" for other bytes`,
      );
    }
    byName.set(r.ref.fileName, r.ref);
  }
  return refs;
}
