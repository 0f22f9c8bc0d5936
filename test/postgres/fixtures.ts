/**
 * Shared by the PostgreSQL step tests: a pair of real servers with a realistic schema, an
 * application writer that keeps writing until the freeze stops it, and an exact per-table comparison.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { StackOutputs } from '../../infra/contract.ts';
import { localOutputs } from '../../migrate/local/outputs.ts';
import type { PostgresServer, PostgresServerOptions } from '../../migrate/local/postgres-server.ts';
import { type TestContext, testContext } from '../support/context.ts';
import { startServers } from '../support/servers.ts';

export const DATABASE = 'app';
export const APP_PASSWORD = 'app-writer-pw';

export interface Pair {
  source: PostgresServer;
  target: PostgresServer;
  outputs: StackOutputs;
  dir: string;
  sql(side: 'source' | 'target', text: string, values?: unknown[]): Promise<pg.QueryResult>;
  /** A step context on this pair's outputs (unless others are given), closed by `stop` before the servers stop. */
  context(options?: Omit<Parameters<typeof testContext>[0], 'outputs'> & { outputs?: StackOutputs }): TestContext;
  /** The contexts `context` made and any others to close with them, in order. */
  contexts: TestContext[];
  stop(): Promise<void>;
}

export async function startPair(options: { source?: PostgresServerOptions; target?: PostgresServerOptions } = {}): Promise<Pair> {
  const [source, target] = await startServers(
    [
      { name: 'source', ...options.source },
      { name: 'target', ...options.target },
    ],
    { database: DATABASE },
  );
  const dir = mkdtempSync(join(tmpdir(), 'migrate-pg-test-'));
  const clients = new Map<string, pg.Client>();
  const client = async (side: 'source' | 'target') => {
    let c = clients.get(side);
    if (!c) {
      c = new pg.Client({ connectionString: (side === 'source' ? source : target).url(DATABASE) });
      c.on('error', () => {});
      await c.connect();
      clients.set(side, c);
    }
    return c;
  };
  const outputs = localOutputs({ dir, source, target, database: DATABASE });
  const contexts: TestContext[] = [];
  return {
    source,
    target,
    dir,
    outputs,
    sql: async (side, text, values) => (await client(side)).query(text, values),
    contexts,
    context(options) {
      const t = testContext({ ...options, outputs: options?.outputs ?? outputs });
      contexts.push(t);
      return t;
    },
    async stop() {
      for (const t of contexts) await t.close();
      for (const c of clients.values()) await c.end().catch(() => {});
      await Promise.all([source.stop(), target.stop()]);
    },
  };
}

/** Several schemas, enums and domains, identity/serial/free sequences, jsonb, TOASTed text, a partitioned table, a table without a key. */
export const SCHEMA = `
create schema billing;
create schema crm;
create type billing.plan as enum ('trial', 'monthly', 'annual');
create domain billing.cents as bigint check (value >= 0);
create table billing.customers (
  id bigserial primary key,
  name text not null,
  plan billing.plan not null default 'trial',
  profile jsonb not null default '{}',
  notes text,
  touched int not null default 0
);
create table billing.invoices (
  id int generated always as identity primary key,
  customer_id bigint not null references billing.customers (id),
  amount billing.cents not null,
  tax billing.cents not null default 0,
  total bigint generated always as (amount + tax) stored
);
create sequence billing.invoice_number start 1000;
create sequence billing.never_used start 77;
create table crm.events (
  customer_id bigint not null,
  at timestamptz not null,
  kind text not null,
  payload jsonb,
  primary key (customer_id, at, kind)
) partition by range (at);
create table crm.events_2024 partition of crm.events for values from ('2024-01-01') to ('2025-01-01');
create table crm.events_rest partition of crm.events default;
create table crm.audit_log (message text not null, at timestamptz not null default clock_timestamp());
`;

/** Rows before replication starts; `notes` is large and incompressible enough to live out of line in TOAST. */
export const SEED = `
insert into billing.customers (name, plan, profile, notes)
  select 'customer ' || i, (array['trial','monthly','annual'])[1 + i % 3]::billing.plan,
         jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i % 7), 'nested', jsonb_build_object('x', i * 1.5)),
         (select string_agg(md5(i::text || g::text), '') from generate_series(1, 150) g)
    from generate_series(1, 300) i;
insert into billing.invoices (customer_id, amount, tax) select 1 + i % 300, i * 100, i from generate_series(1, 600) i;
insert into crm.events select 1 + i % 300, timestamptz '2024-06-01' + i * interval '1 hour', 'seed', jsonb_build_object('n', i) from generate_series(1, 400) i;
insert into crm.audit_log (message) select 'seeded ' || i from generate_series(1, 50) i;
select nextval('billing.invoice_number') from generate_series(1, 5);
`;

