/**
 * The application of the PgBouncer tests: a `ledger` table in database `app`, and clients that
 * commit small transactions to it through PgBouncer while a test pauses, switches and resumes it.
 */
import pg from 'pg';
import type { PostgresServer } from '../../migrate/local/postgres-server.ts';

export const LEDGER = 'create table ledger (id bigint primary key, client int not null)';

export interface Commit {
  id: number;
  /** The server that answered (`inet_server_port()`). */
  port: number;
  latencyMs: number;
}

/**
 * Client `index` committing through `url` until `stop.now` (at most 20,000 transactions). Each
 * transaction stays open `holdSeconds`, so a PAUSE has something in flight to wait for. A failed
 * transaction is recorded in `errors`, never thrown.
 */
export function startLedgerClient(url: string, index: number, stop: { now: boolean }, holdSeconds: number) {
  const log: Commit[] = [];
  const errors: string[] = [];
  const done = (async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      for (let n = 0; n < 20_000 && !stop.now; n++) {
        const id = index * 1_000_000 + n;
        const started = performance.now();
        try {
          await client.query('begin');
          const { rows } = await client.query(`insert into ledger values (${id}, ${index}) returning inet_server_port() as port`);
          await client.query(`select pg_sleep(${holdSeconds})`);
          await client.query('commit');
          log.push({ id, port: Number(rows[0].port), latencyMs: performance.now() - started });
        } catch (error) {
          errors.push(`client ${index} transaction ${id}: ${(error as Error).message}`);
          await client.query('rollback').catch(() => {});
        }
      }
    } finally {
      await client.end();
    }
  })();
  return { log, errors, done };
}

export async function until(condition: () => boolean, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The ids committed on one server. */
export async function ledgerIds(server: PostgresServer): Promise<Set<number>> {
  const c = await server.client('app');
  const { rows } = await c.query('select id from ledger');
  await c.end();
  return new Set(rows.map((r) => Number(r.id)));
}
