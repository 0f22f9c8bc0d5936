/**
 * Reverse replication on real servers, after a real forward cutover (schema copy, replication,
 * enforced freeze with the write fence kept, catch-up, sequences, replication-stop): the app's
 * writes on the target after the switch (inserts, updates, deletes, a keyless table, an app-owned
 * table with row-level security) reach the frozen source; rollback (undo) right after more writes
 * loses none of them and carries every sequence back; an apply and an undo killed part-way finish
 * when run again. Then the same with a target role that is not a superuser (what RDS's master user
 * is): a publication listing every table, membership in the owning role granted and taken back.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { StackOutputs } from '../../infra/contract.ts';
import { type Json, StepError } from '../../migrate/core/step.ts';
import type { PostgresServer } from '../../migrate/local/postgres-server.ts';
import { pool } from '../../migrate/postgres/connections.ts';
import { reverseConninfo, reverseStatus } from '../../migrate/postgres/reverse-replication.ts';
import { replicationStatus } from '../../migrate/postgres/status.ts';
import { catchUp } from '../../migrate/steps/postgres/catch-up.ts';
import { freezeWrites } from '../../migrate/steps/postgres/freeze-writes.ts';
import { replicationStart } from '../../migrate/steps/postgres/replication-start.ts';
import { replicationStop } from '../../migrate/steps/postgres/replication-stop.ts';
import { reverseHealth, reverseReady, reverseReplication } from '../../migrate/steps/postgres/reverse-replication.ts';
import { schemaCopy } from '../../migrate/steps/postgres/schema-copy.ts';
import { sequenceSync } from '../../migrate/steps/postgres/sequence-sync.ts';
import { writeFence } from '../../migrate/steps/postgres/write-fence.ts';
import { APP_ROLE_PASSWORD, HOSTILE_ROLES, HOSTILE_SCHEMA, HOSTILE_SEED } from '../support/hostile-app.ts';
import { APP_PASSWORD, DATABASE, type Pair, ROLES, SCHEMA, SEED, startPair, TARGET_ROLES } from './fixtures.ts';

/** Runs the undo as the CLI would, in a process of its own (env OUTPUTS, CHANGES); prints WAITING once it waits for the source. */
const UNDO_CHILD = `
import { readFileSync } from 'node:fs';
import { reverseReplication } from '${new URL('../../migrate/steps/postgres/reverse-replication.ts', import.meta.url).pathname}';
import { testContext } from '${new URL('../support/context.ts', import.meta.url).pathname}';
const t = testContext({ outputs: JSON.parse(readFileSync(process.env.OUTPUTS, 'utf8')), stepId: 'reverse-again' });
const ctx = { ...t.ctx, log: { ...t.ctx.log, progress: (p) => { if (/source applying/.test(p.label)) process.stdout.write('WAITING\\n'); } } };
await reverseReplication.undo(ctx, reverseReplication.params.parse({ pollMs: 20 }), JSON.parse(readFileSync(process.env.CHANGES, 'utf8')), undefined);
process.stdout.write('DONE\\n');
await t.close();
`;

const NAMES = { publication: 'migrate_reverse', slot: 'migrate_reverse', subscription: 'migrate_reverse' };

/** Runs statements as an application role, one transaction each. */
async function asRole(server: PostgresServer, role: string, password: string, statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: server.url(DATABASE, role, password) });
  client.on('error', () => {});
  await client.connect();
  try {
    for (const s of statements) await client.query(s);
  } finally {
    await client.end();
  }
}

/** Count and ordered md5 of every user table's rows. */
async function digests(pair: Pair, side: 'source' | 'target'): Promise<Record<string, string>> {
  const { rows } = await pair.sql(
    side,
    `select format('%I.%I', n.nspname, c.relname) as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind = 'r' and n.nspname in ('billing', 'crm', 'shop', 'public') order by 1`,
  );
  const result: Record<string, string> = {};
  for (const { t } of rows) {
    const r = await pair.sql(side, `select count(*) as n, md5(coalesce(string_agg(x::text, '|' order by x::text), '')) as h from ${t} x`);
    result[t] = `${r.rows[0].n} ${r.rows[0].h}`;
  }
  return result;
}

