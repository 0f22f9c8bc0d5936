/**
 * The write-unavailability window of the switch, seen by the application. Writers (role `app`)
 * commit continuously through a real local PgBouncer in transaction mode, as the app does, while
 * the d-day steps run: pgbouncer.pause → postgres.freeze-writes → postgres.catch-up →
 * postgres.sequence-sync → postgres.replication-stop → pgbouncer.reload (backend = the target) →
 * pgbouncer.resume. The window is the longest gap between two committed writes; afterwards every
 * write a writer saw commit must be on the target.
 */
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { redact } from '../migrate/core/secret.ts';
import type { Json, StepKind } from '../migrate/core/step.ts';
import { startPgbouncer } from '../migrate/local/pgbouncer.ts';
import type { ReplicationNames } from '../migrate/postgres/replication-names.ts';
import { longestWriteGap } from '../migrate/rehearse/workload.ts';
import { pgbouncerPause } from '../migrate/steps/pgbouncer/pause.ts';
import { pgbouncerReload } from '../migrate/steps/pgbouncer/reload.ts';
import { pgbouncerResume } from '../migrate/steps/pgbouncer/resume.ts';
import { catchUp } from '../migrate/steps/postgres/catch-up.ts';
import { freezeWrites } from '../migrate/steps/postgres/freeze-writes.ts';
import { replicationStop } from '../migrate/steps/postgres/replication-stop.ts';
import { sequenceSync } from '../migrate/steps/postgres/sequence-sync.ts';
import { unfreeze } from '../migrate/steps/postgres/unfreeze.ts';
import { withSteps } from './context.ts';
import type { Bench } from './servers.ts';
import { APP_ROLE, withClient } from './servers.ts';

export type SwitchResult = {
  database: string;
  /** Longest gap between two committed writes, from just before the pause to the end. */
  windowSeconds: number;
  /** Each step, probe to check, in order. */
  steps: { step: string; seconds: number }[];
  /** From the start of pgbouncer.pause to the end of pgbouncer.resume. */
  stepsSeconds: number;
  sequences: number;
  /** Longest single write, including the time PgBouncer held it. */
  longestWriteSeconds: number;
  writesOnSource: number;
  writesOnTarget: number;
  failedWrites: number;
  firstErrors: string[];
  /** Writes a writer saw commit that the target does not have (must be 0). */
  lostWrites: number;
};

interface Commit {
  writer: number;
  n: number;
  port: number;
  at: number;
}

export class Writers {
  stopped = false;
  readonly commits: Commit[] = [];
  readonly errors: string[] = [];
  longestMs = 0;
  private loops: Promise<void>[] = [];

  constructor(private readonly url: string) {}

  start(count: number, accounts: number): void {
    for (let i = 0; i < count; i++) this.loops.push(this.loop(i, accounts));
  }

