import { open, readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { sha256Hex } from '../../src/digest.js';
import { writeRawBody } from '../../src/download/body-writer.js';
import { fetchBlobs } from '../../src/download/engine.js';
import type { Segment } from '../../src/download/range-plan.js';
import { isModelPullError } from '../../src/errors.js';
import type { HttpClient } from '../../src/http/client.js';
import { RawTransport } from '../../src/http/raw.js';
import { blobSpec, engineOptions, randomBlob, testClient } from '../helpers/engine.js';
import { tempDir } from '../helpers/http.js';
import { type Scripted, scripted } from '../helpers/scripted-server.js';
import { selfSigned } from '../helpers/tls.js';

const SIZE = 300_000;
const { data, hex } = randomBlob(SIZE);

/** The requested range's bytes [from, to] (to: inclusive, open ends to the last byte). */
function requested(request: string): { from: number; to: number } {
  const range = /range: bytes=(\d+)-(\d*)/.exec(request)!;
  return { from: Number(range[1]), to: range[2] ? Number(range[2]) : SIZE - 1 };
}

/** A well-formed 206 head for [from, to], with `extra` header lines. */
function head(from: number, to: number, extra = ''): string {
  return `HTTP/1.1 206 Partial Content\r\nContent-Length: ${to - from + 1}\r\nContent-Range: bytes ${from}-${to}/${SIZE}\r\n${extra}\r\n`;
}

/** Serves the range asked for, whole. */
function serve(request: string, socket: Socket): void {
  const { from, to } = requested(request);
  socket.write(head(from, to));
  socket.write(data.subarray(from, to + 1));
}

describe('the engine over the raw reader (issue 17)', () => {
  let server: Scripted | undefined;
  let dir: { path: string; remove(): Promise<void> };
  let http: HttpClient;
  beforeEach(async () => {
    dir = await tempDir();
    http = testClient();
  });
  afterEach(async () => {
    await http.close();
    await server?.close();
    server = undefined;
    await dir.remove();
  });

  const fetchOne = (path = '/blob', connections = 1) =>
    fetchBlobs([blobSpec(dir.path, hex, SIZE, `${server!.url}${path}`)], engineOptions(http, connections));

  it('resumes a body that ended short of its length, and the digest holds', async () => {
    server = await scripted((request, n, socket) => {
      if (n > 1) return serve(request, socket);
      const { from, to } = requested(request);
      socket.write(head(from, to));
      socket.end(data.subarray(from, from + 100_000)); // then the server closes
    });
    const [result] = await fetchOne();
    expect(sha256Hex(await readFile(result!.target))).toBe(hex);
    expect(server.requests.map((r) => requested(r).from)).toEqual([0, 100_000]);
  });

  it('keeps the body and drops the connection when bytes follow it', async () => {
    server = await scripted((request, _n, socket) => {
      const { from, to } = requested(request);
      socket.write(head(from, to));
      socket.write(Buffer.concat([data.subarray(from, to + 1), Buffer.from('HTTP/1.1 200 OK\r\n\r\njunk')]));
    });
    const blobs = [0, 1].map((i) => ({
      ...blobSpec(dir.path, hex, SIZE, `${server!.url}/blob`),
      target: join(dir.path, 'files', `${i}.bin`),
    }));
    for (const blob of blobs) await fetchBlobs([blob], engineOptions(http, 1));
    for (const blob of blobs) expect(sha256Hex(await readFile(blob.target))).toBe(hex);
    expect([server.requests.length, server.connections()]).toEqual([2, 2]);
  });

  it('carries several blobs one after another over one kept connection', async () => {
    server = await scripted((request, _n, socket) => serve(request, socket));
    const blobs = [0, 1, 2].map((i) => ({
      ...blobSpec(dir.path, hex, SIZE, `${server!.url}/blob`),
      target: join(dir.path, 'files', `${i}.bin`),
    }));
    for (const blob of blobs) await fetchBlobs([blob], engineOptions(http, 1));
    for (const blob of blobs) expect(sha256Hex(await readFile(blob.target))).toBe(hex);
    expect([server.requests.length, server.connections()]).toEqual([3, 1]);
  });

  it('refuses a Content-Range that is not the range asked for, writing nothing', async () => {
    server = await scripted((request, _n, socket) => {
      const { from, to } = requested(request);
      socket.write(
        `HTTP/1.1 206 Partial Content\r\nContent-Length: ${to - from + 1}\r\nContent-Range: bytes ${from + 1}-${to + 1}/${SIZE}\r\n\r\n`,
      );
      socket.write(data.subarray(from + 1, to + 2));
    });
    const [blob] = [blobSpec(dir.path, hex, SIZE, `${server.url}/blob`)];
    const error = await fetchBlobs([blob!], engineOptions(http, 1)).catch((e: unknown) => e);
    expect(isModelPullError(error, 'ERR_RETRIES_EXHAUSTED')).toBe(true);
    expect((error as Error).message).toBe(
      `test blob: giving up after 5 failed attempts: ${new URL(server.url).host} answered Content-Range "bytes 1-${SIZE}/${SIZE}" to a request for bytes from 0`,
    );
    expect(server.requests).toHaveLength(5);
    await expect(readFile(blob!.target)).rejects.toThrow('ENOENT');
  });

  it('reads a chunked 206 as a stream, and follows a redirect', async () => {
    server = await scripted((request, _n, socket) => {
      if (request.startsWith('GET /moved')) {
        socket.write('HTTP/1.1 302 Found\r\nLocation: /blob\r\nContent-Length: 5\r\n\r\nmoved');
        return;
      }
      const { from, to } = requested(request);
      socket.write(
        `HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\nContent-Range: bytes ${from}-${to}/${SIZE}\r\n\r\n`,
      );
      for (let at = from; at <= to; at += 70_000) {
        const piece = data.subarray(at, Math.min(to + 1, at + 70_000));
        socket.write(`${piece.length.toString(16)}\r\n`);
        socket.write(piece);
        socket.write('\r\n');
      }
      socket.write('0\r\n\r\n');
    });
    const [result] = await fetchOne('/moved');
    expect(sha256Hex(await readFile(result!.target))).toBe(hex);
    expect(server.requests.map((r) => r.split('\r\n')[0])).toEqual([
      'GET /moved HTTP/1.1',
      'GET /blob HTTP/1.1',
    ]);
    // The redirect's body was read to its length, so its connection carried the next request.
    expect(server.connections()).toBe(1);
  });
});

describe('the engine over the raw reader on https (issue 17)', () => {
  let server: Scripted | undefined;
  let dir: { path: string; remove(): Promise<void> };
  let cert: { key: string; cert: string };
  let http: HttpClient;
  beforeAll(async () => {
    dir = await tempDir();
    cert = selfSigned(dir.path);
  });
  afterAll(() => dir.remove());
  beforeEach(() => {
    http = testClient({ extraCa: cert.cert });
  });
  afterEach(async () => {
    await http.close();
    await server?.close();
    server = undefined;
  });

  it('writes the bytes, digest checked, with every range read by the raw reader over TLS', async () => {
    server = await scripted((request, _n, socket) => serve(request, socket), {
      tls: { ...cert, ALPNProtocols: ['http/1.1'] },
    });
    const [result] = await fetchBlobs(
      [blobSpec(join(dir.path, 'a'), hex, SIZE, `${server.url}/blob`)],
      engineOptions(http, 4),
    );
    expect(sha256Hex(await readFile(result!.target))).toBe(hex);
    // The raw reader's request heads (lower-case host first; node:http sends "Host"), over TLS
    // connections that agreed on http/1.1 (node:https offers no ALPN).
    expect(server.requests.length).toBeGreaterThan(1);
    for (const request of server.requests) expect(request.split('\r\n')[1]).toMatch(/^host: /);
    expect(server.sessions.length).toBe(server.connections());
    for (const session of server.sessions)
      expect(session).toEqual({ tls: true, alpn: 'http/1.1', servername: false });
  });

  it('resumes a body that ended short over TLS, and the digest holds', async () => {
    server = await scripted(
      (request, n, socket) => {
        if (n > 1) return serve(request, socket);
        const { from, to } = requested(request);
        socket.write(head(from, to));
        socket.end(data.subarray(from, from + 100_000));
      },
      { tls: cert },
    );
    const [result] = await fetchBlobs(
      [blobSpec(join(dir.path, 'b'), hex, SIZE, `${server.url}/blob`)],
      engineOptions(http, 1),
    );
    expect(sha256Hex(await readFile(result!.target))).toBe(hex);
    expect(server.requests.map((r) => requested(r).from)).toEqual([0, 100_000]);
    expect(server.connections()).toBe(2);
  });
});

describe('writeRawBody', () => {
  let server: Scripted | undefined;
  let transport: RawTransport;
  let dir: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    dir = await tempDir();
    // Small reads, so that the body comes in many.
    transport = new RawTransport({ connections: 2, stallTimeoutMs: 5000, bufferBytes: 4096 });
  });
  afterEach(async () => {
    transport.close();
    await server?.close();
    await dir.remove();
  });

  it('stops where a thief moved the end mid-body, and closes that connection', async () => {
    server = await scripted((request, _n, socket) => serve(request, socket));
    const answer = await transport.send(new URL(`${server.url}/blob`), { range: 'bytes=0-' });
    const file = await open(join(dir.path, 'data'), 'w+');
    const seg: Segment = { start: 0, pos: 0, end: SIZE, taken: true, rate: 0 };
    const landed: number[] = [];
    try {
      await writeRawBody(
        answer.body,
        file.fd,
        {
          file,
          segment: seg,
          bodyEnd: SIZE,
          bodyError: (error) => error as Error,
          landed: (offset, bytes) => {
            landed.push(offset);
            // The thief takes everything from 1000 bytes past the first read, as it lands.
            if (landed.length === 1) seg.end = bytes.length + 1000;
            expect(bytes.length).toBeGreaterThan(0);
          },
        },
        () => undefined,
      );
    } finally {
      await file.close();
    }
    // The cut fell inside a later read (reads after the head's are at most 4 KiB here).
    expect(seg.pos).toBe(seg.end);
    expect(seg.end).toBeLessThan(SIZE);
    expect(landed.length).toBeGreaterThan(1);
    expect(landed[0]).toBe(0);
    const written = await readFile(join(dir.path, 'data'));
    expect(written.subarray(0, seg.pos).equals(data.subarray(0, seg.pos))).toBe(true);
    // The rest of the body was in flight: that connection is gone, the next request opens one.
    const next = await transport.send(new URL(`${server.url}/blob`), { range: 'bytes=0-9' });
    next.body.resume();
    await new Promise((resolve) => next.body.once('end', resolve));
    expect(server.connections()).toBe(2);
  });
  it('splits a read where progress is to be recorded, so a kill loses no more than the interval', async () => {
    server = await scripted((request, _n, socket) => serve(request, socket));
    // Reads of up to 64 KiB here, records every 1000 bytes.
    transport.close();
    transport = new RawTransport({ connections: 2, stallTimeoutMs: 5000, bufferBytes: 64 * 1024 });
    const answer = await transport.send(new URL(`${server.url}/blob`), { range: 'bytes=0-' });
    const file = await open(join(dir.path, 'data'), 'w+');
    const seg: Segment = { start: 0, pos: 0, end: SIZE, taken: true, rate: 0 };
    const pieces: [number, number][] = [];
    try {
      await writeRawBody(
        answer.body,
        file.fd,
        {
          file,
          segment: seg,
          bodyEnd: SIZE,
          bodyError: (error) => error as Error,
          untilRecord: () => 1000 - (seg.pos % 1000),
          landed: (offset, bytes) => {
            pieces.push([offset, offset + bytes.length]);
          },
        },
        () => undefined,
      );
    } finally {
      await file.close();
    }
    // No piece lands across a record point (a piece may end sooner, where its read ends).
    expect(pieces.at(-1)![1]).toBe(SIZE);
    expect(pieces.filter(([from, to]) => Math.floor(from / 1000) !== Math.floor((to - 1) / 1000))).toEqual(
      [],
    );
    expect((await readFile(join(dir.path, 'data'))).equals(data)).toBe(true);
  });
});
