import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { tempDir } from '../helpers/http.js';
import { CLI_PATH } from './run.js';

/**
 * The CLI on a real terminal: tmux gives it a pseudo-terminal of a fixed size and keeps the
 * screen as a terminal would show it, so a test reads what a user sees (redrawn bars, lines
 * that stay or get overwritten) rather than the raw byte stream. Each terminal has its own tmux
 * server (socket in a temporary folder), so tests and worktrees never share one.
 */
export interface Terminal {
  /** The screen and the lines scrolled above it, trailing blanks trimmed. */
  screen(): Promise<string>;
  /** Waits until the screen matches (bounded, polling). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends keys as tmux names them (`C-c`). */
  keys(...keys: string[]): Promise<void>;
  close(): Promise<void>;
}

function tmux(socket: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('tmux', ['-S', socket, '-f', '/dev/null', ...args], {
      env: env ?? { PATH: process.env.PATH },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`tmux ${args[0]}: ${err}`))));
  });
}

/** Runs `node dist/cli/index.js ARGS` in a new terminal of `columns` × `rows`. */
export async function cliInTerminal(
  args: readonly string[],
  options: { env: Record<string, string>; columns?: number; rows?: number },
): Promise<Terminal> {
  const folder = await tempDir('model-pull-tty-');
  const socket = join(folder.path, 'tmux.sock');
  const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;
  // The shell stays after the CLI so its last screen (and exit code) can be read.
  const command = `${[process.execPath, CLI_PATH, ...args].map(quote).join(' ')}; echo "[exit $?]"; sleep 600`;
  const env = { PATH: process.env.PATH, TERM: 'xterm-256color', ...options.env };
  await tmux(
    socket,
    [
      'new-session',
      '-d',
      '-s',
      'cli',
      '-x',
      String(options.columns ?? 100),
      '-y',
      String(options.rows ?? 30),
      command,
    ],
    env,
  );
  const screen = async () =>
    (await tmux(socket, ['capture-pane', '-p', '-J', '-t', 'cli', '-S', '-200']))
      .split('\n')
      .map((l) => l.trimEnd())
      .join('\n')
      .replace(/\n+$/, '');
  return {
    screen,
    async waitFor(pattern, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const text = await screen();
        if (pattern.test(text)) return text;
        if (Date.now() > deadline) throw new Error(`the screen never showed ${pattern}:\n${text}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async keys(...keys) {
      await tmux(socket, ['send-keys', '-t', 'cli', ...keys]);
    },
    async close() {
      await tmux(socket, ['kill-server']).catch(() => undefined);
      await folder.remove();
    },
  };
}
