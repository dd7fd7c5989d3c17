import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseRange, startServer, type TestServer } from './http.js';

/**
 * Serves one blob with HTTP ranges and injectable faults. A fault hook sees each request
 * (with its 1-based number) and may answer instead, or shape how the body is sent.
 */
export interface BodyPlan {
  /** Reset the connection after sending this many body bytes. */
  resetAfter?: number;
  /** Stop sending (keep the socket open) after this many body bytes. */
  stallAfter?: number;
  /** Flip the byte at this absolute offset. */
  corruptAt?: number;
  /** Send the whole body with 200, ignoring Range. */
  ignoreRange?: boolean;
  /** Cap this response's rate, bytes per second. */
  rate?: number;
  /** Pause once exactly this many body bytes are sent, calling `held`, until `release` settles. */
  hold?: { readonly after: number; readonly held?: () => void; readonly release: Promise<void> };
}

export type Fault = (req: IncomingMessage, res: ServerResponse, n: number) => boolean | BodyPlan | undefined;

export interface BlobServer extends TestServer {
  setFault(fault: Fault | undefined): void;
  /** Body bytes sent so far. */
  sentBytes(): number;
}

export async function startBlobServer(data: Buffer, fault?: Fault): Promise<BlobServer> {
  let current = fault;
  let count = 0;
  let sent = 0;
  const server = await startServer(async (req, res) => {
    count++;
    const plan = current?.(req, res, count);
    if (plan === true) return; // the fault answered
    const body = plan && typeof plan === 'object' ? plan : {};
    const range = body.ignoreRange ? undefined : parseRange(req.headers.range, data.length);
    if (req.headers.range && !body.ignoreRange && !range) {
      res.writeHead(416, { 'content-range': `bytes */${data.length}` });
      res.end();
      return;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? data.length - 1;
    const headers: Record<string, string | number> = {
      'accept-ranges': 'bytes',
      'content-length': end - start + 1,
      'content-type': 'application/octet-stream',
    };
    if (range) headers['content-range'] = `bytes ${start}-${end}/${data.length}`;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD') return void res.end();
    await sendBody(res, data, start, end + 1, body, (n) => {
      sent += n;
    });
  });
  return {
    ...server,
    setFault: (f) => {
      current = f;
      count = 0;
    },
    sentBytes: () => sent,
  };
}

async function sendBody(
  res: ServerResponse,
  data: Buffer,
  start: number,
  end: number,
  plan: BodyPlan,
  count: (n: number) => void,
): Promise<void> {
  const chunk = 64 * 1024;
  const began = Date.now();
  let offset = start;
  let held = false;
  while (offset < end) {
    if (res.destroyed) return;
    let size = Math.min(chunk, end - offset);
    const sentSoFar = offset - start;
    if (plan.resetAfter !== undefined && sentSoFar + size > plan.resetAfter)
      size = plan.resetAfter - sentSoFar;
    if (plan.stallAfter !== undefined && sentSoFar + size > plan.stallAfter)
      size = plan.stallAfter - sentSoFar;
    if (plan.hold && !held && sentSoFar + size > plan.hold.after)
      size = Math.max(0, plan.hold.after - sentSoFar);
    if (size > 0) {
      let piece = data.subarray(offset, offset + size);
      if (plan.corruptAt !== undefined && plan.corruptAt >= offset && plan.corruptAt < offset + size) {
        piece = Buffer.from(piece);
        piece[plan.corruptAt - offset] = piece[plan.corruptAt - offset]! ^ 0xff;
      }
      const ok = res.write(piece);
      count(size);
      offset += size;
      if (!ok) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off('drain', done).off('close', done);
            resolve();
          };
          res.on('drain', done).on('close', done);
        });
      }
    }
    if (plan.resetAfter !== undefined && offset - start >= plan.resetAfter) {
      res.socket?.destroy();
      return;
    }
    if (plan.stallAfter !== undefined && offset - start >= plan.stallAfter) {
      return; // keep the socket open and silent; the client must time out
    }
    if (plan.hold && offset - start >= plan.hold.after && !held) {
      held = true;
      plan.hold.held?.();
      await new Promise<void>((resolve) => {
        res.once('close', resolve);
        void plan.hold!.release.then(resolve);
      });
    }
    if (plan.rate) {
      const due = began + ((offset - start) / plan.rate) * 1000;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
  res.end();
}
