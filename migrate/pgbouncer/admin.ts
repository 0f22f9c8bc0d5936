/**
 * The PgBouncer admin console (the virtual `pgbouncer` database). It speaks only the simple query
 * protocol, which is what node-postgres uses for a query without parameters, so every command here
 * is a plain string: never pass values as parameters.
 */
import pg from 'pg';
import { z } from 'zod';
import { type StepContext, StepError } from '../core/step.ts';
import type { Console } from './consoles.ts';

/** A [databases] entry name as the console's parser accepts it unquoted. */
export const entryNameSchema = z.string().regex(/^[A-Za-z0-9_.-]+$/, 'must be a PgBouncer [databases] entry name (letters, digits, _ . -)');

export interface DatabaseEntry {
  name: string;
  host: string | null;
  port: number;
  /** Server-side database name. */
  database: string;
  paused: boolean;
}

export interface PoolState {
  /** Clients running a transaction on a server connection. */
  clientsActive: number;
  /** Clients held, waiting for a server connection (all of them while paused). */
  clientsWaiting: number;
  serversActive: number;
  /** Server connections of any state (active, idle, used, tested, login). */
  servers: number;
  /** How long the oldest waiting client has waited. */
  longestWaitMs: number;
}

/** A new connection to `console`; the caller ends it. */
export async function connectAdmin(console: Console): Promise<pg.Client> {
  const url = await console.url();
  const client = new pg.Client({ connectionString: url.reveal(), connectionTimeoutMillis: 10_000 });
  // A console connection dropped by PgBouncer (e.g. restarted) must not crash the CLI.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    const message = error instanceof Error ? error.message : String(error);
    throw new StepError(`Unable to connect to the PgBouncer admin console of ${console.label}: ${message}`, [
      {
        severity: 'error',
        object: console.label,
        message,
        fix: 'check the console is reachable from here (for pods: the port-forward permission, pods/portforward) and the user of outputs.pgbouncer.adminUrlRef is in admin_users with that password',
      },
    ]);
  }
  return client;
}

/** The connection to `console` shared by the run's steps. */
export function sharedAdmin(ctx: StepContext, console: Console): Promise<pg.Client> {
  return ctx.resource(
    `pgbouncer:admin:${console.label}`,
    () => connectAdmin(console),
    (client) => client.end(),
  );
}

export async function adminCommand(client: pg.Client, command: string): Promise<pg.QueryResult> {
  try {
    return await client.query(command);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new StepError(`Unable to run '${command}' on the PgBouncer admin console: ${message}`, [
      { severity: 'error', object: `pgbouncer console`, message },
    ]);
  }
}

export async function databaseEntry(client: pg.Client, name: string): Promise<DatabaseEntry> {
  const { rows } = await adminCommand(client, 'SHOW DATABASES');
  const row = rows.find((r) => r.name === name);
  if (!row) {
    throw new StepError(`Unable to find database '${name}' in PgBouncer`, [
      {
        severity: 'error',
        object: `pgbouncer database ${name}`,
        message: `no [databases] entry '${name}' (entries: ${
          rows
            .map((r) => r.name)
            .filter((n) => n !== 'pgbouncer')
            .join(', ') || 'none'
        })`,
        fix: 'pass with.database: the entry name clients connect to (defaults to outputs.database.name)',
      },
    ]);
  }
  return { name, host: row.host ?? null, port: Number(row.port), database: String(row.database), paused: Number(row.paused) === 1 };
}

export async function poolState(client: pg.Client, name: string): Promise<PoolState> {
  const { rows } = await adminCommand(client, 'SHOW POOLS');
  const pools = rows.filter((r) => r.database === name);
  const sum = (key: string) => pools.reduce((n, r) => n + Number(r[key] ?? 0), 0);
  return {
    clientsActive: sum('cl_active'),
    clientsWaiting: sum('cl_waiting'),
    serversActive: sum('sv_active'),
    servers: sum('sv_active') + sum('sv_idle') + sum('sv_used') + sum('sv_tested') + sum('sv_login'),
    longestWaitMs: Math.max(0, ...pools.map((r) => Number(r.maxwait ?? 0) * 1000 + Math.round(Number(r.maxwait_us ?? 0) / 1000))),
  };
}

export async function configValue(client: pg.Client, key: string): Promise<string | undefined> {
  const { rows } = await adminCommand(client, 'SHOW CONFIG');
  return rows.find((r) => r.key === key)?.value;
}

export interface ServerConnection {
  state: string;
  port: number;
  /** Marked to close when released (after RELOAD changed the entry, or RECONNECT). */
  closeNeeded: boolean;
}

export async function serverConnections(client: pg.Client, name: string): Promise<ServerConnection[]> {
  const { rows } = await adminCommand(client, 'SHOW SERVERS');
  return rows
    .filter((r) => r.database === name)
    .map((r) => ({ state: String(r.state), port: Number(r.port), closeNeeded: Number(r.close_needed) === 1 }));
}

/**
 * Sends a console command that PgBouncer answers only once it is done (PAUSE) on its own
 * connection, then judges completion by polling `done()` rather than by the answer: PgBouncer 1.18
 * answers a PAUSE at once, tagged WAIT_CLOSE, when any WAIT_CLOSE was issued before on the
 * console (seen in test/pgbouncer). Returns false when the deadline passes first.
 */
export async function commandThenPoll(
  ctx: StepContext,
  console: Console,
  command: string,
  options: { deadline: number; pollMs: number; done: () => Promise<boolean> },
): Promise<boolean> {
  const waiter = await connectAdmin(console);
  let failure: unknown;
  const pending = waiter.query(command).catch((error: unknown) => {
    failure = error;
  });
  try {
    for (;;) {
      if (failure) throw failure;
      if (await options.done()) return true;
      if (ctx.now() >= options.deadline) return false;
      await Promise.race([pending, ctx.sleep(Math.max(0, Math.min(options.pollMs, options.deadline - ctx.now())))]);
      if (failure) throw failure;
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new StepError(`Unable to run '${command}' on the PgBouncer admin console of ${console.label}: ${message}`, [
      { severity: 'error', object: console.label, message },
    ]);
  } finally {
    // Leaving does not cancel a pending PAUSE: the database stays paused until RESUME.
    await waiter.end().catch(() => {});
  }
}
