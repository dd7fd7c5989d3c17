import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LOG_TAIL_BYTES, readLogTail, tailLines } from '../../src/runtime/log-tail.js';
import { tempDir } from '../helpers/http.js';

let work: { path: string; remove(): Promise<void> };
beforeAll(async () => {
  work = await tempDir('model-pull-log-tail-');
});
afterAll(async () => {
  await work.remove();
});

/** `count` lines of exactly `size` bytes each, ending `eol`: `line 1 .....`, `line 2 .....`. */
function lines(count: number, size = 100, eol = '\n', from = 1): string {
  let text = '';
  for (let n = from; n < from + count; n++) {
    const head = `line ${n} `;
    text += head + '.'.repeat(size - head.length - eol.length) + eol;
  }
  return text;
}
const line = (n: number, size = 100, eol = '\n') => lines(1, size, eol, n).trim();
const numbered = (from: number, to: number, size = 100, eol = '\n') =>
  Array.from({ length: to - from + 1 }, (_, i) => line(from + i, size, eol));

let file = 0;
async function tailOf(text: string, count = 100): Promise<unknown> {
  const path = join(work.path, `log-${file++}`);
  await writeFile(path, text);
  return readLogTail(path, count);
}

describe('readLogTail: the last lines of the last 4000 bytes of a log', () => {
  test('the window is 4000 bytes', () => {
    expect(LOG_TAIL_BYTES).toBe(4000);
  });

  test.each([
    ['a log shorter than the window is quoted whole', 'first\nsecond\n', ['first', 'second']],
    ['blank lines and surrounding spaces are left out', '\n  first  \n\n\nsecond', ['first', 'second']],
    ['an empty log has no lines', '', []],
  ])('%s', async (_, text, expected) => {
    expect(await tailOf(text)).toEqual({ kind: 'lines', lines: expected });
  });

  test('a log of exactly 4000 bytes keeps its first line', async () => {
    const text = lines(40);
    expect(Buffer.byteLength(text)).toBe(4000);
    expect(await tailOf(text)).toEqual({ kind: 'lines', lines: numbered(1, 40) });
  });

  test('a 4001-byte log whose cut falls just after a newline keeps the window whole', async () => {
    const text = `\n${lines(40)}`;
    expect(Buffer.byteLength(text)).toBe(4001);
    expect(await tailOf(text)).toEqual({ kind: 'lines', lines: numbered(1, 40) });
  });

  test('a longer log cut exactly on a line boundary keeps the first whole line', async () => {
    const text = lines(60);
    expect(await tailOf(text)).toEqual({ kind: 'lines', lines: numbered(21, 60) });
  });

  test('a 4001-byte log whose window starts one byte into a line leaves that part-line out', async () => {
    const text = `x${lines(40)}`;
    expect(await tailOf(text)).toEqual({ kind: 'lines', lines: numbered(2, 40) });
  });

  test('a longer log cut inside a line leaves that part-line out', async () => {
    const text = lines(60).slice(0, -50) + 'last line\n';
    // 5960 bytes: the window starts at byte 1960, 60 bytes into line 20.
    expect(Buffer.byteLength(text)).toBe(5960);
    expect(await tailOf(text)).toEqual({
      kind: 'lines',
      lines: [...numbered(21, 59), `${line(60).slice(0, 50)}last line`],
    });
  });

  test('one line longer than the window: its end is quoted after an ellipsis', async () => {
    expect(await tailOf(`${'A'.repeat(4500)}\n`)).toEqual({ kind: 'lines', lines: [`…${'A'.repeat(3999)}`] });
    expect(await tailOf(`start ${'B'.repeat(5000)} end`)).toEqual({
      kind: 'lines',
      lines: [`…${'B'.repeat(3996)} end`],
    });
  });

  test('a cut inside a UTF-8 character skips its continuation bytes', async () => {
    // 'é' is two bytes: 6001 bytes, the window starts on the second byte of the 1001st 'é'.
    expect(await tailOf(`${'é'.repeat(3000)}x`)).toEqual({ kind: 'lines', lines: [`…${'é'.repeat(1999)}x`] });
  });

  test.each([
    // 4001 bytes: CR, then the window: LF, 40 lines, the last one's LF cut off.
    ['between CR and LF', `\r\n${lines(40, 100, '\r\n').slice(0, -1)}`, 1],
    ['just after CR LF', lines(60, 100, '\r\n'), 21],
  ])('a CRLF log cut %s keeps the first whole line', async (_, text, first) => {
    const last = first + 39;
    expect(await tailOf(text)).toEqual({ kind: 'lines', lines: numbered(first, last, 100, '\r\n') });
  });

  test('a CRLF log cut inside a line leaves that part-line out', async () => {
    const text = `ab${lines(40, 100, '\r\n')}`;
    expect(await tailOf(text)).toEqual({ kind: 'lines', lines: numbered(2, 40, 100, '\r\n') });
  });

  test('only the last `count` lines are quoted', async () => {
    expect(await tailOf(lines(60), 8)).toEqual({ kind: 'lines', lines: numbered(53, 60) });
  });

  test('a missing log has no lines; a link is refused, not followed', async () => {
    expect(await readLogTail(join(work.path, 'absent.log'), 8)).toEqual({ kind: 'lines', lines: [] });
    const target = join(work.path, 'target.log');
    await writeFile(target, 'secret\n');
    const link = join(work.path, 'link.log');
    await symlink(target, link);
    expect(await readLogTail(link, 8)).toEqual({
      kind: 'refused',
      reason: 'not a regular file (a symbolic link)',
    });
  });
});

describe('tailLines on the bytes read', () => {
  test.each([
    // [what, bytes read (window + 1 at most), window, lines]
    ['shorter than the window', 'a\nb', 4, ['a', 'b']],
    ['exactly the window', 'a\nbc', 4, ['a', 'bc']],
    ['the byte before the window is a newline', '\na\nb', 3, ['a', 'b']],
    ['the byte before the window is inside a line', 'xa\nb', 3, ['b']],
    ['the byte before the window is a CR of a CRLF', '\r\na\r\nb', 5, ['a', 'b']],
    ['one line longer than the window', 'abcd', 3, ['…bcd']],
    ['only a part-line and blank lines', 'abc\n\n', 4, ['…bc']],
  ])('%s', (_, text, window, expected) => {
    expect(tailLines(Buffer.from(text), window)).toEqual(expected);
  });
});
