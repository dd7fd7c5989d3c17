import { parseLines as parseAllWith, parseLine as parseWith } from '../../../src/refs/index.js';
import { DEFAULT_SOURCES } from '../../../src/sources/index.js';

const parseLine = (line: string) => parseWith(line, DEFAULT_SOURCES);
const parseLines = (lines: string[]) => parseAllWith(lines, DEFAULT_SOURCES);

const hex = 'ab'.repeat(32);

describe('URL lines', () => {
  it('parses the URL, the pin and the file name', () => {
    const line = `https://files.example.com/m/tiny%20model.gguf?x=1#frag sha256=${hex.toUpperCase()}`;
    expect(parseLine(line)).toEqual({
      kind: 'url',
      line,
      // The canonical line (lock files are keyed by it): no fragment, the pin in lowercase.
      key: `https://files.example.com/m/tiny%20model.gguf?x=1 sha256=${hex}`,
      ref: {
        line,
        url: 'https://files.example.com/m/tiny%20model.gguf?x=1',
        sha256: hex,
        fileName: 'tiny model.gguf',
      },
    });
  });

  it.each([
    ['https://h/f.gguf', 'a URL needs sha256=<64 hex> so the file can be verified'],
    ['https://h/f.gguf sha256=abc', 'sha256= must be 64 hexadecimal characters'],
    [`https://h/ sha256=${hex}`, 'the URL path names no file'],
    [`https://h/f.gguf sha256=${hex} include=*.gguf`, 'unknown option include= (allowed here: sha256=)'],
    [`https://h/f.gguf sha256=${hex} sha256=${hex}`, 'option sha256= given twice'],
    [`https://h/f.gguf sha256=${hex} stray`, 'expected key=value after the reference, got "stray"'],
    [
      `https://u:secret@h/f.gguf sha256=${hex}`,
      'credentials in a URL would end up in logs, outputs and the lock file; remove user:password@',
    ],
    [
      'ftp://h/f.gguf',
      'expected ollama:NAME, hf:OWNER/REPO, oci:[HOST/]REPO[:TAG] or an https:// URL with sha256=',
    ],
  ])('refuses %s', (line, reason) => {
    expect(() => parseLine(line)).toThrow(`invalid model line "${line}": ${reason}`);
  });

  it('refuses two lines that would write different bytes to one file name', () => {
    const a = `https://a.example/x/model.gguf sha256=${hex}`;
    const b = `https://b.example/y/model.gguf sha256=${'cd'.repeat(32)}`;
    expect(() => parseLines([a, b])).toThrow(
      `invalid model line "${b}": its file name "model.gguf" is already used by "${a}" for other bytes`,
    );
    // The same bytes from two mirrors are fine: one file.
    expect(parseLines([a, `https://b.example/y/model.gguf sha256=${hex}`])).toHaveLength(2);
  });
});