/** Polls `read` until `done` holds (bounded by count, not by time). */
async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < 2000; i++) {
    last = await read();
    if (done(last)) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`${what}: never happened (last: ${JSON.stringify(last)})`);
}

/** Every sequence's last_value on a side. */
async function sequenceValues(pair: Pair, side: 'source' | 'target'): Promise<Record<string, bigint>> {
  const { rows } = await pair.sql(side, "select schemaname || '.' || sequencename as s, last_value::text as v from pg_sequences");
  return Object.fromEntries(rows.map((r) => [r.s, BigInt(r.v ?? 0)]));
}

/** The writes the application makes on the target after the switch, as its own roles. */
async function appWritesOnTarget(pair: Pair, round: number): Promise<void> {
  await asRole(pair.target, 'app_writer', APP_PASSWORD, [
    `insert into billing.customers (name) select 'after switch ${round}.' || i from generate_series(1, 20) i`,
    `update billing.customers set touched = touched + ${round}, plan = 'annual' where id % 7 = ${round % 7}`,
    `delete from billing.invoices where id in (select id from billing.invoices order by id limit 5)`,
    `insert into billing.invoices (customer_id, amount) select id, 100 from billing.customers where name like 'after switch ${round}.%'`,
    `insert into crm.events values (1, timestamptz '2024-03-01' + ${round} * interval '1 day', 'after switch', '{}')`,
    "select nextval('billing.invoice_number') from generate_series(1, 7)",
    // The keyless table: an update and a delete need its replica identity on the publishing target.
    `insert into crm.audit_log (message) values ('after switch ${round}')`,
    `update crm.audit_log set message = message || ' (edited)' where message = 'seeded ${round}'`,
    `delete from crm.audit_log where message = 'seeded ${round + 10}'`,
  ]);
  // Row-level security on an app-owned table, written through its policy.
  await asRole(pair.target, 'app_rw', APP_ROLE_PASSWORD, [
    `insert into shop.orders (tenant, product_id, qty, note) values ('acme', 1, ${round}, 'after switch')`,
    `update shop.orders set qty = qty + 100 where tenant = 'globex' and id % 2 = ${round % 2}`,
    `delete from shop.orders where id = (select min(id) from shop.orders where tenant = 'acme')`,
    "select nextval('shop.invoice_no')",
  ]);
  await asRole(pair.target, 'app_owner', APP_ROLE_PASSWORD, [`insert into public.app_settings values ('k${round}', 'v')`]);
}

