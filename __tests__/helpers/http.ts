import { mkdtemp, rm } from 'node:fs/promises';
import {
  type ClientRequest,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
}

export interface TestServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly origin: string;
  readonly requests: RecordedRequest[];
  readonly server: Server;
  close(): Promise<void>;
}

/** A real node:http server on loopback, port 0, recording every request; close() kills sockets too. */
export async function startServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>,
): Promise<TestServer> {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers });
    Promise.resolve(handler(req, res)).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(error));
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    origin: url,
    requests,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A fresh temporary folder and its remover. */
export async function tempDir(
  prefix = 'model-pull-test-',
): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Parses `bytes=a-b` / `bytes=a-` against a size; undefined when absent or unsatisfiable. */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | undefined {
  const m = header ? /^bytes=(\d+)-(\d*)$/.exec(header) : null;
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
  if (start > end || start >= size) return undefined;
  return { start, end };
}

/**
 * Opens `req` (method, path, headers) on to `target` and pipes the answer back into `res`;
 * `done` runs when that answer ends or the upstream fails. The request body is the caller's to
 * send (`req.pipe(upstream)`, or a cut part of it), so a test proxy can pass, cut or delay it.
 */
export function forward(
  target: string,
  req: IncomingMessage,
  res: ServerResponse,
  done: () => void,
): ClientRequest {
  const upstream = httpRequest(
    new URL(req.url ?? '/', target),
    { method: req.method, headers: req.headers, agent: false },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
      answer.on('end', done);
    },
  );
  upstream.on('error', () => done());
  return upstream;
}

/** Passes `req` on to `target`, body and all, and its answer back. */
export function relay(target: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    req.pipe(forward(target, req, res, resolve));
  });
}
