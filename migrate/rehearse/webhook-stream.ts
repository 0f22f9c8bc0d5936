/**
 * The rehearsal's payment provider and new app, for webhooks: a sender that posts signed events
 * (HMAC over the raw body, as Stripe-like providers do) to the recorder while the cutover runs, and
 * a receiver standing in for the new app that accepts a replayed event only if its signature still
 * verifies, counting each idempotency key once.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const SIGNATURE_HEADER = 'x-provider-signature';

export class WebhookStream {
  readonly #recorderUrl: string;
  readonly #key = randomBytes(16);
  #sender: Promise<void> | undefined;
  #running = false;
  #recorded = 0;
  readonly #delivered = new Set<string>();
  #badSignatures = 0;
  #server: Server | undefined;
  receiverUrl = '';

  constructor(recorderUrl: string) {
    this.#recorderUrl = recorderUrl;
  }

  #sign(body: Buffer): string {
    return createHmac('sha256', this.#key).update(body).digest('hex');
  }

  async startReceiver(): Promise<void> {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const key = req.headers['idempotency-key'];
        if (req.headers[SIGNATURE_HEADER] !== this.#sign(body) || typeof key !== 'string') {
          this.#badSignatures += 1;
          res.writeHead(400).end();
          return;
        }
        this.#delivered.add(key);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.receiverUrl = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Starts posting events (about 50 a second) until stopped. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#sender = (async () => {
      let n = 0;
      while (this.#running) {
        n += 1;
        // Binary-safe: every event carries bytes that are not valid UTF-8.
        const body = Buffer.concat([
          Buffer.from(JSON.stringify({ id: `evt_${n}`, type: 'invoice.paid', amount: n * 100 })),
          Buffer.from([0xff, 0xfe, n % 256]),
        ]);
        try {
          const response = await fetch(`${this.#recorderUrl}/webhooks/provider?attempt=1`, {
            method: 'POST',
            headers: { 'content-type': 'application/octet-stream', [SIGNATURE_HEADER]: this.#sign(body) },
            body,
          });
          if (response.ok) this.#recorded += 1;
          await response.arrayBuffer();
        } catch {
          /* the provider would retry; not recorded, not counted */
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#sender;
  }

  async close(): Promise<void> {
    await this.stop();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  recorded(): number {
    return this.#recorded;
  }

  delivered(): number {
    return this.#delivered.size;
  }

  rejected(): number {
    return this.#badSignatures;
  }
}
