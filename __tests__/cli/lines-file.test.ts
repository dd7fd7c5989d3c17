import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_LINES_FILE_BYTES } from '../../src/cli/main.js';
import { cliInProcess } from '../helpers/cli-in-process.js';
import { tempDir } from '../helpers/http.js';
import { plant } from '../helpers/planted.js';

// `-f FILE` is read bounded, a pipe included, and refused with one line naming the file and the
// limit before anything is fetched (no server runs here: a fetch would fail differently).

let home: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  home = await tempDir('model-pull-lines-file-');
});
afterAll(async () => {
  await home.remove();
});

const pull = (file: string) => cliInProcess(['pull', '-f', file], { HOME: home.path });

describe('-f FILE', () => {
  it('refuses a file larger than the limit by its size', async () => {
    const file = join(home.path, 'huge.txt');
    await plant(file, 'huge', MAX_LINES_FILE_BYTES + 1);
    const result = await pull(file);
    expect(result).toEqual({
      code: 2,
      stdout: '',
      stderr: `model-pull pull: cannot read -f ${file}: too large (1048577 bytes, limit 1048576)\n`,
    });
  });

  it('stops reading an endless device at the limit', async () => {
    const result = await pull('/dev/zero');
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'model-pull pull: cannot read -f /dev/zero: too large (at least 1048577 bytes, limit 1048576)\n',
    );
  });

  it('refuses a folder', async () => {
    const result = await pull(home.path);
    expect(result.stderr).toBe(
      `model-pull pull: cannot read -f ${home.path}: not a regular file (a folder)\n`,
    );
  });

  it('reads a pipe to its end, through a link to it', async () => {
    const fifo = join(home.path, 'lines.fifo');
    execFileSync('mkfifo', [fifo]);
    const link = join(home.path, 'lines-link');
    execFileSync('ln', ['-s', fifo, link]);
    // The list's second line is bad: its usage error proves the whole pipe was read and checked.
    const [result] = await Promise.all([pull(link), writeFile(fifo, '# models\nhf:owner/repo foo=bar\n')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'model-pull pull: invalid model line "hf:owner/repo foo=bar": unknown option foo= (allowed here: include=, exclude=)\n',
    );
  });
});
