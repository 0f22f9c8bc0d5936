/**
 * A PostgreSQL 13 source into a PostgreSQL 17 target, as real migrations off old self-managed
 * servers go: schema through pg_dump 15, rows through logical replication, with writes running
 * during the copy, and a resumed replication-start after a crash that left its slot behind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { embeddedBindir } from '../../migrate/local/postgres-server.ts';
import { catchUp } from '../../migrate/steps/postgres/catch-up.ts';
import { freezeWrites } from '../../migrate/steps/postgres/freeze-writes.ts';
import { replicationStart } from '../../migrate/steps/postgres/replication-start.ts';
import { replicationStop } from '../../migrate/steps/postgres/replication-stop.ts';
import { schemaCopy } from '../../migrate/steps/postgres/schema-copy.ts';
import { sequenceSync } from '../../migrate/steps/postgres/sequence-sync.ts';
import { snapshotCopy } from '../../migrate/steps/postgres/snapshot-copy.ts';
import { writeFence } from '../../migrate/steps/postgres/write-fence.ts';
import { type Pair, ROLES, SCHEMA, SEED, startPair, startWriter, tableDigests } from './fixtures.ts';

describe('PostgreSQL 13 source into a PostgreSQL 17 target', () => {
  let pair: Pair;
  const context = () => pair.context();

  before(async () => {
    pair = await startPair({ source: { bindir: embeddedBindir('pg13-bin') }, target: { bindir: embeddedBindir('pg17-bin') } });
    assert.deepEqual([pair.source.major, pair.target.major], [13, 17]);
    await pair.sql('source', `${SCHEMA + SEED + ROLES}alter table crm.audit_log replica identity full;`);
  });
  after(async () => {
    await pair?.stop();
  });

  it('copies schema and data, streams the writes, and both sides end identical', async () => {
    const schema = context();
    await schemaCopy.apply(schema.ctx, schemaCopy.params.parse({}));
    assert.deepEqual(
      await schemaCopy.check(schema.ctx, schemaCopy.params.parse({}), { schemas: 0, tables: 0, sequences: 0, types: 0 }),
      [],
    );

    const writer = startWriter(pair.source);
    const p = replicationStart.params.parse({ pollMs: 50, binary: true });
    // An earlier attempt journalled the subscription and died after the source created its slot.
    const crashed = context();
    await crashed.ctx.record({ action: 'create-subscription', name: p.subscription, slot: p.subscription });
    await pair.sql('source', `select pg_create_logical_replication_slot('${p.subscription}', 'pgoutput')`);
    const resumed = crashed.retry();
    pair.contexts.push(resumed);
    const started = await replicationStart.apply(resumed.ctx, p);
    assert.equal(started.binary, false, 'binary transfer needs 14+ on both sides');
    assert.equal(started.streaming, false);
    assert.ok(resumed.lines.some((l) => /interrupted earlier attempt/.test(l)));
    const slots = await pair.sql('source', 'select count(*)::int as n from pg_replication_slots');
    assert.equal(slots.rows[0].n, 1);

    const floor = writer.committed + 50;
    while (writer.committed < floor) await new Promise((r) => setImmediate(r));
    const frozen = await freezeWrites.apply(context().ctx, freezeWrites.params.parse({}));
    assert.equal((await writer.finished).stoppedBy, 'frozen');
    const catching = context();
    const caught = await catchUp.apply(catching.ctx, catchUp.params.parse({}));
    assert.deepEqual(
      await catchUp.check(catching.ctx, catchUp.params.parse({}), { ...caught, lsn: frozen.lsn }),
      [],
      'confirmed past the freeze position',
    );
    await writeFence.apply(context().ctx, writeFence.params.parse({}));
    await sequenceSync.apply(context().ctx, sequenceSync.params.parse({}));
    assert.deepEqual(await sequenceSync.check(context().ctx, sequenceSync.params.parse({}), { sequences: 0, elapsedMs: 0 }), []);

    const [source, target] = await Promise.all([tableDigests((q) => pair.sql('source', q)), tableDigests((q) => pair.sql('target', q))]);
    assert.deepEqual(target, source);
    assert.ok(Number(source['billing.customers']!.split(' ')[0]) > 300);

    await replicationStop.apply(context().ctx, replicationStop.params.parse({}));
    assert.equal((await pair.sql('source', 'select count(*)::int as n from pg_replication_slots')).rows[0].n, 0);
  });

  it('copies the way week-prior.yaml does: snapshot of a 13 slot, COPY into 17, indexes after, subscription attached', async () => {
    // A second target database on the 17 server; the source is frozen by now, so both must end equal at once.
    await pair.sql('target', 'create database app_snapshot');
    const outputs = { ...pair.outputs, database: { ...pair.outputs.database, name: 'app_snapshot' } };
    const step = () => pair.context({ outputs });
    await schemaCopy.apply(step().ctx, schemaCopy.params.parse({ section: 'pre-data' }));
    const copy = step();
    const copied = await snapshotCopy.apply(copy.ctx, snapshotCopy.params.parse({ binary: true }));
    assert.equal(copied.format, 'text', 'binary COPY only between the same major versions');
    assert.equal(copied.tables, 4);
    const indexes = await schemaCopy.apply(step().ctx, schemaCopy.params.parse({ section: 'post-data' }));
    assert.ok(copied.indexesBuilt! > 0, 'keys of plain tables are built right after their copy');
    assert.ok('built' in indexes && indexes.built > 0 && indexes.built < indexes.postData, 'post-data builds the rest');
    const attached = await replicationStart.apply(step().ctx, replicationStart.params.parse({ copyData: false, pollMs: 50 }));
    assert.equal(attached.tables, 4);

    const onTarget = (q: string) =>
      pair.target.client('app_snapshot').then(async (c) => {
        try {
          return await c.query(q);
        } finally {
          await c.end();
        }
      });
    const [source, target] = await Promise.all([tableDigests((q) => pair.sql('source', q)), tableDigests(onTarget)]);
    assert.deepEqual(target, source);
    await replicationStop.apply(step().ctx, replicationStop.params.parse({}));
  });
});
