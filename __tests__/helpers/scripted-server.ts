import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { createSecureContext, type SecureContextOptions, TLSSocket } from 'node:tls';

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
  /** Each connection as it began: over TLS or not, the ALPN protocol chosen, the SNI name sent. */
  readonly sessions: Session[];
  close(): Promise<void>;
}

export interface Session {
  readonly tls: boolean;
  readonly alpn: string | false;
  readonly servername: string | false;
}

export interface ScriptedOptions {
  /** Speak TLS with this key and certificate (ALPNProtocols too, when given). */
  readonly tls?: SecureContextOptions & { readonly ALPNProtocols?: string[] };
  /** With `tls`: plain http as well on the same port (a connection opening with a TLS record is TLS). */
  readonly plainToo?: boolean;
}

export type Answer = (request: string, n: number, socket: Socket) => void;

export async function scripted(answer: Answer, options: ScriptedOptions = {}): Promise<Scripted> {
  const requests: string[] = [];
  const sessions: Session[] = [];
  const sockets = new Set<Socket>();
  let accepted = 0;
  const tls = options.tls;
  const context = tls ? createSecureContext(tls) : undefined;
  /** The TLS side of a connection whose first bytes (`first`) were read already. */
  const secure = (socket: Socket, first?: Buffer): void => {
    let inner: Socket | Duplex = socket;
    if (first) {
      // A net.Socket would be wrapped at its handle, losing the bytes read: hand TLS a stream.
      const readable = new PassThrough();
      readable.write(first);
      socket.pipe(readable);
      inner = Duplex.from({ readable, writable: socket });
    }
    const wrapped = new TLSSocket(inner as Socket, {
      isServer: true,
      secureContext: context!,
      ...(tls?.ALPNProtocols ? { ALPNProtocols: tls.ALPNProtocols } : {}),
    });
    wrapped.on('error', () => socket.destroy());
    wrapped.once('secure', () => {
      sessions.push({
        tls: true,
        alpn: wrapped.alpnProtocol ?? false,
        servername: (wrapped as TLSSocket & { servername?: string | false }).servername || false,
      });
      serve(wrapped);
    });
  };
  const serve = (socket: Socket, first?: Buffer): void => {
    if (!(socket instanceof TLSSocket)) sessions.push({ tls: false, alpn: false, servername: false });
    socket.on('error', () => undefined);
    let seen = '';
    const onData = (data: Buffer): void => {
      seen += data.toString('latin1');
      for (let end = seen.indexOf('\r\n\r\n'); end >= 0; end = seen.indexOf('\r\n\r\n')) {
        const request = seen.slice(0, end);
        seen = seen.slice(end + 4);
        requests.push(request);
        answer(request, requests.length, socket);
      }
    };
    socket.on('data', onData);
    if (first) onData(first);
  };
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (!tls) return serve(socket);
    if (!options.plainToo) return secure(socket);
    socket.once('data', (first: Buffer) => {
      // 0x16: a TLS handshake record.
      if (first[0] === 0x16) return secure(socket, first);
      serve(socket, first);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls && !options.plainToo ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    sessions,
    connections: () => accepted,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