/** Application roles: one that writes, one that only reads; both must be frozen. */
export const ROLES = `
create role app_writer login password '${APP_PASSWORD}';
create role app_reader login password '${APP_PASSWORD}';
grant usage on schema billing, crm to app_writer, app_reader;
grant select, insert, update, delete on all tables in schema billing, crm to app_writer;
grant usage, select on all sequences in schema billing, crm to app_writer;
grant select on all tables in schema billing, crm to app_reader;
`;

/** The same roles on the target: roles are not part of a schema copy, and preflight refuses a role that would lose its grants. */
export const TARGET_ROLES = `
create role app_writer login password '${APP_PASSWORD}';
create role app_reader login password '${APP_PASSWORD}';
`;

export interface Writer {
  /** Committed write transactions. */
  readonly committed: number;
  /** Resolves when the writer stops: frozen out, asked to stop, or at its bound. */
  readonly finished: Promise<{ committed: number; stoppedBy: string }>;
  stop(): void;
}

/**
 * An application writing as app_writer: inserts, updates that leave the TOASTed column alone,
 * deletes, partitioned and key-less rows. It reconnects when its session is terminated, and stops
 * for good when the database refuses writes (the freeze) or after `maxTransactions`.
 */
export function startWriter(server: PostgresServer, maxTransactions = 5000): Writer {
  let committed = 0;
  let stopping = false;
  const run = async (): Promise<{ committed: number; stoppedBy: string }> => {
    let client: pg.Client | undefined;
    for (let i = 0; i < maxTransactions; i++) {
      if (stopping) return { committed, stoppedBy: 'stop' };
      try {
        if (!client) {
          client = new pg.Client({ connectionString: server.url(DATABASE, 'app_writer', APP_PASSWORD) });
          client.on('error', () => {});
          await client.connect();
        }
        await client.query('begin');
        const { rows } = await client.query<{ id: string }>(
          "insert into billing.customers (name, profile) values ($1, jsonb_build_object('w', $2::int)) returning id",
          [`writer ${i}`, i],
        );
        await client.query('update billing.customers set touched = touched + 1, plan = $2 where id = $1', [
          1 + (i % 300),
          i % 2 ? 'monthly' : 'annual',
        ]);
        await client.query('insert into billing.invoices (customer_id, amount, tax) values ($1, $2, $3)', [rows[0]!.id, i, i % 10]);
        await client.query("insert into crm.events values ($1, now() + $2::int * interval '1 ms', 'write', $3)", [rows[0]!.id, i, { i }]);
        await client.query("select nextval('billing.invoice_number')");
        if (i % 5 === 0) await client.query("insert into crm.audit_log (message) values ('write ' || $1::text)", [i]);
        if (i % 7 === 0)
          await client.query("update crm.audit_log set message = message || '!' where message = 'seeded ' || $1::text", [1 + (i % 50)]);
        if (i % 11 === 0) await client.query('delete from billing.invoices where id = (select min(id) from billing.invoices)');
        await client.query('commit');
        committed++;
      } catch (error) {
        const code = (error as { code?: string }).code;
        await client?.end().catch(() => {});
        client = undefined;
        // Refused as read-only (an advisory freeze, 25006) or at login (an enforced one, 28000).
        if (code === '25006' || code === '28000') return { committed, stoppedBy: 'frozen' };
        // Terminated by the freeze (57P01), or a connection-level failure (no SQLSTATE): reconnect.
        if (code === undefined || code === '57P01') continue;
        throw error;
      }
    }
    await client?.end().catch(() => {});
    return { committed, stoppedBy: 'bound' };
  };
  const finished = run();
  finished.catch(() => {});
  return {
    get committed() {
      return committed;
    },
    finished,
    stop: () => {
      stopping = true;
    },
  };
}

/** Row count and an ordered md5 of every row, per table (leaf tables: a partitioned root is its leaves). */
export async function tableDigests(query: (text: string) => Promise<pg.QueryResult>): Promise<Record<string, string>> {
  const { rows } = await query(
    `select format('%I.%I', n.nspname, c.relname) as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind = 'r' and n.nspname in ('billing', 'crm', 'public') order by 1`,
  );
  const digests: Record<string, string> = {};
  for (const { t } of rows) {
    const r = await query(`select count(*) as n, md5(coalesce(string_agg(x::text, '|' order by x::text), '')) as h from ${t} x`);
    digests[t] = `${r.rows[0].n} ${r.rows[0].h}`;
  }
  return digests;
}
