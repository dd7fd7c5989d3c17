import { join } from 'node:path';
import { runCli } from '../../src/cli/main.js';
import type { SourceList } from '../../src/sources/descriptor.js';

export interface InProcessResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The CLI's runCli in this process, its output captured (not a TTY), with its own environment. */
export async function cliInProcess(
  args: readonly string[],
  env: Record<string, string>,
  sources?: SourceList,
): Promise<InProcessResult> {
  let stdout = '';
  let stderr = '';
  const stream = (write: (s: string) => void) =>
    ({
      isTTY: false,
      write: (s: string) => {
        write(s);
        return true;
      },
    }) as unknown as NodeJS.WriteStream;
  const code = await runCli(args, {
    env,
    stdout: stream((s) => (stdout += s)),
    stderr: stream((s) => (stderr += s)),
    ...(sources ? { sources } : {}),
  });
  return { code, stdout, stderr };
}

/**
 * One runner of the mirror tests: `pull` into fresh stores under `dir`, with `mirror` as the
 * registry mirror of `originHost`.
 */
export async function pullThroughMirror(
  dir: string,
  originHost: string,
  mirror: string,
  lines: readonly string[],
): Promise<InProcessResult & { dir: string }> {
  const result = await cliInProcess(
    [
      'pull',
      '--ollama-models',
      join(dir, 'ollama'),
      '--oci-dir',
      join(dir, 'oci'),
      '--registry-mirror',
      `${originHost}=${mirror}`,
      ...lines,
    ],
    { HOME: dir },
  );
  return { ...result, dir };
}
