/**
 * The PostgreSQL half of a cutover, step by step on two real servers, with an application writing
 * to the source from before the initial copy until the freeze stops it: afterwards every table is
 * identical on both sides and every target sequence is at least the source's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Json } from '../../migrate/core/step.ts';
import { replicationStatus } from '../../migrate/postgres/status.ts';
import { catchUp } from '../../migrate/steps/postgres/catch-up.ts';
import { freezeWrites } from '../../migrate/steps/postgres/freeze-writes.ts';
import { preflight } from '../../migrate/steps/postgres/preflight.ts';
import { replicationStart } from '../../migrate/steps/postgres/replication-start.ts';
import { replicationStop } from '../../migrate/steps/postgres/replication-stop.ts';
import { schemaCopy } from '../../migrate/steps/postgres/schema-copy.ts';
import { sequenceSync } from '../../migrate/steps/postgres/sequence-sync.ts';
import { writeFence } from '../../migrate/steps/postgres/write-fence.ts';
import { type Pair, ROLES, SCHEMA, SEED, startPair, startWriter, TARGET_ROLES, tableDigests, type Writer } from './fixtures.ts';

describe('postgres cutover steps', () => {
  let pair: Pair;
  let writer: Writer;
  const results: Json[] = [];
  const context = (stepId: string) => pair.context({ stepId });

  before(async () => {
    pair = await startPair();
    await pair.sql('source', SCHEMA + SEED + ROLES);
    await pair.sql('target', TARGET_ROLES);
  });
  after(async () => {
    writer?.stop();
    await writer?.finished.catch(() => {});
    await pair?.stop();
  });

  it('preflight passes once the key-less table gets REPLICA IDENTITY FULL, and undo puts it back', async () => {
    const t = context('preflight');
    const refusing = await preflight.probe(t.ctx, preflight.params.parse({}));
    assert.equal(refusing.state, 'blocked');
    assert.deepEqual(
      refusing.findings?.filter((f) => f.severity === 'error').map((f) => f.object),
      ['table crm.audit_log'],
    );

    const p = preflight.params.parse({ replicaIdentityFull: true });
    assert.equal((await preflight.probe(t.ctx, p)).state, 'ready');
    const result = await preflight.apply(t.ctx, p);
    assert.deepEqual(result.replicaIdentityFull, ['crm.audit_log']);
    assert.deepEqual(t.changes, [{ action: 'replica-identity-full', table: 'crm.audit_log', previous: 'default' }]);
    assert.deepEqual(await preflight.check(t.ctx, p, result), []);
    assert.equal((await preflight.probe(t.ctx, p)).state, 'done');

    await preflight.undo!(t.ctx, p, t.changes, result);
    const identity = await pair.sql('source', "select relreplident from pg_class where oid = 'crm.audit_log'::regclass");
    assert.equal(identity.rows[0].relreplident, 'd');
    await preflight.apply(t.retry().ctx, p);
  });

  it('copies the schema, and a second run finds it done', async () => {
    const t = context('schema');
    const p = schemaCopy.params.parse({});
    assert.equal((await schemaCopy.probe(t.ctx, p)).state, 'ready');
    const result = await schemaCopy.apply(t.ctx, p);
    assert.deepEqual(result, { schemas: 3, tables: 6, sequences: 4, types: 2 });
    assert.deepEqual(await schemaCopy.check(t.ctx, p, result), []);
    assert.equal((await schemaCopy.probe(t.ctx, p)).state, 'done');
    assert.deepEqual(await schemaCopy.apply(t.retry().ctx, p), result);
    const owners = await pair.sql(
      'target',
      "select count(*)::int as n from pg_class where relname = 'customers' and relowner = (select oid from pg_roles where rolname = 'postgres')",
    );
    assert.equal(owners.rows[0].n, 1);
  });

  it('starts replication while the application writes, reporting per-table progress, without duplicates on rerun', async () => {
    writer = startWriter(pair.source);
    const t = context('replicate');
    const p = replicationStart.params.parse({ pollMs: 50, binary: true });
    const before = writer.committed;
    const result = await replicationStart.apply(t.ctx, p);
    results.push(result);
    assert.equal(result.tables, 4, 'publish_via_partition_root: the partitioned root replaces its two leaves');
    assert.equal(result.binary, true);
    assert.ok(
      t.progress.some((pr) => pr.total === 4 && typeof pr.done === 'number'),
      'per-table progress',
    );
    assert.deepEqual(t.changes, [
      { action: 'create-publication', name: 'migrate_pub' },
      { action: 'create-subscription', name: 'migrate_sub', slot: 'migrate_sub' },
    ]);
    assert.deepEqual(await replicationStart.check(t.ctx, p, result), []);

    const again = t.retry();
    assert.equal((await replicationStart.probe(again.ctx, p)).state, 'done');
    await replicationStart.apply(again.ctx, p);
    assert.deepEqual(again.changes, []);
    const counts = await pair.sql(
      'source',
      'select (select count(*) from pg_publication)::int as pubs, (select count(*) from pg_replication_slots where not temporary)::int as slots',
    );
    assert.deepEqual(counts.rows[0], { pubs: 1, slots: 1 });

    // Keep writing through the streaming phase, too.
    const target = before + 100;
    while (writer.committed < target) await new Promise((r) => setImmediate(r));
  });

  it('reports replication status as JSON', async () => {
    const t = context('status');
    const status = (await replicationStatus(t.ctx)) as any;
    assert.equal(status.target.exists, true);
    assert.equal(status.target.enabled, true);
    assert.deepEqual(status.target.tables.ready, 4);
    assert.equal(status.source.slot.active, true);
    assert.equal(typeof status.lag.bytes, 'number');
    assert.ok(['reserved', 'extended'].includes(status.source.slot.walStatus));
  });

  it('freezes, catches up, syncs sequences and stops replication: both sides identical', async () => {
    const writesBeforeFreeze = writer.committed;
    assert.ok(writesBeforeFreeze > 100, `the writer kept writing during the sync (${writesBeforeFreeze})`);

    const freeze = context('freeze');
    const frozen = await freezeWrites.apply(freeze.ctx, freezeWrites.params.parse({}));
    results.push(frozen);
    assert.deepEqual(frozen.roles, ['app_reader', 'app_writer']);
    const stopped = await writer.finished;
    assert.equal(stopped.stoppedBy, 'frozen', 'the writer was stopped by the freeze, not by its bound');
    assert.deepEqual(await freezeWrites.check(freeze.ctx, freezeWrites.params.parse({}), frozen), []);

    const catching = context('catch-up');
    const caught = await catchUp.apply(catching.ctx, catchUp.params.parse({}));
    results.push(caught);
    assert.deepEqual(await catchUp.check(catching.ctx, catchUp.params.parse({}), caught), []);
    assert.equal(
      (await writeFence.apply(context('write-fence').ctx, writeFence.params.parse({}))).slot,
      'migrate_fence',
      'nothing written since the freeze',
    );

    const sequences = context('sequences');
    const synced = await sequenceSync.apply(sequences.ctx, sequenceSync.params.parse({}));
    results.push(synced);
    assert.equal(synced.sequences, 4);
    assert.deepEqual(await sequenceSync.check(sequences.ctx, sequenceSync.params.parse({}), synced), []);

    const stop = context('stop');
    const p = replicationStop.params.parse({});
    const dropped = await replicationStop.apply(stop.ctx, p);
    results.push(dropped);
    assert.deepEqual(dropped, { subscriptionDropped: true, slotDropped: true, publicationDropped: true });
    assert.deepEqual(await replicationStop.check(stop.ctx, p, dropped), []);
    assert.equal(
      (await pair.sql('source', 'select count(*)::int as n from pg_replication_slots')).rows[0].n,
      0,
      'no slot left to hold WAL',
    );
    assert.equal((await replicationStop.probe(stop.ctx, p)).state, 'done');

    const [source, target] = await Promise.all([tableDigests((q) => pair.sql('source', q)), tableDigests((q) => pair.sql('target', q))]);
    assert.deepEqual(target, source);
    assert.ok(Number(source['billing.customers']!.split(' ')[0]) >= 300 + writesBeforeFreeze);

    const seqs = `select schemaname || '.' || sequencename as s, last_value::text as v from pg_sequences order by 1`;
    const [src, tgt] = [(await pair.sql('source', seqs)).rows, (await pair.sql('target', seqs)).rows];
    assert.deepEqual(tgt, src, 'target sequences equal the source (never-called ones stay uncalled)');
    const next = await pair.sql('target', "select nextval('billing.never_used') as a, nextval('billing.invoice_number') as b");
    const sourceLast = src.find((r) => r.s === 'billing.invoice_number')!.v;
    assert.deepEqual(next.rows[0], { a: '77', b: String(Number(sourceLast) + 1) });
  });

  it('undoing the freeze lets the application write again', async () => {
    const freeze = pair.contexts.find((t) => t.ctx.stepId === 'freeze')!;
    await freezeWrites.undo!(freeze.ctx, freezeWrites.params.parse({}), freeze.changes, undefined);
    const again = startWriter(pair.source, 3);
    assert.deepEqual(await again.finished, { committed: 3, stoppedBy: 'bound' });
  });

  it('never lets the source password out: not in lines, changes, progress or results', () => {
    const secret = pair.source.password;
    for (const t of pair.contexts) {
      const text = JSON.stringify({ lines: t.lines, changes: t.changes, progress: t.progress });
      assert.ok(!text.includes(secret), `${t.ctx.stepId} leaked the password`);
    }
    assert.ok(!JSON.stringify(results).includes(secret));
  });
});
