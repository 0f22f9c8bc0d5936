/**
 * The "new app" for replay tests: a real node:http server that keeps every request exactly as it
 * arrived (raw header pairs, raw URL, body bytes) and checks the provider's HMAC signature the way
 * a webhook consumer would.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const SIGNING_SECRET = 'whsec_test_signing_secret';
export const SIGNATURE_HEADER = 'X-Provider-Signature';

export function sign(body: Buffer): string {
  return `sha256=${createHmac('sha256', SIGNING_SECRET).update(body).digest('hex')}`;
}

export interface Arrival {
  method: string;
  url: string;
  rawHeaders: Array<[string, string]>;
  body: Buffer;
  /** The signature header verified against the body bytes received. */
  signatureValid: boolean | null;
  idempotencyKey: string | undefined;
}

/** What to do with one arrival: answer with a status (and headers), never answer, or drop the connection. */
export type Reply = { status: number; headers?: Record<string, string> } | 'hang' | 'reset';

export interface Receiver {
  url: string;
  arrivals: Arrival[];
  /** Arrivals per idempotency key. */
  countFor(key: string): number;
  maxConcurrent: number;
  close(): Promise<void>;
}

export async function startReceiver(
  reply: (arrival: Arrival, attempt: number) => Reply | Promise<Reply> = () => ({ status: 200 }),
): Promise<Receiver> {
  const arrivals: Arrival[] = [];
  let inFlight = 0;
  const state = { maxConcurrent: 0 };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    state.maxConcurrent = Math.max(state.maxConcurrent, inFlight);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const rawHeaders: Array<[string, string]> = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) rawHeaders.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
    const signature = req.headers[SIGNATURE_HEADER.toLowerCase()];
    const key = req.headers['idempotency-key'];
    const arrival: Arrival = {
      method: req.method ?? '',
      url: req.url ?? '',
      rawHeaders,
      body,
      signatureValid: typeof signature === 'string' ? safeEqual(signature, sign(body)) : null,
      idempotencyKey: typeof key === 'string' ? key : undefined,
    };
    arrivals.push(arrival);
    const attempt = arrivals.filter((a) => a.idempotencyKey === arrival.idempotencyKey).length;
    const answer = await reply(arrival, attempt);
    inFlight--;
    if (answer === 'hang') return;
    if (answer === 'reset') {
      req.socket.destroy();
      return;
    }
    res.writeHead(answer.status, answer.headers).end('response body the replay must not log');
  };
  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrivals,
    countFor: (key) => arrivals.filter((a) => a.idempotencyKey === key).length,
    get maxConcurrent() {
      return state.maxConcurrent;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
