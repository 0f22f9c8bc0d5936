/**
 * The application, for the rehearsal's user-facing measurement: a small HTTP server that makes one
 * app write per request through its own pooler, as the legacy app (on the old machines, behind the
 * legacy PgBouncer) or the new app (on EKS, behind the cluster's PgBouncer) does. The rehearsal's
 * DNS-following client reaches it by the app's name. It answers 503 while it is not serving: the new
 * app before its pods are up, the legacy app once its stop command has run (the marker file).
 */
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { TRANSACTION } from '../rehearse/workload.ts';

export interface AppStandinOptions {
  /** `legacy` or `new`: answered in every response, so the client's log says which app served it. */
  name: string;
  /** A loopback address of its own (127.0.0.1, 127.0.0.2): what the app's DNS record points at. */
  address: string;
  /** 0: any free port. */
  port: number;
  /** Through this app's pooler, as the app role. */
  connectionString: string;
  customers: number;
  /** Whether it answers at all (a function: asked per request, e.g. whether its pods are ready). */
  serving: boolean | (() => boolean);
  /** When this file exists the app is stopped (what the runbook's stop command creates). */
  stoppedMarker?: string;
  /** One app write, returning the id it committed; the rehearsal's order transaction by default. */
  write?: (pool: pg.Pool, n: number) => Promise<number>;
}

const orderWrite = (customers: number) => async (pool: pg.Pool, n: number) =>
  Number((await pool.query<{ id: string }>(TRANSACTION, [1 + (n % customers), 100 + (n % 9000)])).rows[0]!.id);

export interface AppStandin {
  name: string;
  address: string;
  port: number;
  setServing(serving: boolean): void;
  /** Writes this app committed. */
  readonly served: number;
  /** Resolves once no request is in flight (after setServing(false): what a scale-down waits for). */
  drain(): Promise<void>;
  stop(): Promise<void>;
}

export async function startAppStandin(options: AppStandinOptions): Promise<AppStandin> {
  let serving = options.serving;
  let served = 0;
  let inFlight = 0;
  let n = 0;
  const write = options.write ?? orderWrite(options.customers);
  const pool = new pg.Pool({ connectionString: options.connectionString, max: 4, application_name: `rehearsal-${options.name}-app` });
  // A pooler that is restarting drops idle connections; the next request gets a fresh one.
  pool.on('error', () => {});
  const reply = (res: ServerResponse, status: number, body: object) =>
    res.writeHead(status, { 'content-type': 'application/json', connection: 'close' }).end(JSON.stringify({ app: options.name, ...body }));
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    if (req.method !== 'POST' || req.url !== '/write') return reply(res, 404, { error: 'POST /write' });
    if (!(typeof serving === 'function' ? serving() : serving) || (options.stoppedMarker && existsSync(options.stoppedMarker)))
      return reply(res, 503, { error: 'not serving' });
    n += 1;
    inFlight += 1;
    try {
      const id = await write(pool, n);
      served += 1;
      reply(res, 200, { id });
    } catch (error) {
      reply(res, 503, { error: (error as Error).message });
    } finally {
      inFlight -= 1;
    }
  };
  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.address, resolve);
  });
  return {
    name: options.name,
    address: options.address,
    port: (server.address() as AddressInfo).port,
    setServing: (value) => {
      serving = value;
    },
    get served() {
      return served;
    },
    async drain() {
      while (inFlight > 0) await new Promise((r) => setTimeout(r, 5));
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.end().catch(() => {});
    },
  };
}
