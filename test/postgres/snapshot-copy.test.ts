/**
 * The initial copy done pgcopydb's way, on two real servers with the application writing throughout:
 * schema without indexes, a slot exporting its snapshot, the tables copied from it in parallel, the
 * indexes built afterwards, and a subscription attached to the slot. An interrupted copy is redone
 * from a new snapshot without duplicating a row, and the target ends identical to the source.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Json } from '../../migrate/core/step.ts';
import { pool } from '../../migrate/postgres/connections.ts';
import { postDataInventory } from '../../migrate/postgres/schema-inventory.ts';
import { catchUp } from '../../migrate/steps/postgres/catch-up.ts';
import { freezeWrites } from '../../migrate/steps/postgres/freeze-writes.ts';
import { replicationStart } from '../../migrate/steps/postgres/replication-start.ts';
import { replicationStop } from '../../migrate/steps/postgres/replication-stop.ts';
import { schemaCopy } from '../../migrate/steps/postgres/schema-copy.ts';
import { snapshotCopy } from '../../migrate/steps/postgres/snapshot-copy.ts';
import { writeFence } from '../../migrate/steps/postgres/write-fence.ts';
import { type Pair, ROLES, SCHEMA, SEED, startPair, startWriter, tableDigests, type Writer } from './fixtures.ts';

/** A table with rows but no columns: legal, replicated, and a COPY with no column list. */
const ZERO_COLUMNS =
  'create table public.markers (); alter table public.markers replica identity full; insert into public.markers default values; insert into public.markers default values;';

