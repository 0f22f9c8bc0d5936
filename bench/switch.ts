/**
 * The write-unavailability window of the switch, with writers running: application-like clients
 * (role `app`) write continuously to whichever server is "current" and reconnect on any error. The
 * switch freezes the app role on the source and ends its sessions, waits until the target has
 * applied everything, copies every sequence, then points the writers at the target. The window is
 * measured from the first write that fails (or started and never completed on the source) to the
 * first write that succeeds on the target. Plain SQL: the freeze, catch-up and sequence step kinds
 * were not registered yet.
 */
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import type { PostgresServer } from '../migrate/local/postgres-server.ts';
import { waitForApplied } from './copy.ts';
import type { Bench } from './servers.ts';
import { APP_ROLE, DATABASE, withClient } from './servers.ts';

export type SwitchResult = {
  windowSeconds: number;
  freezeSeconds: number;
  catchUpSeconds: number;
  sequencesSeconds: number;
  sequences: number;
  /** From pointing the writers at the target to the first write succeeding there. */
  firstWriteSeconds: number;
  writesBefore: number;
  writesAfter: number;
  failedWrites: number;
  /** Writes committed on the source that the target does not have (must be 0). */
  lostWrites: number;
};

class Writers {
  current: { server: PostgresServer; database: string };
  stopped = false;
  committed = { source: 0, target: 0 };
  failed = 0;
  firstFailure?: number;
  firstTargetSuccess?: number;
  private inFlightSince = new Map<number, number>();
  private loops: Promise<void>[] = [];

  constructor(private readonly bench: Bench, source: { server: PostgresServer; database: string }, private readonly appPassword: string) {
    this.current = source;
  }

  start(count: number, rows: number): void {
    for (let i = 0; i < count; i++) this.loops.push(this.loop(i, rows));
  }

  /** Earliest start among writes still running (blocked by the freeze, not yet failed). */
  oldestInFlight(): number | undefined {
    const starts = [...this.inFlightSince.values()];
    return starts.length ? Math.min(...starts) : undefined;
  }

  private async loop(id: number, rows: number): Promise<void> {
    let client: pg.Client | undefined;
    let on: PostgresServer | undefined;
    while (!this.stopped) {
      const endpoint = this.current;
      try {
        if (!client || on !== endpoint.server) {
          await client?.end().catch(() => {});
          client = new pg.Client({ host: '127.0.0.1', port: endpoint.server.port, database: endpoint.database, user: APP_ROLE, password: this.appPassword });
          client.on('error', () => {});
          on = endpoint.server;
          await client.connect();
        }
        const aid = 1 + Math.floor(Math.random() * rows);
        this.inFlightSince.set(id, performance.now());
        await client.query('BEGIN');
        await client.query('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = $1', [aid]);
        await client.query('INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, $1, 1, now())', [aid]);
        await client.query(`INSERT INTO docs (title, body, created) VALUES ('written by the workload', '{}', now())`);
        await client.query('COMMIT');
        this.inFlightSince.delete(id);
        if (on === this.bench.target) {
          this.committed.target++;
          this.firstTargetSuccess ??= performance.now();
        } else this.committed.source++;
      } catch {
        const started = this.inFlightSince.get(id);
        this.inFlightSince.delete(id);
        this.failed++;
        this.firstFailure = Math.min(this.firstFailure ?? Infinity, started ?? performance.now());
        await client?.end().catch(() => {});
        client = undefined;
        await delay(5);
      }
    }
    await client?.end().catch(() => {});
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

/** Copies every sequence's position (with is_called) from the source to the target; returns how many. */
async function syncSequences(bench: Bench, database: string): Promise<number> {
  const values = await withClient(bench.source, DATABASE, async (c) => {
    const { rows } = await c.query(`SELECT format('%I.%I', schemaname, sequencename) AS name FROM pg_sequences`);
    if (rows.length === 0) return [];
    const union = rows.map((r, i) => `SELECT ${i} AS i, last_value::text AS v, is_called FROM ${r.name}`).join(' UNION ALL ');
    const found = await c.query(union);
    return found.rows.map((f) => ({ name: rows[f.i].name as string, value: f.v as string, called: f.is_called as boolean }));
  });
  if (values.length) {
    await withClient(bench.target, database, (c) =>
      c.query(`SELECT ${values.map((_, i) => `setval($${3 * i + 1}::regclass, $${3 * i + 2}::int8, $${3 * i + 3}::bool)`).join(', ')}`,
        values.flatMap((v) => [v.name, v.value, v.called])),
    );
  }
  return values.length;
}

const historyCount = (server: PostgresServer, database: string) =>
  withClient(server, database, async (c) => Number((await c.query('SELECT count(*) AS n FROM pgbench_history')).rows[0].n));

export async function measureSwitch(
  bench: Bench,
  database: string,
  options: { writers: number; accounts: number; warmupMs: number; afterMs: number },
): Promise<SwitchResult> {
  const writers = new Writers(bench, { server: bench.source, database: DATABASE }, bench.password);
  writers.start(options.writers, options.accounts);
  try {
    await delay(options.warmupMs);
    if (writers.committed.source === 0) throw new Error('the writers committed nothing on the source during the warm-up');
    const writesBefore = writers.committed.source;
    const t0 = performance.now();
    await withClient(bench.source, DATABASE, (c) =>
      c.query(`ALTER ROLE ${APP_ROLE} NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${APP_ROLE}'`),
    );
    const t1 = performance.now();
    const catchUpSeconds = await waitForApplied(bench, database, 2);
    const t2 = performance.now();
    const sequences = await syncSequences(bench, database);
    const t3 = performance.now();
    writers.current = { server: bench.target, database };
    const deadline = t3 + 30_000;
    while (writers.firstTargetSuccess === undefined) {
      if (performance.now() > deadline) throw new Error('no write succeeded on the target within 30 s of the switch');
      await delay(1);
    }
    const first = writers.firstTargetSuccess;
    await delay(options.afterMs);
    await writers.stop();
    const [onSource, onTarget] = await Promise.all([historyCount(bench.source, DATABASE), historyCount(bench.target, database)]);
    return {
      windowSeconds: (first - (writers.firstFailure ?? t0)) / 1000,
      freezeSeconds: (t1 - t0) / 1000,
      catchUpSeconds,
      sequencesSeconds: (t3 - t2) / 1000,
      sequences,
      firstWriteSeconds: (first - t3) / 1000,
      writesBefore,
      writesAfter: writers.committed.target,
      failedWrites: writers.failed,
      lostWrites: onSource + writers.committed.target - onTarget,
    };
  } finally {
    await writers.stop();
  }
}
