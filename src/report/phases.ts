import type { BlobResult, BlobSpec, ProgressListener, ProgressSnapshot } from '../download/types.js';
import type { PlanEntry, Source } from '../plan.js';
import type { ModelRef } from '../refs/index.js';
import type { Sources } from '../sources/descriptor.js';
import { formatBytes } from './format.js';
import type { ModelReport } from './types.js';

/**
 * Where one model is in the pipeline, as `ollama pull` says it: resolving, listing files,
 * restoring from the Actions cache, verifying what is on disk, downloading, writing its layout,
 * done (or failed, as soon as it fails: a model that fails early is reported then, not after
 * another model's download).
 */
export type ModelPhase =
  | 'resolving'
  | 'listing'
  | 'restoring'
  | 'verifying'
  | 'downloading'
  | 'writing'
  | 'done'
  | 'failed';

export interface ModelEvent {
  readonly line: string;
  readonly phase: ModelPhase;
  /** The phase in words for this model's source: `resolving manifest`, `listing files (3)`. */
  readonly text: string;
  /** `failed`: why (the first failure of the model; it fails only once). */
  readonly error?: Error;
  /** `done` and `failed` at the end of the run: what happened to the model. */
  readonly report?: ModelReport;
}

export type ModelListener = (event: ModelEvent) => void;

/** How a source names its own steps (the others are the same for every source). */
export interface PhaseWords {
  /** Finding what the line names now: `resolving manifest`; '' when there is nothing to look up. */
  readonly resolving?: string;
  /** '' when a line always names one file (no listing worth telling). */
  readonly listing?: string;
  /** Writing what readers follow, last: `writing manifest`, `linking snapshot`; '' when nothing is. */
  readonly writing?: string;
}

const ORDER: readonly ModelPhase[] = [
  'resolving',
  'listing',
  'restoring',
  'verifying',
  'downloading',
  'writing',
];

/**
 * Tells a listener each model's phase as the pipeline moves: the pipeline calls it at its
 * steps, and it reads the engine's progress to tell verifying from downloading per model.
 * Each phase is told once per model, in order; nothing follows `done` or `failed`.
 */
export class ModelPhases {
  private readonly phase = new Map<string, ModelPhase>();

  constructor(
    private readonly listener: ModelListener | undefined,
    private readonly wordsOf: (ref: ModelRef) => PhaseWords,
  ) {}

  /** Moves `ref` to `phase` unless it is there or further already. */
  enter(ref: ModelRef, phase: Exclude<ModelPhase, 'done' | 'failed'>, text?: string): void {
    const now = this.phase.get(ref.line);
    if (now === 'done' || now === 'failed') return;
    if (now !== undefined && ORDER.indexOf(now) >= ORDER.indexOf(phase)) return;
    this.phase.set(ref.line, phase);
    const words = this.wordsOf(ref);
    const said =
      text ??
      (phase === 'resolving'
        ? (words.resolving ?? 'resolving')
        : phase === 'writing'
          ? (words.writing ?? 'writing files')
          : phase);
    if (said !== '') this.listener?.({ line: ref.line, phase, text: said });
  }

  /** The model failed: told once, the first time. */
  failed(line: string, error: Error, report?: ModelReport): void {
    if (this.phase.get(line) === 'failed' || this.phase.get(line) === 'done') return;
    this.phase.set(line, 'failed');
    this.listener?.({ line, phase: 'failed', text: 'failed', error, ...(report ? { report } : {}) });
  }

  /** The end of a model: done, or failed if it was not told yet. */
  finished(report: ModelReport): void {
    if (!report.output) {
      this.failed(report.line, report.error ?? new Error('failed'), report);
      return;
    }
    if (this.phase.get(report.line) === 'done') return;
    this.phase.set(report.line, 'done');
    this.listener?.({ line: report.line, phase: 'done', text: 'done', report });
  }

  /**
   * The run's sources, each telling `resolving` as it looks a line up (and `failed` at once when
   * that fails), `listing files (N)` once it has planned it, and `writing` as its layout is
   * committed.
   */
  watching(sources: Sources, refs: readonly ModelRef[]): Sources {
    const refOf = (parsed: unknown) => refs.find((r) => r.ref === parsed);
    const watch = (source: Source<unknown>): Source<unknown> => ({
      identify: async (parsed, ctx) => {
        const ref = refOf(parsed);
        if (ref) this.enter(ref, 'resolving');
        try {
          return await source.identify(parsed, ctx);
        } catch (error) {
          if (ref) this.failed(ref.line, asError(error));
          throw error;
        }
      },
      plan: async (parsed, identity, ctx) => {
        const entry = await source.plan(parsed, identity, ctx);
        const ref = refOf(parsed);
        if (!ref) return entry;
        this.enter(ref, 'listing', this.wordsOf(ref).listing ?? `listing files (${entry.files.length})`);
        return { ...entry, commit: () => this.committing(ref, entry) };
      },
    });
    return new Map([...sources].map(([kind, source]) => [kind, watch(source)]));
  }

  private committing(ref: ModelRef, entry: PlanEntry): ReturnType<PlanEntry['commit']> {
    this.enter(ref, 'writing');
    return entry.commit();
  }

  /**
   * What the engine tells, turned into each model's phases: `verifying` while its files on disk
   * are checked (seen in a progress snapshot, or told once one of them proves good),
   * `downloading N files` as the first of its missing files starts, `failed` as soon as one of
   * its files fails. The progress snapshots are handed on to `next`.
   */
  engineEvents(
    models: readonly { readonly ref: ModelRef; readonly plan: PlanEntry | undefined }[],
    next: ProgressListener | undefined,
  ): EngineEvents {
    const listing = (target: string) => models.filter((m) => m.plan?.blobs.some((b) => b.target === target));
    const settled = new Set<string>();
    return {
      onProgress: this.listener
        ? (snapshot: ProgressSnapshot) => {
            const checking = new Set(
              snapshot.blobs.filter((b) => b.state === 'checking').map((b) => b.target),
            );
            for (const { ref, plan } of models)
              if (plan?.blobs.some((b) => checking.has(b.target))) this.enter(ref, 'verifying');
            next?.(snapshot);
          }
        : next,
      onFetchStart: (blob) => {
        for (const { ref, plan } of listing(blob.target)) {
          const left = plan!.blobs.filter((b) => !settled.has(b.target));
          this.enter(ref, 'downloading', downloading(left));
        }
      },
      onSettled: (blob, outcome) => {
        settled.add(blob.target);
        for (const { ref } of listing(blob.target)) {
          if (outcome.status === 'rejected') this.failed(ref.line, asError(outcome.reason));
          else if (outcome.value.reused) this.enter(ref, 'verifying');
        }
      },
    };
  }
}

/** The engine's callbacks that tell model phases. */
export interface EngineEvents {
  readonly onProgress: ProgressListener | undefined;
  readonly onFetchStart: (blob: BlobSpec) => void;
  readonly onSettled: (blob: BlobSpec, outcome: PromiseSettledResult<BlobResult>) => void;
}

/** `downloading 2 files, 1.2 GiB` (the size when every file's is known). */
function downloading(blobs: readonly BlobSpec[]): string {
  const files = `${blobs.length} file${blobs.length === 1 ? '' : 's'}`;
  const known = blobs.every((b) => b.size !== undefined);
  const size = known ? `, ${formatBytes(blobs.reduce((sum, b) => sum + b.size!, 0))}` : '';
  return `downloading ${files}${size}`;
}
function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