describe('postgres.snapshot-copy between schema pre-data and post-data', () => {
  let pair: Pair;
  let writer: Writer;
  const context = (stepId: string, previousChanges: Json[] = []) => pair.context({ stepId, previousChanges });
  const actions = (changes: Json[]) => changes.map((c) => (c as { action: string }).action);

  before(async () => {
    pair = await startPair();
    await pair.sql('source', `${SCHEMA + SEED + ROLES}alter table crm.audit_log replica identity full;${ZERO_COLUMNS}`);
  });
  after(async () => {
    writer?.stop();
    await writer?.finished.catch(() => {});
    await pair?.stop();
  });

  it('pre-data copies tables without their indexes, keys or triggers', async () => {
    const t = context('schema');
    const p = schemaCopy.params.parse({ section: 'pre-data' });
    const result = await schemaCopy.apply(t.ctx, p);
    assert.deepEqual(result, { schemas: 3, tables: 7, sequences: 4, types: 2 });
    const built = await pair.sql(
      'target',
      "select count(*)::int as n from pg_index x join pg_class c on c.oid = x.indrelid join pg_namespace n on n.oid = c.relnamespace where n.nspname in ('billing', 'crm')",
    );
    assert.equal(built.rows[0].n, 0);
    const post = schemaCopy.params.parse({ section: 'post-data' });
    const probe = await schemaCopy.probe(t.ctx, post);
    assert.equal(probe.state, 'ready');
    assert.match(probe.plan!.join('\n'), /pg_restore --jobs=4 of the \d+ missing/);
  });

  it('refuses before changing anything when a target table already holds rows', async () => {
    await pair.sql('target', "insert into crm.audit_log (message) values ('stray')");
    const t = context('copy-refused');
    const probe = await snapshotCopy.probe(t.ctx, snapshotCopy.params.parse({}));
    assert.equal(probe.state, 'blocked');
    assert.match(
      probe.findings!.map((f) => f.message).join('\n'),
      /1 table\(s\) already hold rows, which the copy would duplicate: crm\.audit_log/,
    );
    await assert.rejects(snapshotCopy.apply(t.ctx, snapshotCopy.params.parse({})), /already hold rows/);
    assert.deepEqual(t.changes, []);
    assert.equal((await pair.sql('source', 'select count(*)::int as n from pg_publication')).rows[0].n, 0, 'nothing created on the source');
    await pair.sql('target', 'truncate crm.audit_log');
  });

  it('an interrupted copy is redone from a new snapshot, emptying what the first attempt committed', async () => {
    writer = startWriter(pair.source, 100_000);
    const p = snapshotCopy.params.parse({ jobs: 1 });
    // audit_log is the smallest table, copied last with one job: the larger ones commit before the copy blocks on it.
    const locker = await pair.target.client('app');
    await locker.query('begin');
    await locker.query('lock table crm.audit_log in share mode');
    const first = context('copy');
    const attempt = snapshotCopy.apply(first.ctx, p);
    attempt.catch(() => {});
    while (!first.progress.some((x) => x.done === 3)) await new Promise((r) => setTimeout(r, 50));
    const committed = await pair.sql('target', 'select count(*)::int as n from billing.customers');
    assert.ok(committed.rows[0].n >= 300, 'the first attempt committed tables before it was interrupted');
    await first.close();
    await assert.rejects(attempt, /interrupted/);
    await locker.query('rollback');
    await locker.end();
    assert.deepEqual(actions(first.changes), ['create-publication', 'create-slot']);

    const second = context('copy', first.changes);
    const probe = await snapshotCopy.probe(second.ctx, p);
    assert.equal(probe.state, 'ready');
    assert.match(probe.plan!.join('\n'), /drop slot migrate_sub, left by an interrupted copy, and empty the 5 table\(s\)/);
    const result = await snapshotCopy.apply(second.ctx, snapshotCopy.params.parse({ jobs: 3 }));
    assert.equal(result.tables, 5, 'the partitioned table is copied through its root');
    assert.ok(result.rows! > 1000);
    assert.match(result.consistentPoint!, /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.deepEqual(actions(second.changes), ['create-slot', 'copy-complete']);
    // Keys of the plain tables, built right after each copy; the first attempt had built some already.
    assert.ok(first.progress.some((x) => x.detail?.includes('indexes built')));
    const keys = await pair.sql(
      'target',
      "select conname from pg_constraint where contype = 'p' and conrelid::regclass::text like 'billing.%' order by 1",
    );
    assert.deepEqual(
      keys.rows.map((r) => r.conname),
      ['customers_pkey', 'invoices_pkey'],
    );
    const foreign = await pair.sql('target', "select count(*)::int as n from pg_constraint where contype = 'f'");
    assert.equal(foreign.rows[0].n, 0, 'foreign keys wait for post-data');
    assert.ok(second.progress.some((x) => x.label === 'initial copy' && x.total === 5));
    assert.deepEqual(await snapshotCopy.check(second.ctx, p, result), []);

    const again = context('copy', [...first.changes, ...second.changes]);
    const done = await snapshotCopy.probe(again.ctx, p);
    assert.equal(done.state, 'done');
    assert.deepEqual(done.result, result);
    const slots = await pair.sql('source', 'select slot_name, active from pg_replication_slots');
    assert.deepEqual(slots.rows, [{ slot_name: 'migrate_sub', active: false }], 'one slot, waiting for the subscription');
  });

  it('post-data builds every index, key and trigger; a rerun finds it done', async () => {
    const t = context('indexes');
    const p = schemaCopy.params.parse({ section: 'post-data', jobs: 2 });
    const result = await schemaCopy.apply(t.ctx, p);
    // What the copy did not build: the foreign key and the partitioned table's key and indexes.
    assert.ok('built' in result && result.built > 0 && result.built < result.postData, JSON.stringify(result));
    assert.deepEqual(await schemaCopy.check(t.ctx, p, result), []);
    const [source, target] = [await postDataInventory(await pool(t.ctx, 'source')), await postDataInventory(await pool(t.ctx, 'target'))];
    assert.deepEqual(target, source);
    assert.ok(source.includes('constraint billing.invoices.invoices_customer_id_fkey'));
    assert.equal((await schemaCopy.probe(t.ctx, p)).state, 'done');
  });

  it('the subscription attaches to the slot and streams everything since the snapshot: both sides identical', async () => {
    const t = context('replication');
    const p = replicationStart.params.parse({ copyData: false, pollMs: 50 });
    const result = await replicationStart.apply(t.ctx, p);
    assert.equal(result.tables, 5);
    assert.deepEqual(t.changes, [{ action: 'create-subscription', name: 'migrate_sub', slot: 'migrate_sub', attached: true }]);
    assert.equal(
      (await snapshotCopy.probe(context('copy').ctx, snapshotCopy.params.parse({}))).state,
      'done',
      'a subscription on the slot means the copy is done',
    );

    const writes = writer.committed;
    while (writer.committed < writes + 50) await new Promise((r) => setTimeout(r, 20));
    await freezeWrites.apply(context('freeze').ctx, freezeWrites.params.parse({}));
    assert.equal((await writer.finished).stoppedBy, 'frozen');
    await catchUp.apply(context('catch-up').ctx, catchUp.params.parse({}));
    await writeFence.apply(context('write-fence').ctx, writeFence.params.parse({}));
    await replicationStop.apply(context('stop').ctx, replicationStop.params.parse({}));

    const [source, target] = await Promise.all([tableDigests((q) => pair.sql('source', q)), tableDigests((q) => pair.sql('target', q))]);
    assert.deepEqual(target, source);
    assert.ok(Number(source['billing.customers']!.split(' ')[0]) > 300 + 50);
    assert.equal(target['public.markers'], source['public.markers']);
    assert.match(source['public.markers']!, /^2 /);
  });

  it('undo drops the slot and publication it made and keeps the copied rows', async () => {
    const t = context('copy-undo');
    await pair.sql('source', 'create publication migrate_pub for all tables');
    await pair.sql('source', "select pg_create_logical_replication_slot('migrate_sub', 'pgoutput')");
    await snapshotCopy.undo!(
      t.ctx,
      snapshotCopy.params.parse({}),
      [
        { action: 'create-publication', name: 'migrate_pub' },
        { action: 'create-slot', slot: 'migrate_sub', tables: ['billing.customers'] },
      ],
      undefined,
    );
    assert.equal((await pair.sql('source', 'select count(*)::int as n from pg_replication_slots')).rows[0].n, 0);
    assert.equal((await pair.sql('source', 'select count(*)::int as n from pg_publication')).rows[0].n, 0);
    assert.ok((await pair.sql('target', 'select count(*)::int as n from billing.customers')).rows[0].n > 300);
    assert.match(t.lines.join('\n'), /keep their rows on the target/);
  });
});
