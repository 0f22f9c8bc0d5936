/**
 * The three ways of copying the source measured side by side, each into a fresh database on the
 * target server: pg_dump/pg_restore, pgcopydb clone, and logical replication's initial sync (the
 * one the cutover uses; plain SQL here, as the replication step kinds were not registered yet).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { defaultBindir } from '../migrate/local/postgres-server.ts';
import type { Bench } from './servers.ts';
import { createDatabase, DATABASE, tool, withClient } from './servers.ts';

export const PUBLICATION = 'bench_pub';

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
}

function scratchDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function dumpRestore(bench: Bench, database: string): Promise<number> {
  await createDatabase(bench, bench.target, database);
  const dir = join(scratchDir('bench-dump-'), 'dump');
  try {
    return await timed(async () => {
      await tool(bench, 'pg_dump', ['-Fd', '-j2', '-f', dir, bench.url(bench.source, DATABASE)]);
      await tool(bench, 'pg_restore', ['-j2', '-d', bench.url(bench.target, database), dir]);
    });
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
}

export async function pgcopydbClone(bench: Bench, database: string): Promise<number> {
  await createDatabase(bench, bench.target, database);
  const dir = scratchDir('bench-pgcopydb-');
  try {
    // pgcopydb runs pg_dump and pg_restore, found on PATH.
    const env = { ...bench.toolEnv, PATH: `${defaultBindir()}:${process.env.PATH}` };
    return await timed(() =>
      tool({ ...bench, toolEnv: env }, '/usr/bin/pgcopydb', [
        'clone', '--source', bench.url(bench.source, DATABASE), '--target', bench.url(bench.target, database), '--dir', join(dir, 'work'),
      ]),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function copySchema(bench: Bench, database: string): Promise<number> {
  await createDatabase(bench, bench.target, database);
  const dir = scratchDir('bench-schema-');
  try {
    return await timed(async () => {
      const file = join(dir, 'schema.sql');
      await tool(bench, 'pg_dump', ['--schema-only', '--no-publications', '--no-subscriptions', '-f', file, bench.url(bench.source, DATABASE)]);
      await tool(bench, 'psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', file, bench.url(bench.target, database)]);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function ensurePublication(bench: Bench): Promise<void> {
  await withClient(bench.source, DATABASE, async (c) => {
    const { rowCount } = await c.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [PUBLICATION]);
    if (!rowCount) await c.query(`CREATE PUBLICATION ${PUBLICATION} FOR ALL TABLES`);
  });
}

/** Creates the subscription and waits until every table is synchronized; returns seconds. */
export async function logicalSync(bench: Bench, database: string, subscription: string, options: { binary: boolean }): Promise<number> {
  await ensurePublication(bench);
  return withClient(bench.target, database, async (c) => {
    const conninfo = `host=127.0.0.1 port=${bench.source.port} dbname=${DATABASE} user=postgres password=${bench.password}`;
    return timed(async () => {
      await c.query(
        `CREATE SUBSCRIPTION ${subscription} CONNECTION '${conninfo}' PUBLICATION ${PUBLICATION} WITH (binary = ${options.binary})`,
      );
      for (;;) {
        const { rows } = await c.query(
          `SELECT count(*)::int AS tables, count(*) FILTER (WHERE r.srsubstate NOT IN ('r', 's'))::int AS pending
             FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`,
          [subscription],
        );
        if (rows[0].tables > 0 && rows[0].pending === 0) return;
        await delay(50);
      }
    });
  });
}

export async function dropSubscription(bench: Bench, database: string, subscription: string): Promise<void> {
  await withClient(bench.target, database, (c) => c.query(`DROP SUBSCRIPTION IF EXISTS ${subscription}`));
}

export async function dropDatabase(bench: Bench, database: string): Promise<void> {
  await withClient(bench.target, 'postgres', (c) => c.query(`DROP DATABASE IF EXISTS ${database}`));
}

/** Marks the source and waits for the mark on the target: everything committed before it has been applied. */
export async function waitForApplied(bench: Bench, database: string, mark: number): Promise<number> {
  return timed(async () => {
    await withClient(bench.source, DATABASE, (c) => c.query('INSERT INTO bench_marker (id) VALUES ($1)', [mark]));
    await withClient(bench.target, database, async (c) => {
      for (;;) {
        const { rowCount } = await c.query('SELECT 1 FROM bench_marker WHERE id = $1', [mark]);
        if (rowCount) return;
        await delay(5);
      }
    });
  });
}

/** A write burst on the source (pgbench's simple-update transactions), then the time until the target has it all. */
export async function catchUpAfterBurst(bench: Bench, database: string, seconds: number): Promise<{ transactions: number; walBytes: number; catchUp: number }> {
  const lsn = () => withClient(bench.source, DATABASE, async (c) => (await c.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l as string);
  const before = await lsn();
  const out = await tool(bench, 'pgbench', ['-N', '-c', '4', '-j', '2', '-T', String(seconds), '-n', bench.url(bench.source, DATABASE)]);
  const after = await lsn();
  const catchUp = await waitForApplied(bench, database, 1);
  const walBytes = await withClient(bench.source, DATABASE, async (c) => Number((await c.query('SELECT pg_wal_lsn_diff($1, $2)::int8 AS b', [after, before])).rows[0].b));
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? 0);
  return { transactions, walBytes, catchUp };
}
