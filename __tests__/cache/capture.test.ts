import { CoreOutputCapture, parseCoreLine } from '../../src/cache/capture.js';

/** A stream that only records; stands in for stdout. */
function recorder(): { stream: NodeJS.WritableStream; got: string[] } {
  const got: string[] = [];
  const stream = {
    write(chunk: unknown, ...rest: unknown[]): boolean {
      got.push(String(chunk));
      (rest.find((r) => typeof r === 'function') as (() => void) | undefined)?.();
      return true;
    },
  };
  return { stream: stream as unknown as NodeJS.WritableStream, got };
}

describe('parseCoreLine', () => {
  test.each([
    ['::warning::a%0Ab%25c', 'warning', 'a\nb%c'],
    ['::error file=x,line=1::boom: x%3Ay', 'error', 'boom: x%3Ay'],
    ['::add-mask::s3cr3t', 'add-mask', 's3cr3t'],
    ['Cache hit for: k', undefined, 'Cache hit for: k'],
  ])('%j', (line, command, message) => {
    expect(parseCoreLine(line)).toEqual({ command, message });
  });
});

describe('CoreOutputCapture', () => {
  test('keeps what a call writes, passes through masks and writes from outside the call', async () => {
    const { stream, got } = recorder();
    const capture = new CoreOutputCapture(stream);
    const original = stream.write;
    // The outside write happens while the call is in flight: after its first line, before the
    // rest (explicit hand-offs, no timing).
    const stepped = deferred();
    const wrote = deferred();
    const outside = (async () => {
      await stepped.promise;
      stream.write('progress of another model\n');
      wrote.resolve();
    })();
    const result = await capture.run(async () => {
      stream.write('::debug::step 1\n');
      stepped.resolve();
      await wrote.promise;
      stream.write('::add-mask::sig\n::warning::Failed to restore: no%0Aluck\nCache Size: ~0 MB\n');
      return 7;
    });
    await outside;
    expect(result).toEqual({
      ok: true,
      value: 7,
      lines: [
        { command: 'debug', message: 'step 1' },
        { command: 'warning', message: 'Failed to restore: no\nluck' },
        { command: undefined, message: 'Cache Size: ~0 MB' },
      ],
    });
    expect(got).toEqual(['progress of another model\n', '::add-mask::sig\n']);
    expect(stream.write).toBe(original);
  });

  test('returns what the call threw, with its lines, and unhooks the stream', async () => {
    const { stream, got } = recorder();
    const capture = new CoreOutputCapture(stream);
    const original = stream.write;
    const result = await capture.run(async () => {
      stream.write('::error::bad\n');
      throw new Error('thrown');
    });
    expect(result.ok).toBe(false);
    expect(result.ok ? undefined : (result.error as Error).message).toBe('thrown');
    expect(result.lines).toEqual([{ command: 'error', message: 'bad' }]);
    expect(got).toEqual([]);
    expect(stream.write).toBe(original);
    stream.write('after\n');
    expect(got).toEqual(['after\n']);
  });
});

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
