import { access, constants } from 'node:fs/promises';
import { ModelPullError } from './errors.js';
import { ensureDirs } from './fs-dirs.js';
import type { ModelRef } from './refs/index.js';
import type { Settings } from './settings/settings.js';
import type { SourceList, Sources } from './sources/descriptor.js';
import type { VerifyReport } from './verify/files.js';

/** A folder a source writes into, with the input (and CLI flag) that chooses it. */
export interface StoreFolder {
  /** `the Ollama store`, `the Hugging Face cache`. */
  readonly what: string;
  readonly path: string;
  /** The input's name; the CLI flag is the same with `--`. */
  readonly input: string;
  /** How `model-pull verify` re-hashes this folder against its records; absent: not checked. */
  readonly verify?: {
    /** The folder's name in verify's report: `Ollama store`. */
    readonly label: string;
    check(root: string): Promise<VerifyReport>;
  };
}

/**
 * The run's sources, each refusing a line before any request when a folder it writes into
 * cannot be written, with a message that names the folder and the option to change:
 * `cannot write the Ollama store /x/models (ollama-models / --ollama-models): permission denied`.
 * Each folder is created (as the pull would) and tried once per run; only the lines of the
 * sources that write there fail.
 */
export function checkingStores(
  sources: Sources,
  list: SourceList,
  settings: Settings,
  refs: readonly ModelRef[],
): Sources {
  const checks = new Map<string, Promise<void>>();
  const check = (folder: StoreFolder) => {
    let pending = checks.get(folder.path);
    if (!pending) {
      pending = writable(folder);
      checks.set(folder.path, pending);
    }
    return pending;
  };
  const checkFor = async (parsed: unknown) => {
    const kind = refs.find((r) => r.ref === parsed)?.kind;
    const descriptor = list.find((s) => s.kind === kind);
    for (const folder of descriptor?.stores?.(settings) ?? []) await check(folder);
  };
  return new Map(
    [...sources].map(([kind, source]) => [
      kind,
      {
        identify: async (parsed, ctx) => {
          await checkFor(parsed);
          return source.identify(parsed, ctx);
        },
        // A line pinned by a lock file is never identified: its plan checks instead.
        plan: async (parsed, identity, ctx) => {
          await checkFor(parsed);
          return source.plan(parsed, identity, ctx);
        },
      },
    ]),
  );
}

async function writable(folder: StoreFolder): Promise<void> {
  try {
    await ensureDirs(folder.path);
    await access(folder.path, constants.W_OK | constants.X_OK);
  } catch (error) {
    throw new ModelPullError(
      'ERR_NOT_WRITABLE',
      `cannot write ${folder.what} ${folder.path} (${folder.input} / --${folder.input}): ${reason(error)}`,
      { cause: error },
    );
  }
}

function reason(error: unknown): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOTDIR':
    case 'EEXIST':
      return 'a file is in the way where a folder must be';
    case 'ENOSPC':
      return 'no space left on the device';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}
