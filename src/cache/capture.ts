import { AsyncLocalStorage } from 'node:async_hooks';
import { EOL } from 'node:os';

/**
 * One line @actions/core wrote: a workflow command (`::warning::…`, `::debug::…`) or plain text
 * (`core.info`, the `[command]…` echo of @actions/exec).
 */
export interface CoreLine {
  /** `debug`, `warning`, `error`, `notice`; undefined for plain text. */
  readonly command: string | undefined;
  /** The message with the command escaping (%25, %0D, %0A) undone. */
  readonly message: string;
}

/** What one captured call produced: its value or what it threw, and every line it wrote. */
export type Captured<T> =
  | { readonly ok: true; readonly value: T; readonly lines: readonly CoreLine[] }
  | { readonly ok: false; readonly error: unknown; readonly lines: readonly CoreLine[] };

/** The commands we take over; any other command (`add-mask` above all) must reach the runner. */
const CAPTURED = new Set(['debug', 'warning', 'error', 'notice']);
const COMMAND = /^::([A-Za-z-]+)(?: [^:]*)?::(.*)$/s;

/** Parses one line of @actions/core output (command syntax from @actions/core's `issueCommand`). */
export function parseCoreLine(line: string): CoreLine {
  const match = COMMAND.exec(line);
  if (!match) return { command: undefined, message: line };
  const message = (match[2] ?? '').replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%');
  return { command: match[1], message };
}

type Write = (chunk: unknown, encoding?: unknown, callback?: unknown) => boolean;

/**
 * @actions/cache reports every failure only by logging it through @actions/core (restore returns
 * `undefined` for a miss and for a broken service alike, save returns -1 for a conflict and for a
 * 5xx alike), and it logs them as `::error::` / `::warning::` annotations, one per call. To tell
 * the cases apart and to warn once per run instead of once per model, each cache call runs inside
 * an async context, and whatever @actions/core writes to stdout from inside that context is kept
 * for the caller instead of reaching the runner. Output from anything else, and commands such as
 * `::add-mask::` (the library masks signed URLs with it), pass through untouched.
 */
export class CoreOutputCapture {
  readonly #context = new AsyncLocalStorage<CoreLine[]>();
  readonly #stream: NodeJS.WritableStream;
  #active = 0;
  #original: Write | undefined;
  #tap: Write | undefined;

  constructor(stream: NodeJS.WritableStream) {
    this.#stream = stream;
  }

  async run<T>(fn: () => Promise<T>): Promise<Captured<T>> {
    const lines: CoreLine[] = [];
    this.#install();
    try {
      const value = await this.#context.run(lines, fn);
      return { ok: true, value, lines };
    } catch (error) {
      return { ok: false, error, lines };
    } finally {
      this.#uninstall();
    }
  }

  #install(): void {
    this.#active += 1;
    if (this.#active > 1) return;
    const stream = this.#stream as unknown as { write: Write };
    const original = stream.write;
    const context = this.#context;
    const tap: Write = (chunk, encoding, callback) => {
      const lines = context.getStore();
      const text =
        typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : undefined;
      if (lines === undefined || text === undefined) return original.call(stream, chunk, encoding, callback);
      const forward = keep(text, lines);
      const done = typeof encoding === 'function' ? encoding : callback;
      if (forward.length > 0) return original.call(stream, forward.join(EOL) + EOL, done);
      if (typeof done === 'function') process.nextTick(done as () => void);
      return true;
    };
    this.#original = original;
    this.#tap = tap;
    stream.write = tap;
  }

  #uninstall(): void {
    this.#active -= 1;
    if (this.#active > 0) return;
    const stream = this.#stream as unknown as { write: Write };
    // Someone may have wrapped `write` after us; then leave our (now pass-through) tap in their chain.
    if (stream.write === this.#tap && this.#original) stream.write = this.#original;
    this.#original = undefined;
    this.#tap = undefined;
  }
}

/** Records captured lines; returns the raw lines that must still reach the runner. */
function keep(text: string, lines: CoreLine[]): string[] {
  const forward: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    if (raw === '') continue;
    const line = parseCoreLine(raw);
    if (line.command === undefined || CAPTURED.has(line.command)) lines.push(line);
    else forward.push(raw);
  }
  return forward;
}
