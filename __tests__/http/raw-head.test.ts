import { ChunkedDecoder, headEnd, MAX_HEAD_BYTES, parseHead } from '../../src/http/raw-head.js';

const head = (...lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;

describe('parseHead: response heads read strictly (raw reader, issue 17)', () => {
  it('reads a 206 with its length, lower-case names, repeated values joined and equal copies once', () => {
    const verdict = parseHead(
      head(
        'HTTP/1.1 206 Partial Content',
        'Content-Length: 10',
        'Content-Range: bytes 0-9/100',
        'content-length: 10',
        'X-Tag:  a ',
        'x-tag: b',
        'Set-Cookie: s=1',
        'Set-Cookie: t=2',
      ),
    );
    expect(verdict).toEqual({
      kind: 'head',
      head: {
        statusCode: 206,
        headers: {
          'content-length': '10',
          'content-range': 'bytes 0-9/100',
          'x-tag': 'a, b',
          'set-cookie': ['s=1', 't=2'],
        },
        bodyLength: 10,
        reusable: true,
      },
    });
  });

  it('takes a status line without a reason, and knows which answers keep the connection', () => {
    expect(parseHead(head('HTTP/1.1 200', 'Content-Length: 0'))).toMatchObject({
      kind: 'head',
      head: { statusCode: 200, bodyLength: 0, reusable: true },
    });
    expect(parseHead(head('HTTP/1.1 200 OK', 'Content-Length: 5', 'Connection: close'))).toMatchObject({
      head: { reusable: false },
    });
    expect(parseHead(head('HTTP/1.0 200 OK', 'Content-Length: 5'))).toMatchObject({
      head: { reusable: false },
    });
    // No length: the body runs to the close, and the connection is not reused.
    expect(parseHead(head('HTTP/1.1 200 OK'))).toMatchObject({
      head: { bodyLength: 'close', reusable: false },
    });
    // 204 and 304 have no body whatever they declare.
    expect(parseHead(head('HTTP/1.1 304 Not Modified', 'Content-Length: 99'))).toMatchObject({
      head: { bodyLength: 0 },
    });
    expect(parseHead(head('HTTP/1.1 302 Found', 'Location: /x', 'Transfer-Encoding: chunked'))).toMatchObject(
      {
        head: { statusCode: 302, bodyLength: 'chunked', reusable: true, headers: { location: '/x' } },
      },
    );
  });

  it.each([
    ['a bare LF ending a header line', 'HTTP/1.1 200 OK\r\nContent-Length: 1\nX: y\r\n\r\n'],
    ['a bare CR inside a value', 'HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 1\r\n\r\n'],
    ['a NUL in a value', 'HTTP/1.1 200 OK\r\nX: a\u0000b\r\nContent-Length: 1\r\n\r\n'],
    ['a folded line (obs-fold)', 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 1\r\n\r\n'],
    ['a space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n'],
    ['a name that is not a token', 'HTTP/1.1 200 OK\r\nX(y): 1\r\n\r\n'],
    ['HTTP/2 in the status line', 'HTTP/2 200 OK\r\nContent-Length: 1\r\n\r\n'],
    ['a two-digit status', 'HTTP/1.1 20 OK\r\nContent-Length: 1\r\n\r\n'],
    ['a status line with a bare LF', 'HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n'],
  ])('refuses %s as malformed', (_what, text) => {
    expect(parseHead(text).kind).toBe('malformed');
  });

  it('refuses lengths that could be read two ways', () => {
    expect(parseHead(head('HTTP/1.1 200 OK', 'Content-Length: 5', 'Content-Length: 6'))).toEqual({
      kind: 'malformed',
      why: 'conflicting content-length headers',
    });
    expect(
      parseHead(head('HTTP/1.1 206 OK', 'Content-Range: bytes 0-4/9', 'Content-Range: bytes 1-5/9')),
    ).toEqual({
      kind: 'malformed',
      why: 'conflicting content-range headers',
    });
    expect(parseHead(head('HTTP/1.1 200 OK', 'Content-Length: 5, 5'))).toEqual({
      kind: 'malformed',
      why: 'bad content-length',
    });
    expect(parseHead(head('HTTP/1.1 200 OK', 'Content-Length: -1')).kind).toBe('malformed');
    expect(parseHead(head('HTTP/1.1 200 OK', 'Content-Length: 99999999999999999')).kind).toBe('malformed');
    expect(parseHead(head('HTTP/1.1 200 OK', 'Content-Length: 5', 'Transfer-Encoding: chunked'))).toEqual({
      kind: 'malformed',
      why: 'both Transfer-Encoding and Content-Length',
    });
  });

  it('leaves to node:http what it does not read: other codings and interim answers', () => {
    expect(parseHead(head('HTTP/1.1 200 OK', 'Transfer-Encoding: gzip, chunked'))).toEqual({
      kind: 'foreign',
      why: 'Transfer-Encoding gzip, chunked',
    });
    expect(parseHead(head('HTTP/1.1 103 Early Hints', 'Link: </x>'))).toEqual({
      kind: 'foreign',
      why: 'interim answer 103',
    });
  });

  it('finds the end of a head only at its empty line', () => {
    const text = head('HTTP/1.1 200 OK', 'Content-Length: 3');
    const bytes = Buffer.from(`${text}abc`, 'latin1');
    expect(headEnd(bytes)).toBe(text.length);
    expect(headEnd(bytes.subarray(0, text.length - 1))).toBe(-1);
    expect(MAX_HEAD_BYTES).toBe(16 * 1024);
  });
});

describe('ChunkedDecoder', () => {
  const body = Buffer.from(
    '5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT',
    'latin1',
  );
  const bodyEnd = body.length - 4;

  it('gives the same data and end wherever the bytes are split', () => {
    for (let a = 0; a <= body.length; a++) {
      for (const b of [a, Math.min(body.length, a + 1), Math.min(body.length, a + 7)]) {
        const decoder = new ChunkedDecoder();
        const out: Buffer[] = [];
        const parts = [body.subarray(0, a), body.subarray(a, b), body.subarray(b)];
        let end = -1;
        let offset = 0;
        for (const part of parts) {
          if (end < 0) {
            const at = decoder.feed(part, (data) => out.push(Buffer.from(data)));
            if (at >= 0) end = offset + at;
          }
          offset += part.length;
        }
        expect([Buffer.concat(out).toString('latin1'), end]).toEqual([
          'helloabcdefghijklmnopqrstuvwxyz',
          bodyEnd,
        ]);
      }
    }
  });

  it.each([
    ['a size that is not hex', 'zz\r\n'],
    ['data longer than its size', '2\r\nabc\r\n'],
    ['a size line with a bare LF', '2\nab\r\n'],
    ['a size line with no end', `${'1'.repeat(2000)}`],
    ['a size of more than 12 digits', '1000000000000\r\n'],
    ['a bad trailer line', '0\r\nbad trailer\r\n\r\n'],
  ])('refuses %s', (_what, text) => {
    expect(() => new ChunkedDecoder().feed(Buffer.from(text, 'latin1'), () => undefined)).toThrow();
  });
});
