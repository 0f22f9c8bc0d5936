/**
 * The ways of copying the source measured side by side, each into a fresh database on the target
 * server: pg_dump/pg_restore, pgcopydb clone, and the cutover's own steps, either as week-prior.yaml
 * runs them (schema pre-data, snapshot-copy, schema post-data, a subscription attached to the slot)
 * or with the subscription copying the tables itself; then the catch-up after a write burst through
 * postgres.catch-up.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultBindir } from '../migrate/local/postgres-server.ts';
import type { ReplicationNames } from '../migrate/postgres/replication-names.ts';
import { catchUp } from '../migrate/steps/postgres/catch-up.ts';
import { replicationStart } from '../migrate/steps/postgres/replication-start.ts';
import { replicationStop } from '../migrate/steps/postgres/replication-stop.ts';
import { schemaCopy } from '../migrate/steps/postgres/schema-copy.ts';
import { snapshotCopy } from '../migrate/steps/postgres/snapshot-copy.ts';
import { withSteps } from './context.ts';
import type { Bench } from './servers.ts';
import { createDatabase, DATABASE, tool, withClient } from './servers.ts';

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
}

function scratchDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function dumpRestore(bench: Bench, database: string): Promise<number> {
  await createDatabase(bench.target, database);
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
  await createDatabase(bench.target, database);
  const dir = scratchDir('bench-pgcopydb-');
  try {
    // pgcopydb runs pg_dump and pg_restore, found on PATH.
    const env = { ...bench.toolEnv, PATH: `${defaultBindir()}:${process.env.PATH}` };
    return await timed(() =>
      tool({ ...bench, toolEnv: env }, '/usr/bin/pgcopydb', [
        'clone',
        '--source',
        bench.url(bench.source, DATABASE),
        '--target',
        bench.url(bench.target, database),
        '--dir',
        join(dir, 'work'),
      ]),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Replicated {
  /** Seconds per step, in order: e.g. schema 0.4, copy 14.1, indexes 3.9, replication 0.1. */
  phases: [step: string, seconds: number][];
  seconds: number;
  tables: number;
}

/**
 * Into a fresh `targetDatabase`, until a subscription streams from the source. `snapshot`: as
 * week-prior.yaml does it; `subscription`: the whole schema, then a subscription that copies every
 * table itself (replication-start's default, polling once a second).
 */
export async function replicate(
  bench: Bench,
  options: {
    sourceDatabase: string;
    targetDatabase: string;
    names: ReplicationNames;
    method: 'snapshot' | 'subscription';
    binary: boolean;
    synchronousCommit: string;
  },
): Promise<Replicated> {
  await createDatabase(bench.target, options.targetDatabase);
  return withSteps(bench, options, async (steps) => {
    const phases: Replicated['phases'] = [];
    const timed = async <R>(label: string, step: Promise<{ seconds: number; result: R }>) => {
      const done = await step;
      phases.push([label, done.seconds]);
      return done.result;
    };
    // As week-prior.yaml does: the app role (created on both servers) keeps its GRANTs on the target.
    const subscribe = { ...options.names, binary: options.binary, synchronousCommit: options.synchronousCommit };
    const copyThenAttach = async () => {
      await timed('schema pre-data', steps.run(schemaCopy, { section: 'pre-data', withPrivileges: true }));
      await timed('snapshot-copy', steps.run(snapshotCopy, { ...options.names, binary: options.binary }));
      await timed('schema post-data', steps.run(schemaCopy, { section: 'post-data', withPrivileges: true }));
      return timed('replication-start', steps.run(replicationStart, { ...subscribe, copyData: false }));
    };
    const subscriptionCopies = async () => {
      await timed('schema', steps.run(schemaCopy, { withPrivileges: true }));
      return timed('replication-start', steps.run(replicationStart, subscribe));
    };
    const sync = await (options.method === 'snapshot' ? copyThenAttach() : subscriptionCopies());
    if (sync.binary !== options.binary) throw new Error(`replication-start used binary = ${sync.binary}, asked for ${options.binary}`);
    return { phases, seconds: phases.reduce((sum, [, x]) => sum + x, 0), tables: sync.tables };
  });
}

export async function stopReplication(
  bench: Bench,
  options: { sourceDatabase: string; targetDatabase: string; names: ReplicationNames },
): Promise<void> {
  await withSteps(bench, options, (steps) => steps.run(replicationStop, options.names));
}

export async function dropDatabase(bench: Bench, database: string): Promise<void> {
  await withClient(bench.target, 'postgres', (c) => c.query(`DROP DATABASE IF EXISTS ${database}`));
}

export interface Burst {
  transactions: number;
  walBytes: number;
  /** postgres.catch-up, probe to check. */
  catchUpSeconds: number;
  /** The step's own wait for the slot to confirm the source's position. */
  waitedMs: number;
}

/** A write burst on the source (pgbench's simple-update transactions), then postgres.catch-up. */
export async function catchUpAfterBurst(bench: Bench, names: ReplicationNames, seconds: number): Promise<Burst> {
  const lsn = () =>
    withClient(bench.source, DATABASE, async (c) => (await c.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l as string);
  const before = await lsn();
  const out = await tool(bench, 'pgbench', ['-N', '-c', '4', '-j', '2', '-T', String(seconds), '-n', bench.url(bench.source, DATABASE)]);
  const after = await lsn();
  const step = await withSteps(bench, { sourceDatabase: DATABASE }, (steps) => steps.run(catchUp, names));
  const walBytes = await withClient(bench.source, DATABASE, async (c) =>
    Number((await c.query('SELECT pg_wal_lsn_diff($1, $2)::int8 AS b', [after, before])).rows[0].b),
  );
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? 0);
  return { transactions, walBytes, catchUpSeconds: step.seconds, waitedMs: step.result.waitedMs };
}