describe('reverse replication from the target back to the source after the switch', () => {
  let pair: Pair;
  const context = (stepId = 'reverse', previousChanges?: Json[]) => pair.context({ stepId, previousChanges });
  const p = reverseReplication.params.parse({ pollMs: 20 });
  let applied: Json[] = [];

  before(async () => {
    pair = await startPair();
    // As preflight leaves it: the forward publication needs an identity on every keyless table.
    await pair.sql('source', `${SCHEMA + SEED + ROLES + HOSTILE_ROLES}alter table crm.audit_log replica identity full;`);
    await pair.sql('source', HOSTILE_SCHEMA + HOSTILE_SEED);
    await pair.sql('target', TARGET_ROLES + HOSTILE_ROLES);
    await schemaCopy.apply(context('schema').ctx, schemaCopy.params.parse({ withPrivileges: true }));
    await replicationStart.apply(context('replication').ctx, replicationStart.params.parse({ pollMs: 50 }));
    // Nothing blocks before the freeze; the keyless tables are named as what the step will change.
    const ready = context('ready');
    const readiness = await reverseReady.probe(ready.ctx, reverseReady.params.parse({}));
    assert.equal(readiness.state, 'ready', JSON.stringify(readiness.findings));
    await freezeWrites.apply(context('freeze').ctx, freezeWrites.params.parse({}));
    await catchUp.apply(context('catch-up').ctx, catchUp.params.parse({}));
    await writeFence.apply(context('fence').ctx, writeFence.params.parse({ keepSlot: true }));
    await sequenceSync.apply(context('sequences').ctx, sequenceSync.params.parse({}));
    await replicationStop.apply(context('stop').ctx, replicationStop.params.parse({}));
    assert.deepEqual(await digests(pair, 'target'), await digests(pair, 'source'));
  });
  after(async () => {
    await pair?.stop();
  });

  it('streams the application’s writes on the target to the frozen source', async () => {
    const t = context();
    const result = await reverseReplication.apply(t.ctx, p);
    applied = t.changes;
    assert.equal(result.allTables, true, 'a superuser target role publishes every table');
    assert.match(result.lsn ?? '', /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.deepEqual(result.replicaIdentityFull, [], 'the schema copy brought the source’s replica identities');
    assert.deepEqual(await reverseReplication.check(t.ctx, p, result), []);
    assert.ok(!JSON.stringify(t.changes).includes(pair.target.password), 'no password in the journal');
    assert.ok(!t.lines.join('\n').includes(pair.target.password), 'no password in the log');

    // A second apply (a resumed run) finds everything in place.
    const again = await reverseReplication.probe(pair.context({ previousChanges: applied }).ctx, p);
    assert.equal(again.state, 'done');

    await appWritesOnTarget(pair, 1);
    const target = await digests(pair, 'target');
    await until(
      'the source holds the target’s writes',
      () => digests(pair, 'source'),
      (d) => JSON.stringify(d) === JSON.stringify(target),
    );
    const status = await reverseStatus(await pool(t.ctx, 'source'), await pool(t.ctx, 'target'), NAMES);
    assert.equal(status.state, 'streaming');
    assert.equal(status.workerRunning, true);
    // `migrate status` shows it.
    const shown = (await replicationStatus(t.ctx)) as { reverse: { state: string; workerRunning: boolean; lagBytes: number } };
    assert.equal(shown.reverse.state, 'streaming');
    assert.equal(shown.reverse.workerRunning, true);
  });

  it('rollback right after more writes: every row and every sequence is on the source, nothing is left behind', async () => {
    // The source's apply worker is held up by a lock, so the writes are still on their way when the rollback starts.
    const locker = await pair.source.client(DATABASE);
    await locker.query('begin');
    await locker.query('lock table billing.customers in share mode');
    await appWritesOnTarget(pair, 2);
    const used = await sequenceValues(pair, 'target');
    const t = context();
    const undoing = reverseReplication.undo!(t.ctx, p, applied, undefined);
    let settled = false;
    undoing.then(
      () => (settled = true),
      () => (settled = true),
    );
    // Undo must wait until the source applied the very last of them; the lock goes once it does.
    while (!settled && !t.progress.some((x) => /source applying/.test(x.label))) await new Promise((r) => setTimeout(r, 20));
    await locker.query('rollback');
    await locker.end();
    await undoing;
    assert.deepEqual(await digests(pair, 'source'), await digests(pair, 'target'));
    for (const [sequence, last] of Object.entries(used)) {
      const next = await pair.sql('source', `select nextval('${sequence}')::text as v`);
      assert.ok(BigInt(next.rows[0].v) > last, `${sequence}: the source's next value ${next.rows[0].v} was used on the target (${last})`);
    }
    const left = await reverseStatus(await pool(t.ctx, 'source'), await pool(t.ctx, 'target'), NAMES);
    assert.equal(left.state, 'absent');
    const fence = await pair.sql('source', "select count(*)::int as n from pg_replication_slots where slot_name = 'migrate_fence'");
    assert.equal(fence.rows[0].n, 0, 'the write fence is dropped with the reverse replication');
    // Undo again: nothing to do, nothing fails.
    await reverseReplication.undo!(context().ctx, p, applied, undefined);
  });

  it('an apply killed after creating the publication and the slot completes when run again', async () => {
    // What an attempt killed right after pg_create_logical_replication_slot leaves: its records, both objects, no LSN record.
    const recorded: Json[] = [
      { action: 'reverse-create-publication', name: p.publication },
      { action: 'reverse-create-slot', name: p.slot },
    ];
    await pair.sql('target', `create publication ${p.publication} for all tables with (publish_via_partition_root = true)`);
    const slot = await pair.sql('target', `select lsn::text from pg_create_logical_replication_slot('${p.slot}', 'pgoutput')`);
    const t = context('reverse', recorded);
    const result = await reverseReplication.apply(t.ctx, p);
    assert.equal(result.lsn, slot.rows[0].lsn, 'the switch point is where the slot was created');
    assert.deepEqual(
      t.changes.map((c) => (c as { action: string }).action),
      ['reverse-slot-lsn', 'reverse-create-subscription'],
    );
    applied = [...recorded, ...t.changes];
    await appWritesOnTarget(pair, 3);
  });

  it('an undo killed after dropping the subscription completes when run again, and loses nothing', async () => {
    // Killed right after the wait, the carry-back and DROP SUBSCRIPTION (which dropped the slot too).
    await reverseReplication.undo!(
      pair.context({ stepId: 'reverse' }).ctx,
      { ...p, deadlineSeconds: 300 },
      applied.filter((c) => (c as { action: string }).action === 'reverse-create-subscription'),
      undefined,
    );
    assert.equal(
      (await pair.sql('target', `select count(*)::int as n from pg_publication where pubname = '${p.publication}'`)).rows[0].n,
      1,
    );
    await reverseReplication.undo!(context().ctx, p, applied, undefined);
    assert.deepEqual(await digests(pair, 'source'), await digests(pair, 'target'));
    assert.equal(
      (await pair.sql('target', `select count(*)::int as n from pg_publication where pubname = '${p.publication}'`)).rows[0].n,
      0,
    );
  });
  it('an undo killed with SIGKILL while it waits for the source completes when run again, and loses nothing', async () => {
    const t = context('reverse-again');
    await reverseReplication.apply(t.ctx, p);
    const locker = await pair.source.client(DATABASE);
    await locker.query('begin');
    await locker.query('lock table billing.customers in share mode');
    await appWritesOnTarget(pair, 4);
    const outputsFile = join(pair.dir, 'outputs.json');
    const changesFile = join(pair.dir, 'changes.json');
    writeFileSync(outputsFile, JSON.stringify(pair.outputs));
    writeFileSync(changesFile, JSON.stringify(t.changes));
    // The CLI's rollback in its own process: it reports its wait, then dies without a chance to clean up.
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', UNDO_CHILD], {
      env: { ...process.env, OUTPUTS: outputsFile, CHANGES: changesFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    await until(
      'the child waits for the source',
      async () => out,
      (o) => o.includes('WAITING') || child.exitCode !== null,
    );
    assert.ok(out.includes('WAITING'), out);
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    const mid = await reverseStatus(await pool(t.ctx, 'source'), await pool(t.ctx, 'target'), NAMES);
    assert.notEqual(mid.subscription, null, 'nothing was dropped before the source had applied everything');
    await locker.query('rollback');
    await locker.end();
    await reverseReplication.undo!(context('reverse-again').ctx, p, t.changes, undefined);
    assert.deepEqual(await digests(pair, 'source'), await digests(pair, 'target'));
    assert.equal((await reverseStatus(await pool(t.ctx, 'source'), await pool(t.ctx, 'target'), NAMES)).state, 'absent');
  });

  it('waitForWorker: false sets it up without the worker; reverse-health fails with the fix while it cannot run, then the slot has kept every write', async () => {
    // Every logical replication worker of the source busy (healthy subscriptions of their own): the
    // reverse subscription's worker cannot start, whatever the timing.
    const conninfo = reverseConninfo(pair.outputs.reversePath!, pair.outputs.database, pair.target.password);
    await pair.sql('target', 'create publication busy_pub');
    const { rows: free } = await pair.sql(
      'source',
      `select current_setting('max_logical_replication_workers')::int - (select count(*)::int from pg_stat_subscription where pid is not null) as n`,
    );
    const busy = Array.from({ length: free[0].n }, (_, i) => `busy_${i}`);
    for (const sub of busy)
      await pair.sql(
        'source',
        `create subscription ${sub} connection ${pg.escapeLiteral(conninfo)} publication busy_pub with (copy_data = false)`,
      );
    await until(
      'every worker runs',
      async () => (await pair.sql('source', 'select count(*)::int as n from pg_stat_subscription where pid is not null')).rows[0].n,
      (n) => n === busy.length,
    );
    const windowP = reverseReplication.params.parse({ pollMs: 20, waitForWorker: false });
    const t = pair.context({ stepId: 'reverse-window' });
    const result = await reverseReplication.apply(t.ctx, windowP);
    assert.deepEqual(await reverseReplication.check(t.ctx, windowP, result), [], 'inside the window: the objects exist, enabled');
    // Writes resume on the target while the worker cannot start.
    await appWritesOnTarget(pair, 5);

    const healthP = reverseHealth.params.parse({ pollMs: 20, workerDeadlineSeconds: 1 });
    const health = pair.context({ stepId: 'reverse-health' });
    assert.equal((await reverseHealth.probe(health.ctx, healthP)).state, 'ready');
    await assert.rejects(reverseHealth.apply(health.ctx, healthP), (error: StepError) => {
      assert.ok(error instanceof StepError, String(error));
      assert.match(error.message, /apply worker did not start/);
      const finding = error.findings.find((f) => f.object === 'subscription migrate_reverse (source)');
      assert.ok(finding?.fix && /server log/.test(finding.fix), JSON.stringify(error.findings));
      return true;
    });
    const failed = await reverseHealth.check(health.ctx, healthP, { subscription: NAMES.subscription, workerPid: 0 });
    assert.deepEqual(
      (failed ?? []).map((f) => f.object),
      ['subscription migrate_reverse (source)'],
    );

    // The fix (a free worker), and the health step again: the worker runs, and brings what the target took meanwhile.
    await pair.sql('source', `drop subscription ${busy[0]}`);
    const healed = await reverseHealth.apply(pair.context({ stepId: 'reverse-health' }).ctx, reverseHealth.params.parse({ pollMs: 20 }));
    assert.ok(healed.workerPid > 0);
    const target = await digests(pair, 'target');
    await until(
      'the source holds the writes made before its worker ran',
      () => digests(pair, 'source'),
      (d) => JSON.stringify(d) === JSON.stringify(target),
    );
    for (const sub of busy.slice(1)) await pair.sql('source', `drop subscription ${sub}`);
    await pair.sql('target', 'drop publication busy_pub');
    await reverseReplication.undo!(pair.context({ stepId: 'reverse-window' }).ctx, windowP, t.changes, undefined);
    assert.equal((await reverseStatus(await pool(t.ctx, 'source'), await pool(t.ctx, 'target'), NAMES)).state, 'absent');
  });
});

describe('reverse replication with a target role that is not a superuser (RDS’s master user)', () => {
  let pair: Pair;
  let restricted: StackOutputs;
  const ADMIN_PASSWORD = 'rds-admin-not-super-pw';
  const context = (previousChanges?: Json[]) => pair.context({ outputs: restricted, stepId: 'reverse', previousChanges });

  before(async () => {
    pair = await startPair();
    // The same app on both sides, as after the cutover: app-owned tables with row-level security, and a keyless one.
    const app = `${HOSTILE_SCHEMA + HOSTILE_SEED}
      set role app_owner; create table shop.events (at int not null, payload text); reset role;
      insert into shop.events select i, 'seed ' || i from generate_series(1, 5) i;`;
    for (const side of ['source', 'target'] as const) await pair.sql(side, HOSTILE_ROLES + app);
    // What rds_superuser has: LOGIN, CREATEROLE, CREATEDB, REPLICATION (rds_replication), the database it created; no superuser, no BYPASSRLS.
    await pair.sql(
      'target',
      `create role rds_admin login createrole createdb replication password '${ADMIN_PASSWORD}'; alter database ${DATABASE} owner to rds_admin;`,
    );
    const passwordRef = join(pair.dir, 'rds-admin.password');
    writeFileSync(passwordRef, ADMIN_PASSWORD, { mode: 0o600 });
    restricted = {
      ...pair.outputs,
      database: { ...pair.outputs.database, masterUsername: 'rds_admin', masterPasswordRef: `file:${passwordRef}` },
    };
  });
  after(async () => {
    await pair?.stop();
  });

  it('lists every table, gains the owner’s rights, streams, and rollback takes all of it back', async () => {
    const p = reverseReplication.params.parse({ pollMs: 20 });
    const ready = await reverseReady.probe(context().ctx, reverseReady.params.parse({}));
    assert.equal(ready.state, 'ready', JSON.stringify(ready.findings));
    assert.deepEqual(ready.result?.memberships, ['app_owner']);
    assert.deepEqual(ready.result?.keyless, ['shop.events']);

    const t = context();
    const result = await reverseReplication.apply(t.ctx, p);
    assert.equal(result.allTables, false);
    assert.deepEqual(result.membershipsGranted, ['app_owner']);
    assert.deepEqual(result.replicaIdentityFull, ['shop.events']);
    const published = await pair.sql(
      'target',
      `select string_agg(schemaname || '.' || tablename, ',' order by schemaname, tablename) as t from pg_publication_tables where pubname = '${p.publication}'`,
    );
    assert.equal(published.rows[0].t, 'public.app_settings,shop.events,shop.ledger,shop.orders,shop.products');
    const role = await pair.sql('target', "select rolsuper, rolbypassrls from pg_roles where rolname = 'rds_admin'");
    assert.deepEqual(role.rows[0], { rolsuper: false, rolbypassrls: false });
    assert.deepEqual(await reverseReplication.check(t.ctx, p, result), []);

    await asRole(pair.target, 'app_rw', APP_ROLE_PASSWORD, [
      "insert into shop.orders (tenant, product_id, qty) values ('globex', 2, 9)",
      "update shop.orders set note = 'edited on RDS' where tenant = 'acme'",
      "delete from shop.ledger where ref = 'ref-1'",
      "select nextval('shop.invoice_no') from generate_series(1, 4)",
    ]);
    await asRole(pair.target, 'app_owner', APP_ROLE_PASSWORD, [
      "insert into shop.events values (6, 'on RDS')",
      "update shop.events set payload = 'edited on RDS' where at = 2",
      'delete from shop.events where at = 3',
    ]);
    const used = await sequenceValues(pair, 'target');
    await reverseReplication.undo!(context().ctx, p, t.changes, result);

    assert.deepEqual(await digests(pair, 'source'), await digests(pair, 'target'));
    for (const [sequence, last] of Object.entries(used)) {
      const next = await pair.sql('source', `select nextval('${sequence}')::text as v`);
      assert.ok(BigInt(next.rows[0].v) > last, `${sequence}: ${next.rows[0].v} after ${last}`);
    }
    const member = await pair.sql('target', "select pg_has_role('rds_admin', 'app_owner', 'MEMBER') as m");
    assert.equal(member.rows[0].m, false, 'the membership is taken back');
    const identity = await pair.sql('target', "select relreplident from pg_class where oid = 'shop.events'::regclass");
    assert.equal(identity.rows[0].relreplident, 'd');
    const slots = await pair.sql('target', 'select count(*)::int as n from pg_replication_slots');
    assert.equal(slots.rows[0].n, 0);
  });
});
