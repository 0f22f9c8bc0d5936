/**
 * Local stand-in for the stack's webhook recorder (API Gateway → SQS FIFO), for the rehearsal and
 * tests: an HTTP server that accepts any method and path and durably stores each request in a
 * file-backed queue before answering 200, the way the recorder answers only after SendMessage
 * succeeded. `webhooks.replay` reads the same directory through the `local:` queue URL.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { LocalQueueStore } from '../webhooks/local-queue.ts';
import type { WebhookOutputs } from '../webhooks/open-queue.ts';

/** Bodies above this are refused with 413, as the real recorder refuses what SQS cannot hold. */
export const STANDIN_MAX_BODY_BYTES = 192 * 1024;

export interface WebhookStandin {
  /** `http://127.0.0.1:<port>`: where the rehearsal's webhook stream posts. */
  url: string;
  queue: LocalQueueStore;
  deadLetter: LocalQueueStore;
  /** The `webhooks` stack outputs that point the CLI at this stand-in. */
  outputs: WebhookOutputs;
  stop(): Promise<void>;
}

export async function startWebhookStandin(options: { dir: string; now?: () => number }): Promise<WebhookStandin> {
  const now = options.now ?? Date.now;
  const queue = new LocalQueueStore(join(options.dir, 'queue'));
  const deadLetter = new LocalQueueStore(join(options.dir, 'dead-letter'));
  const server = createServer(async (req, res) => {
    try {
      const body = await readBody(req);
      if (body === null) {
        res.writeHead(413).end();
        return;
      }
      const target = req.url ?? '/';
      const queryAt = target.indexOf('?');
      const id = await queue.enqueue({
        method: req.method ?? 'GET',
        path: queryAt < 0 ? target : target.slice(0, queryAt),
        query: queryAt < 0 ? '' : target.slice(queryAt + 1),
        headers: pairs(req.rawHeaders),
        body,
        receivedAt: now(),
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ messageId: id }));
    } catch {
      // Not stored: a 5xx makes the provider retry, as it would against the real recorder.
      if (!res.headersSent) res.writeHead(503);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const arn = (name: string) => `arn:aws:sqs:local:000000000000:${name}`;
  return {
    url: `http://127.0.0.1:${port}`,
    queue,
    deadLetter,
    outputs: {
      recorderUrl: `http://127.0.0.1:${port}`,
      recorderTarget: { values: ['127.0.0.1'] },
      recorderTargetType: 'A',
      queueUrl: queue.url,
      queueArn: arn('webhook-standin.fifo'),
      deadLetterQueueUrl: deadLetter.url,
      deadLetterQueueArn: arn('webhook-standin-dead-letter.fifo'),
      retentionSeconds: 14 * 24 * 3600,
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** The body, or null once it exceeds the stand-in's limit. */
async function readBody(req: IncomingMessage): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > STANDIN_MAX_BODY_BYTES) return null;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function pairs(raw: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}
