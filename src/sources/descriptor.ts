import { ModelPullError } from '../errors.js';
import type { SourceMirror } from '../mirror/types.js';
import type { Source, SourceKind } from '../plan.js';
import type { LineParts } from '../refs/line.js';
import type { PhaseWords } from '../report/phases.js';
import type { Settings } from '../settings/settings.js';
import type { StoreFolder } from '../stores.js';

/**
 * An action input and CLI flag that one source adds (say `oci-dir`). The settings module reads
 * it with the shared inputs, the CLI accepts `--NAME` on `pull` and `lock`, and the source finds
 * the value in `settings.sourceOptions[NAME]`. action.yml must declare it as well (a test checks).
 */
export interface SourceOption {
  /** The input's name and the CLI flag without its dashes. */
  readonly name: string;
  /** One line for `--help`, after the flag. */
  readonly help: string;
  /**
   * `path`: `~/` expanded and resolved against the working folder; `secret`: masked in every log
   * line and output; `string`: taken as given (trimmed).
   */
  readonly type: 'string' | 'path' | 'secret';
  /** Environment variables read, in order, when the input is not given. */
  readonly env?: readonly string[];
  /** The value when neither the input nor the environment gives one. */
  readonly default?: string;
}

/**
 * Everything the pipeline needs to know about one kind of model line. Each source folder
 * exports one; sources/index.ts lists them, and nothing else in src/ names a source. The
 * pipeline, the CLI and the action take the list as a parameter, so a program (or a test) can
 * pull with sources of its own.
 */
export interface SourceDescriptor<Ref = unknown> {
  /** `[a-z][a-z0-9-]*`: the `source` of lock entries, cache keys and the `models` output. */
  readonly kind: SourceKind;
  /**
   * What a line of this source starts with (`ollama:`, `https://`), compared case-insensitively.
   * A line belongs to the source whose prefix it starts with; no prefix may start another's.
   */
  readonly prefixes: readonly string[];
  /** How users write it, for the error on a line no source claims: `ollama:NAME`. */
  readonly syntax: string;
  /** Its full form for `--help`: `ollama:NAME[:TAG][@sha256:HEX]`. */
  readonly usage: string;
  /** Parses a line this source claimed; every problem is a `badLine` error quoting the line. */
  parse(parts: LineParts): Ref;
  /**
   * The line's canonical form, which lock files are keyed by: every default written out, so
   * two ways of writing one model (`hf:a/b`, `hf:a/b@main`) are one line. It must parse back
   * to the same reference. Without it, the line with its options sorted is the key.
   */
  canonical?(ref: Ref): string;
  /** Checks this source's lines of one run together (two lines that would write one file). */
  checkLines?(refs: readonly { readonly line: string; readonly ref: Ref }[]): void;
  /** The folders its lines write into: checked before any request, named with their option. */
  stores?(settings: Settings): readonly StoreFolder[];
  /** How progress names this source's steps (`resolving manifest`, `linking snapshot`). */
  readonly phases?: PhaseWords;
  /** Inputs and flags of this source beyond the shared settings. */
  readonly options?: readonly SourceOption[];
  /** The source for one run; it reads what it needs from the settings and nothing else. */
  create(settings: Settings): Source<Ref>;
  /** How its models are pushed to an OCI registry (`mirror`); absent: its lines cannot be. */
  readonly mirror?: SourceMirror<Ref>;
}

export type SourceList = readonly SourceDescriptor[];

/** The source that claims a reference (the first word of a line), if any. */
export function claimingSource(sources: SourceList, reference: string): SourceDescriptor | undefined {
  const lower = reference.toLowerCase();
  return sources.find((s) => s.prefixes.some((p) => lower.startsWith(p.toLowerCase())));
}

/**
 * Refuses a list that would make lines, lock entries or cache keys ambiguous: kinds must be
 * unique key-safe words, a line must belong to one source only, option names unique.
 */
export function checkSourceList(sources: SourceList, sharedInputs: readonly string[] = []): void {
  const problem = (why: string) => new ModelPullError('ERR_BAD_INPUT', `invalid list of sources: ${why}`);
  const kinds = new Set<string>();
  const prefixes: string[] = [];
  const options = new Set(sharedInputs);
  for (const source of sources) {
    // Kinds are part of cache keys: short enough that any valid cache-key-prefix still fits.
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(source.kind))
      throw problem(`kind "${source.kind}" is not [a-z][a-z0-9-]*, at most 32 characters`);
    if (kinds.has(source.kind)) throw problem(`kind "${source.kind}" is listed twice`);
    kinds.add(source.kind);
    if (source.prefixes.length === 0) throw problem(`${source.kind} claims no line prefix`);
    for (const prefix of source.prefixes.map((p) => p.toLowerCase())) {
      const clash = prefixes.find((p) => p.startsWith(prefix) || prefix.startsWith(p));
      if (prefix === '' || clash !== undefined)
        throw problem(`${source.kind}'s prefix "${prefix}" overlaps "${clash ?? ''}"`);
      prefixes.push(prefix);
    }
    for (const option of source.options ?? []) {
      if (!/^[a-z][a-z0-9-]*$/.test(option.name) || options.has(option.name))
        throw problem(`${source.kind}'s option "${option.name}" is not a new [a-z][a-z0-9-]* name`);
      options.add(option.name);
    }
  }
}

/** The words a kind of source has for its steps (none: the generic ones). */
export function phaseWords(sources: SourceList, kind: SourceKind): PhaseWords {
  return sources.find((s) => s.kind === kind)?.phases ?? {};
}

/** The options every listed source adds, in list order. */
export function sourceOptions(sources: SourceList): SourceOption[] {
  return sources.flatMap((s) => s.options ?? []);
}

/** A run's source instances, by kind. */
export type Sources = ReadonlyMap<SourceKind, Source<unknown>>;

/** One source instance per kind for a run. */
export function createSources(sources: SourceList, settings: Settings): Sources {
  return new Map(sources.map((s) => [s.kind, s.create(settings)]));
}

/** The instance for a parsed line (parseLines only yields kinds of the run's list). */
export function sourceOf(
  sources: Sources,
  ref: { readonly kind: SourceKind; readonly line: string },
): Source<unknown> {
  const source = sources.get(ref.kind);
  if (!source) throw new Error(`no source of kind ${ref.kind} for "${ref.line}"`);
  return source;
}
