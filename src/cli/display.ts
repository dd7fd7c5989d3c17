import type { ProgressListener } from '../download/types.js';
import type { Logger } from '../report/logger.js';
import { modelLog } from '../report/model-log.js';
import type { ModelListener } from '../report/phases.js';
import { progressLines } from '../report/progress-log.js';
import { printable } from '../report/text.js';
import { progressBars } from './progress-bars.js';

/** Seconds between plain progress batches when stderr is not a terminal (a CI log). */
const PLAIN_PROGRESS_MS = 3000;

/** How a pull shows itself on stderr. */
export interface Display {
  readonly log: Logger;
  readonly onProgress: ProgressListener;
  readonly onModel: ModelListener;
  /** Draws the bars' last state and hands the cursor back; later lines go out plainly. */
  close(): void;
}

/**
 * A terminal gets live bars, with log lines (phases, retries, ✓/✗ per file) printed above them;
 * a log (CI, a pipe) gets plain lines and a batch of progress lines every few seconds. Every
 * line is printable and has the run's secrets masked.
 */
export function pullDisplay(
  stderr: NodeJS.WriteStream,
  options: { secrets?: readonly string[]; paths?: boolean; plainIntervalMs?: number } = {},
): Display {
  const bars = stderr.isTTY ? progressBars(stderr) : undefined;
  let live = bars !== undefined;
  const plain = toStream(stderr);
  const log = lineLogger((line) => (live ? bars!.log(line) : plain(line)), options.secrets ?? []);
  return {
    log,
    onProgress:
      bars?.listener ?? progressLines((line) => log.info(line), options.plainIntervalMs ?? PLAIN_PROGRESS_MS),
    onModel: modelLog(log, { paths: options.paths ?? true }),
    close: () => {
      bars?.stop();
      live = false;
    },
  };
}

/** Log lines for stderr, secrets masked; `write` takes one line without its newline. */
export function lineLogger(write: (line: string) => void, secrets: readonly string[]): Logger {
  const mask = (m: string) => secrets.reduce((text, s) => text.split(s).join('***'), m);
  const out = (m: string) => write(printable(mask(m)));
  return {
    debug: () => undefined,
    info: out,
    warning: (m) => out(`warning: ${m}`),
    error: (m) => out(`error: ${m}`),
    group: async (title, fn) => {
      out(title);
      return fn();
    },
  };
}

export const toStream = (stream: NodeJS.WriteStream) => (line: string) => void stream.write(`${line}\n`);
