/**
 * `kill -9` of the CLI in the middle of a step, twice (the week-prior parallel copy, and D-day's
 * catch-up after the freeze), then `migrate resume`: every step finishes exactly once, nothing a
 * finished step did is done again, exactly one set of replication objects exists, and after the
 * cutover the target holds every row the app committed.
 *
 * The waits are made to last by holding SHARE locks on target tables (they conflict with the copy's
 * and the subscriber's writes but not with reads), so the kill lands inside the step on any machine.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { APP_DATABASE, APP_ROLE } from '../../migrate/rehearse/seed.ts';
import { Workload } from '../../migrate/rehearse/workload.ts';
import {
  appTables,
  type CliProcess,
  cli,
  countPerStep,
  describeResult,
  entries,
  journalFiles,
  journalOf,
  type Stack,
  startCli,
  startStack,
  state,
  tableDigests,
  waitUntil,
} from './support.ts';

const CUSTOMERS = 5000;
/**
 * Only the PostgreSQL steps run (schema-copy also needs `shell` for pg_dump and psql; D-day's shell
 * step is off by its condition); the rest of D-day is skipped visibly and resolves no parameters.
 */
const WITHOUT = ['--without', 'aws,kube,pgbouncer,http'];
/** D-day's only shell step (stop-source, off by its empty default command) is skipped too. */
const D_DAY = ['--without', 'aws,kube,pgbouncer,http,shell'];

const WEEK_PRIOR_AFTER_SCHEMA = ['copy', 'indexes', 'replication', 'reverse-target', 'reverse-reach'];
const D_DAY_POSTGRES_STEPS = ['freeze', 'catch-up', 'sequences', 'pin', 'stop-replication', 'reverse-replication', 'prove'];

/** Waits for the JSON reporter to show a progress event of `step`: the step is inside its wait. */
function waitingIn(run: CliProcess, step: string): Promise<true> {
  const marker = `"type":"progress","step":"${step}"`;
  return waitUntil(`a progress event of step ${step}`, () => (run.stdout().includes(marker) ? true : undefined), { process: run });
}

async function killHard(run: CliProcess): Promise<void> {
  run.child.kill('SIGKILL');
  const result = await run.done;
  assert.equal(result.signal, 'SIGKILL', describeResult(result));
}

