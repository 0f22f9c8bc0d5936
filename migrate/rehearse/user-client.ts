/**
 * A user of the app, for the window users actually see: it resolves the app's name through DNS
 * (the rehearsal's stand-in), keeps each answer exactly as long as its TTL says, opens a new
 * connection per request (so a moved record takes effect when the cached answer expires, not
 * later), and asks the app to write. Its log of successes and failures, with the app that served
 * each one, is the measurement: the longest gap between successful writes across the whole D-day.
 */
import { Resolver } from 'node:dns/promises';
import { request } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { longestWriteGap } from './workload.ts';

export interface UserClientOptions {
  /** The app's DNS name (outputs.dns.records.app.name). */
  name: string;
  /** The DNS server to ask (`127.0.0.1:<port>`). */
  dnsServer: string;
  /** The port every app instance listens on. */
  port: number;
  thinkMs: number;
  /** Per request, so a paused pooler holding the request is seen as a slow write, not a failure. */
  timeoutMs: number;
}

export interface UserWrite {
  at: number;
  ok: boolean;
  /** The app that answered (`legacy`, `new`), or the address when it did not answer. */
  app: string;
  id?: number;
  error?: string;
}

export class UserClient {
  readonly #options: UserClientOptions;
  readonly #resolver = new Resolver({ timeout: 1000, tries: 2 });
  readonly log: UserWrite[] = [];
  #cached: { address: string; until: number } | undefined;
  #running = true;
  #loop: Promise<void> | undefined;

  constructor(options: UserClientOptions) {
    this.#options = options;
    this.#resolver.setServers([options.dnsServer]);
  }

  start(): this {
    this.#loop = this.#run();
    return this;
  }

  async stop(): Promise<UserWrite[]> {
    this.#running = false;
    await this.#loop;
    return this.log;
  }

  /** Ids the apps reported committed: each must be in the database that ends up primary. */
  committedIds(): number[] {
    return this.log.filter((w) => w.ok && w.id !== undefined).map((w) => w.id!);
  }

  async #address(): Promise<string> {
    const now = Date.now();
    if (this.#cached && now < this.#cached.until) return this.#cached.address;
    const [first] = await this.#resolver.resolve4(this.#options.name, { ttl: true });
    if (!first) throw new Error(`${this.#options.name} has no A record`);
    this.#cached = { address: first.address, until: now + first.ttl * 1000 };
    return first.address;
  }

  async #run(): Promise<void> {
    while (this.#running) {
      let app = 'dns';
      try {
        const address = await this.#address();
        app = address;
        const answer = await this.#write(address);
        app = answer.app ?? address;
        if (answer.status === 200 && typeof answer.id === 'number') this.log.push({ at: Date.now(), ok: true, app, id: answer.id });
        else this.log.push({ at: Date.now(), ok: false, app, error: `HTTP ${answer.status}: ${answer.error ?? ''}` });
      } catch (error) {
        this.log.push({ at: Date.now(), ok: false, app, error: (error as Error).message });
      }
      await delay(this.#options.thinkMs);
    }
  }

  #write(address: string): Promise<{ status: number; app?: string; id?: number; error?: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        { host: address, port: this.#options.port, method: 'POST', path: '/write', agent: false, timeout: this.#options.timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            try {
              resolve({ status: res.statusCode ?? 0, ...JSON.parse(Buffer.concat(chunks).toString('utf8')) });
            } catch {
              resolve({ status: res.statusCode ?? 0, error: 'unreadable answer' });
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.#options.timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  }
}

/** The longest stretch between successful writes in [from, to], and how many requests failed inside it. */
export function longestUserGap(log: UserWrite[], from: number, to: number): { ms: number; start: number; end: number; failures: number } {
  const gap = longestWriteGap(
    log.filter((w) => w.ok).map((w) => w.at),
    from,
    to,
  );
  return { ...gap, failures: log.filter((w) => !w.ok && w.at >= gap.start && w.at <= gap.end).length };
}
