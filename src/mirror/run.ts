import { systemClock } from '../clock.js';
import { describeError, ModelPullError } from '../errors.js';
import { HttpClient } from '../http/client.js';
import { describeRetry, type RetryEvent } from '../http/retry.js';
import { type PullDeps, pull } from '../pull.js';
import { type ModelRef, parseLines } from '../refs/index.js';
import { badLine } from '../refs/line.js';
import { type RegistryCall, RegistryClient, registryOptions } from '../registry/client.js';
import { nameUnder, type RepositoryPrefix } from '../registry/prefix.js';
import { DEFAULT_PUSH_TUNING, type PushedArtifact, pushArtifact } from '../registry/push.js';
import { uploadRecords } from '../registry/uploads.js';
import { formatBytes } from '../report/format.js';
import type { ModelReport, PullReport } from '../report/types.js';
import type { Settings } from '../settings/settings.js';
import { checkSourceList, type SourceDescriptor, type SourceList } from '../sources/descriptor.js';
import type { MirrorTarget } from './types.js';

/** What happened to one line's push. */
export interface ModelPush {
  readonly line: string;
  /** `host/repository:tag` for each reference pushed. */
  readonly names: readonly string[];
  /** The manifest digest (`sha256:…`) as the registry reports it. */
  readonly digest?: string;
  readonly blobs?: PushedArtifact['blobs'];
  readonly error?: Error;
}

export interface MirrorReport extends PullReport {
  readonly pushes: readonly ModelPush[];
}

/**
 * `model-pull mirror --to PREFIX` and `mirror-to`: pull every line as always (verified, cached),
 * then push each model under the prefix (docs/scale-out.md). Where each line goes is settled
 * before anything is pulled, so a line no source can push, or two origins meeting in one
 * repository, stop the run before any download.
 */
export async function mirror(settings: Settings, deps: PullDeps): Promise<MirrorReport> {
  const prefix = settings.mirrorTo;
  if (!prefix) throw new ModelPullError('ERR_BAD_INPUT', 'mirror needs a registry prefix to push to');
  checkSourceList(deps.sources);
  const refs = parseLines(settings.lines, deps.sources);
  const targets = mirrorTargets(refs, deps.sources, prefix);
  const report = await pull(settings, deps);
  const pushes = await pushModels(report.models, refs, targets, settings, deps);
  return { ...report, pushes, ok: report.ok && pushes.every((p) => !p.error) };
}

/** Each line's repository under the prefix; refuses lines that cannot go and collisions. */
export function mirrorTargets(
  refs: readonly ModelRef[],
  sources: SourceList,
  prefix: RepositoryPrefix,
): MirrorTarget[] {
  const byRepository = new Map<string, { origin: string; line: string }>();
  return refs.map((ref) => {
    const mirror = descriptorOf(sources, ref).mirror;
    if (!mirror) throw badLine(ref.line, `${ref.kind} models cannot be mirrored to a registry`);
    const target = mirror.target(ref.ref, ref.line, prefix);
    const first = byRepository.get(target.repository);
    if (first && first.origin !== target.origin) {
      throw badLine(
        ref.line,
        `it would go to ${prefix.host}/${target.repository}, where "${first.line}" goes (${first.origin} and ${target.origin} would mix their tags there); mirror them to different prefixes`,
      );
    }
    byRepository.set(target.repository, first ?? { origin: target.origin, line: ref.line });
    return target;
  });
}

function descriptorOf(sources: SourceList, ref: ModelRef): SourceDescriptor {
  const source = sources.find((s) => s.kind === ref.kind);
  if (!source) throw new Error(`no source of kind ${ref.kind} for "${ref.line}"`);
  return source;
}

/**
 * Pushes every pulled model, one after another (each one's blobs several at once). A blob
 * another model of this run already put in the registry is mounted from there, not sent again.
 */
async function pushModels(
  models: readonly ModelReport[],
  refs: readonly ModelRef[],
  targets: readonly MirrorTarget[],
  settings: Settings,
  deps: PullDeps,
): Promise<ModelPush[]> {
  const prefix = settings.mirrorTo!;
  const http = new HttpClient(settings.http);
  const registry = new RegistryClient(registryOptions(settings));
  const onRetry = deps.onRetry ?? ((event: RetryEvent) => deps.log.info(describeRetry(event)));
  const call: RegistryCall = {
    http,
    retry: { ...settings.retry, onRetry },
    log: deps.log,
    clock: deps.clock ?? systemClock,
    ...(deps.signal ? { signal: deps.signal } : {}),
  };
  const tuning = {
    ...DEFAULT_PUSH_TUNING,
    uploads: uploadRecords(settings.uploadsDir),
    concurrency: settings.concurrency,
  };
  const holders = new Map<string, string>();
  const pushes: ModelPush[] = [];
  try {
    for (const [i, model] of models.entries()) {
      const ref = refs[i]!;
      const target = targets[i]!;
      if (!model.output || !model.identity) {
        // Said once where it is shown: "not pushed: the pull failed" (pushFailureLine, the summary).
        pushes.push({ line: ref.line, names: [], error: new Error('the pull failed') });
        continue;
      }
      try {
        const mirror = descriptorOf(deps.sources, ref).mirror!;
        const artifact = await mirror.artifact(
          ref.ref,
          { identity: model.identity, output: model.output },
          target,
          settings,
        );
        const session = await registry.resolve(
          call,
          {
            host: prefix.host,
            ...(prefix.scheme ? { scheme: prefix.scheme } : {}),
            repository: target.repository,
          },
          ['pull', 'push'],
        );
        const pushed = await pushArtifact(session, call, artifact, tuning, (hex) => holders.get(hex));
        for (const blob of artifact.blobs)
          if (!holders.has(blob.hex)) holders.set(blob.hex, target.repository);
        const names = artifact.references.map((r) => nameUnder(prefix, target.repository, r));
        deps.log.info(
          `${ref.line}: pushed ${names.join(', ')} (sha256:${pushed.digest}): ${blobSummary(pushed)}`,
        );
        pushes.push({ line: ref.line, names, digest: `sha256:${pushed.digest}`, blobs: pushed.blobs });
      } catch (error) {
        const reason = error instanceof Error ? error : new Error(describeError(error));
        pushes.push({ line: ref.line, names: [], error: reason });
      }
    }
  } finally {
    await http.close();
  }
  return pushes;
}

/** `2 blobs uploaded (1.2 GiB), 1 already there, 1 mounted`. */
function blobSummary(pushed: PushedArtifact): string {
  const count = (outcome: string) => pushed.blobs.filter((b) => b.outcome === outcome).length;
  const sent = pushed.blobs.reduce((n, b) => n + b.sentBytes, 0);
  const parts = [
    `${count('uploaded')} blobs uploaded (${formatBytes(sent)})`,
    `${count('present')} already there`,
  ];
  if (count('mounted')) parts.push(`${count('mounted')} mounted`);
  return parts.join(', ');
}