  private async loop(writer: number, accounts: number): Promise<void> {
    let client: pg.Client | undefined;
    for (let n = 0; !this.stopped; n++) {
      try {
        if (!client) {
          client = new pg.Client({ connectionString: this.url, application_name: `bench-writer-${writer}` });
          client.on('error', () => {});
          await client.connect();
        }
        const aid = 1 + Math.floor(Math.random() * accounts);
        const started = performance.now();
        await client.query('BEGIN');
        await client.query('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = $1', [aid]);
        // Both inserts take a sequence value: an unsynced sequence fails them on the target.
        await client.query('INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, $1, 1, now())', [aid]);
        await client.query(`INSERT INTO docs (title, body, created) VALUES ('written by the workload', '{}', now())`);
        const { rows } = await client.query('INSERT INTO bench_writes (writer, n) VALUES ($1, $2) RETURNING inet_server_port() AS port', [
          writer,
          n,
        ]);
        await client.query('COMMIT');
        const at = performance.now();
        this.commits.push({ writer, n, port: Number(rows[0].port), at });
        this.longestMs = Math.max(this.longestMs, at - started);
      } catch (error) {
        this.errors.push(redact((error as Error).message));
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

async function until(condition: () => boolean, what: () => string, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what()}`);
    await delay(5);
  }
}

export async function measureSwitch(
  bench: Bench,
  options: { database: string; names: ReplicationNames; writers: number; accounts: number; warmupMs: number; afterMs: number },
): Promise<SwitchResult> {
  const { database } = options;
  const pgbouncer = await startPgbouncer({
    database,
    backend: { host: bench.source.host, port: bench.source.port },
    user: APP_ROLE,
    password: bench.password,
  });
  // Also removed if the bench is interrupted while this runs (Ctrl-C exits before the finally below).
  bench.onStop(() => pgbouncer.stop());
  const writers = new Writers(pgbouncer.url());
  // The enforced freeze makes the app role NOLOGIN on the whole source server: the next measurement
  // (another database on the same servers) needs it back, as a rollback would restore it.
  let frozen: { previous: Json } | undefined;
  try {
    writers.start(options.writers, options.accounts);
    await delay(options.warmupMs);
    if (writers.commits.length === 0)
      throw new Error(`the writers committed nothing through PgBouncer during the warm-up: ${writers.errors.slice(0, 3).join('; ')}`);
    const steps: SwitchResult['steps'] = [];
    let sequences = 0;
    const from = performance.now();
    await withSteps(bench, { sourceDatabase: database, pgbouncer }, async (run) => {
      const step = async <P, R extends Json>(kind: StepKind<P, R>, params: unknown): Promise<R> => {
        const { result, seconds } = await run.run(kind, params);
        steps.push({ step: kind.kind, seconds });
        return result;
      };
      await step(pgbouncerPause, { configFile: pgbouncer.configFile });
      frozen = await step(freezeWrites, {});
      await step(catchUp, options.names);
      sequences = (await step(sequenceSync, {})).sequences;
      await step(replicationStop, options.names);
      await step(pgbouncerReload, { backend: { host: bench.target.host, port: bench.target.port }, configFile: pgbouncer.configFile });
      await step(pgbouncerResume, { configFile: pgbouncer.configFile });
    });
    const stepsSeconds = (performance.now() - from) / 1000;
    const switched = writers.commits.length;
    await until(
      () => writers.commits.slice(switched).some((c) => c.port === bench.target.port),
      () =>
        `a write committed on the target after the switch (writer errors: ${[...new Set(writers.errors)].slice(-3).join(' | ') || 'none'})`,
      30_000,
    );
    await delay(options.afterMs);
    await writers.stop();
    const to = performance.now();

    const onTarget = await withClient(bench.target, database, async (c) => {
      const { rows } = await c.query('SELECT writer, n FROM bench_writes');
      return new Set(rows.map((r) => `${r.writer}/${r.n}`));
    });
    const times = writers.commits.map((c) => c.at);
    // From the last commit before the pause (the warm-up made one), so a gap straddling its start counts whole.
    const lastBefore = times.reduce((last, t) => (t <= from && t > last ? t : last), -Infinity);
    const lostWrites = writers.commits.filter((c) => !onTarget.has(`${c.writer}/${c.n}`)).length;
    return {
      database,
      windowSeconds: longestWriteGap(times, lastBefore, to).ms / 1000,
      steps,
      stepsSeconds,
      sequences,
      longestWriteSeconds: writers.longestMs / 1000,
      writesOnSource: writers.commits.filter((c) => c.port === bench.source.port).length,
      writesOnTarget: writers.commits.filter((c) => c.port === bench.target.port).length,
      failedWrites: writers.errors.length,
      firstErrors: [...new Set(writers.errors)].slice(0, 3),
      lostWrites,
    };
  } finally {
    await writers.stop();
    await pgbouncer.stop();
    if (frozen) {
      const previous = frozen.previous;
      await withSteps(bench, { sourceDatabase: database }, (run) => run.run(unfreeze, { previous }));
    }
  }
}
