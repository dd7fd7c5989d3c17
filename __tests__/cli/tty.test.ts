import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { startBlobServer } from '../helpers/blob-server.js';
import { recordedBytes } from '../helpers/engine.js';
import { tempDir } from '../helpers/http.js';
import { requireBuiltCli } from './run.js';
import { cliInTerminal, type Terminal } from './tty.js';

// The progress display on a real terminal (tmux): bars while it downloads, the Ctrl-C line
// that stays on screen, a resume whose bars start at what is on disk, a re-check with no rate.
// Set MODEL_PULL_SCREENS=<folder> to keep the screens as text files.

const MiB = 1024 * 1024;
const SIZE = 24 * MiB;

async function keep(name: string, screen: string): Promise<void> {
  const folder = process.env.MODEL_PULL_SCREENS;
  if (folder) await writeFile(join(folder, `${name}.txt`), `${screen}\n`);
}

beforeAll(() => requireBuiltCli());

it('bars on a terminal; Ctrl-C leaves its line on screen; the resume starts at what is on disk; a re-check says verifying', async () => {
  const data = randomBytes(SIZE);
  const hex = sha256Hex(data);
  // 2 connections at 2 MiB/s each: about 6 s for the whole file.
  const server = await startBlobServer(data, () => ({ rate: 2 * MiB }));
  const dir = await tempDir('model-pull-cli-tty-');
  const line = `${server.url}/big.gguf sha256=${hex}`;
  const args = ['pull', '--files-dir', join(dir.path, 'files'), '--connections', '2', line];
  const env = { HOME: dir.path };
  const terminals: Terminal[] = [];
  const open = async () => {
    const terminal = await cliInTerminal(args, { env });
    terminals.push(terminal);
    return terminal;
  };
  try {
    // First run: bars for the file and the total, then Ctrl-C.
    const first = await open();
    const mid = await first.waitFor(/big\.gguf .* (\d+)% .*\n total .* (\d+)% .* ETA /);
    while (server.sentBytes() < 8 * MiB) await new Promise((r) => setTimeout(r, 20));
    await keep('1-mid-download', await first.screen());
    // Lines longer than the screen are wrapped, not cut (the bars turn the terminal's wrap off).
    expect(mid.replace(/\n/g, '')).toContain(`${line}: downloading 1 file`);
    await first.keys('C-c');
    const stopped = await first.waitFor(/\[exit \d+\]/);
    await keep('2-after-ctrl-c', stopped);
    expect(stopped).toContain('\n[exit 1]');
    // The stopping line is still on screen, above what the bars drew last.
    expect(stopped).toMatch(
      /^stopping: progress is kept for the next run \(Ctrl-C again to quit at once\)$/m,
    );
    expect(stopped).toMatch(/^error: interrupted: progress is kept, run the same command again to resume$/m);
    // Every line printed above the bars is whole: nothing of an old bar is left after its text.
    expect(stopped).toMatch(/^ ✗ .*big\.gguf: stopped; progress kept for the next run$/m);
    expect(stopped).not.toMatch(/next run\S/);
    const kept = await recordedBytes(
      join(dir.path, 'files', '.model-pull-ingest', `sha256-${hex}.progress.json`),
    );
    expect(kept).toBeGreaterThanOrEqual(6 * MiB);

    // The resume: the first frame already shows what is on disk, in the file's bar and the total.
    const second = await open();
    const resumed = await second.waitFor(/ big\.gguf .* \d+% .*\n total .* \d+% /);
    await keep('3-resumed', resumed);
    const floor = Math.floor((kept / SIZE) * 100);
    const [, filePct, totalPct] = / big\.gguf +\S+ +(\d+)% [^\n]*\n total +\S+ +(\d+)% /.exec(resumed)!;
    expect(Number(filePct)).toBeGreaterThanOrEqual(floor);
    expect(Number(totalPct)).toBeGreaterThanOrEqual(floor);
    const finished = await second.waitFor(/\[exit \d+\]/, 30_000);
    await keep('4-finished', finished);
    expect(finished).toContain('[exit 0]');
    expect(finished).toMatch(/^ ✓ .*big\.gguf 24\.0 MiB \d/m);
    expect(finished).toMatch(
      new RegExp(`: done, 24\\.0 MiB at ${join(dir.path, 'files', 'big.gguf')} \\(downloaded `),
    );
    expect(finished).not.toMatch(/\b(10[1-9]|1[1-9]\d|[2-9]\d\d)%/); // nothing past 100%

    // A re-check downloads nothing: no bar, no rate; the log says verifying.
    const third = await open();
    const checked = await third.waitFor(/\[exit \d+\]/);
    await keep('5-recheck', checked);
    expect(checked).toContain('[exit 0]');
    expect(checked.replace(/\n/g, '')).toContain(`${line}: verifying`);
    expect(checked).toMatch(/\(already on disk, verified\)$/m);
    expect(checked).not.toMatch(/\/s\b|total|ETA/);
  } finally {
    for (const terminal of terminals) await terminal.close();
    await server.close();
    await dir.remove();
  }
});