describe('migrate run, kill -9 mid-step, migrate resume', () => {
  let stack: Stack;
  let workload: Workload | undefined;
  let locker: pg.Client | undefined;
  const running: CliProcess[] = [];
  let global: string[];
  let dDay: string[];
  let tables: string[];

  before(async () => {
    stack = await startStack({ customers: CUSTOMERS });
    global = ['--outputs', stack.outputsFile, '--state-dir', stack.stateDir, ...WITHOUT];
    dDay = ['--outputs', stack.outputsFile, '--state-dir', stack.stateDir, ...D_DAY];
    tables = await appTables(stack);
    // The app writes from before the initial copy until the freeze stops it.
    workload = new Workload({
      connectionString: stack.source.url(APP_DATABASE, APP_ROLE, stack.appPassword),
      writers: 2,
      thinkMs: 5,
      customers: CUSTOMERS,
    }).start();
  });

  after(async () => {
    for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await workload?.stop();
    await locker?.end().catch(() => {});
    await stack?.stop();
  });

  /** Holds SHARE locks on target tables until `release`: the subscriber cannot write them meanwhile. */
  async function lockTarget(which: string[]): Promise<() => Promise<void>> {
    locker = await stack.connect('target');
    await locker.query('begin');
    await locker.query(`lock table ${which.join(', ')} in share mode`);
    const held = locker;
    return async () => {
      await held.query('commit');
      await held.end();
      locker = undefined;
    };
  }

  it('week-prior killed during the parallel copy resumes from a new snapshot, creating nothing twice', async () => {
    // Preflight and the schema first, in runs of their own, so the target tables exist to be locked before the copy.
    for (const step of ['preflight', 'schema']) {
      const r = await cli([...global, 'run', 'runbooks/week-prior.yaml', '--yes', '--only', step]);
      assert.equal(r.code, 0, describeResult(r));
    }
    const sizes = await stack.sql(
      'source',
      `select format('%I.%I', schemaname, relname) as t from pg_stat_user_tables order by pg_table_size(relid) desc, 1`,
    );
    const [largest, smallest] = [sizes.rows[0].t as string, sizes.rows.at(-1).t as string];
    // The smallest table is copied last: the others commit first, and the copy then waits on the lock.
    const release = await lockTarget([smallest]);
    const before = new Set(journalFiles(stack.stateDir));
    const run = startCli([...global, '--json', 'run', 'runbooks/week-prior.yaml', '--yes', '--from', 'copy']);
    running.push(run);
    await waitingIn(run, 'copy');
    await waitUntil(
      `rows of ${largest} committed on the target`,
      async () => ((await stack.sql('target', `select exists (select 1 from ${largest}) as x`)).rows[0].x ? true : undefined),
      { process: run },
    );
    await killHard(run);
    const journal = journalFiles(stack.stateDir).find((f) => !before.has(f))!;

    const killed = state(journal);
    assert.equal(killed.status, 'running', 'a killed run is neither finished nor failed');
    assert.equal(killed.steps.find((s) => s.id === 'copy')?.status, 'running');
    assert.deepEqual(Object.fromEntries(countPerStep(journal, 'step-finished')), {});

    // What an operator looks at now: where the run stopped, and no subscription yet.
    const status = await cli([...global, 'status']);
    assert.equal(status.code, 0, describeResult(status));
    assert.match(status.stdout, /unfinished.*at copy \(running\)/);
    assert.match(status.stdout, /Subscription: migrate_sub absent/);

    await release();
    const resumed = await cli([...global, 'resume', '--yes']);
    assert.equal(resumed.code, 0, describeResult(resumed));

    const after = state(journal);
    assert.equal(after.status, 'finished');
    assert.deepEqual(
      Object.fromEntries(countPerStep(journal, 'step-finished')),
      Object.fromEntries(WEEK_PRIOR_AFTER_SCHEMA.map((id) => [id, 1])),
    );
    // Only the interrupted step ran again.
    assert.deepEqual(Object.fromEntries(countPerStep(journal, 'step-started')), {
      copy: 2,
      indexes: 1,
      replication: 1,
      'reverse-target': 1,
      'reverse-reach': 1,
    });
    // reverse-target needs AWS (a load balancer), which this test runs without.
    for (const s of after.steps.filter((x) => WEEK_PRIOR_AFTER_SCHEMA.includes(x.id)))
      assert.ok(
        ['applied', 'already-done', ...(s.id === 'reverse-target' ? ['skipped'] : [])].includes(s.status),
        `${s.id} is ${s.status}`,
      );
    const changes = entries(journal).flatMap((e) =>
      e.type === 'step-change' ? [`${e.step} ${(e.change as { action: string }).action}`] : [],
    );
    assert.deepEqual(changes, [
      'copy create-publication',
      'copy create-slot',
      // The resumed copy: the killed attempt's snapshot died with it, so a new slot and a fresh copy.
      'copy create-slot',
      'copy copy-complete',
      'indexes restore-schema',
      'replication create-subscription',
    ]);

    const publications = await stack.sql('source', 'select pubname from pg_publication');
    const slots = await stack.sql('source', 'select slot_name from pg_replication_slots');
    const subs = await stack.sql('target', 'select subname, subenabled from pg_subscription');
    assert.deepEqual(
      publications.rows.map((r) => r.pubname),
      ['migrate_pub'],
    );
    assert.deepEqual(
      slots.rows.map((r) => r.slot_name),
      ['migrate_sub'],
    );
    assert.deepEqual(subs.rows, [{ subname: 'migrate_sub', subenabled: true }]);
    const notReady = await stack.sql(
      'target',
      "select srrelid::regclass::text as t, srsubstate from pg_subscription_rel where srsubstate <> 'r'",
    );
    assert.deepEqual(notReady.rows, [], 'every table is streaming');
  });

  it('d-day killed in catch-up after the freeze resumes to an identical target, losing no committed write', async () => {
    assert.ok(workload!.committedCount > 0, 'the app has been writing');
    // The app writes orders in every transaction: with orders locked on the target, catch-up cannot finish.
    const release = await lockTarget(['public.orders']);
    // From the freeze: with orders locked the go/no-go before it would rightly refuse to start.
    const run = startCli([...dDay, '--json', 'run', 'runbooks/d-day.yaml', '--yes', '--from', 'freeze']);
    running.push(run);
    await waitingIn(run, 'catch-up');
    await killHard(run);

    const journal = journalOf(stack.stateDir, 'd-day')!;
    const killed = state(journal);
    assert.equal(killed.status, 'running');
    assert.equal(killed.steps.find((s) => s.id === 'freeze')?.status, 'applied');
    assert.equal(killed.steps.find((s) => s.id === 'catch-up')?.status, 'running');

    await release();
    const resumed = await cli([...dDay, '--json', 'resume', '--yes']);
    assert.equal(resumed.code, 0, describeResult(resumed));
    const writes = await workload!.stop();
    workload = undefined;

    const after = state(journal);
    assert.equal(after.status, 'finished');
    const finished = countPerStep(journal, 'step-finished');
    const selected = after.steps.slice(after.steps.findIndex((s) => s.id === 'freeze'));
    for (const s of selected) assert.equal(finished.get(s.id), 1, `step ${s.id} finished ${finished.get(s.id) ?? 0} times`);
    const started = countPerStep(journal, 'step-started');
    assert.equal(started.get('freeze'), 1, 'the freeze is not applied again on resume');
    assert.equal(started.get('catch-up'), 2);
    for (const id of D_DAY_POSTGRES_STEPS)
      assert.ok(['applied', 'already-done'].includes(after.steps.find((s) => s.id === id)!.status), `${id} ran`);
    // The proof of the point pinned inside the window, made after writes resumed.
    const verify = after.steps.find((s) => s.id === 'prove')!.result as { summary: { tablesDiffering: number; rows: number } };
    assert.equal(verify.summary.tablesDiffering, 0);

    // Every transaction the app saw commit is on the target, and every table is identical.
    const found = await stack.sql('target', 'select count(*)::int as n from public.orders where id = any($1::bigint[])', [
      writes.committed,
    ]);
    assert.ok(writes.committed.length > 0);
    assert.equal(found.rows[0].n, writes.committed.length, 'committed orders missing on the target');
    assert.deepEqual(await tableDigests(stack, 'target', tables), await tableDigests(stack, 'source', tables));

    const sequences = `select schemaname || '.' || sequencename as name, coalesce(last_value, start_value - 1)::text as v from pg_sequences order by 1`;
    const [onSource, onTarget] = [await stack.sql('source', sequences), await stack.sql('target', sequences)];
    const targetValue = new Map(onTarget.rows.map((r) => [r.name, BigInt(r.v)]));
    for (const r of onSource.rows)
      assert.ok((targetValue.get(r.name) ?? -1n) >= BigInt(r.v), `sequence ${r.name}: target ${targetValue.get(r.name)} < source ${r.v}`);

    // The forward replication is gone; what stays is the way back: the reverse subscription on the
    // source, its publication and slot on the target, and the write fence watching the source.
    const names = async (side: 'source' | 'target', sql: string) =>
      (await stack.sql(side, sql)).rows.map((r) => Object.values(r)[0]).sort();
    assert.deepEqual(await names('source', 'select slot_name from pg_replication_slots'), ['migrate_fence']);
    assert.deepEqual(await names('source', 'select pubname from pg_publication'), ['migrate_fence']);
    assert.deepEqual(await names('source', 'select subname from pg_subscription'), ['migrate_reverse']);
    assert.deepEqual(await names('target', 'select subname from pg_subscription'), []);
    assert.deepEqual(await names('target', 'select slot_name from pg_replication_slots'), ['migrate_reverse']);
  });
});
