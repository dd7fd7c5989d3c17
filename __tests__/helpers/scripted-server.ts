import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP server that answers each request head with bytes the test scripts: what node:http
 * would never send (a head split anywhere, bytes past the body, a short body) is the point.
 */
export interface Scripted {
  readonly url: string;
  /** Request heads as received, in order. */
  readonly requests: string[];
  /** Connections accepted so far. */
  connections(): number;
  /** Connections open now. */
  open(): number;
  close(): Promise<void>;
}

export type Answer = (request: string, n: number, socket: Socket) => void;

export async function scripted(answer: Answer): Promise<Scripted> {
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let seen = '';
    socket.on('data', (data) => {
      seen += data.toString('latin1');
      for (let end = seen.indexOf('\r\n\r\n'); end >= 0; end = seen.indexOf('\r\n\r\n')) {
        const request = seen.slice(0, end);
        seen = seen.slice(end + 4);
        requests.push(request);
        answer(request, requests.length, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    connections: () => accepted,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
