/**
 * 13 → 17 forward makes the reverse 17 → 13: the PostgreSQL 17 target publishes, the PostgreSQL 13
 * source subscribes. After a real forward cutover, the application's writes on 17 reach 13, the kept
 * write fence on 13 sets aside what the 13 subscriber applied (its origin), and rollback carries every
 * row and sequence back to 13 and drops everything.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { embeddedBindir } from '../../migrate/local/postgres-server.ts';
import { pool } from '../../migrate/postgres/connections.ts';
import { reverseStatus, waitApplied } from '../../migrate/postgres/reverse-replication.ts';
import { catchUp } from '../../migrate/steps/postgres/catch-up.ts';
import { freezeWrites } from '../../migrate/steps/postgres/freeze-writes.ts';
import { replicationStart } from '../../migrate/steps/postgres/replication-start.ts';
import { replicationStop } from '../../migrate/steps/postgres/replication-stop.ts';
import { reverseReady, reverseReplication } from '../../migrate/steps/postgres/reverse-replication.ts';
import { schemaCopy } from '../../migrate/steps/postgres/schema-copy.ts';
import { sequenceSync } from '../../migrate/steps/postgres/sequence-sync.ts';
import { writeFence } from '../../migrate/steps/postgres/write-fence.ts';
import { APP_ROLE_PASSWORD, HOSTILE_ROLES, HOSTILE_SCHEMA, HOSTILE_SEED } from '../support/hostile-app.ts';
import { APP_PASSWORD, DATABASE, type Pair, ROLES, SCHEMA, SEED, startPair, TARGET_ROLES, tableDigests } from './fixtures.ts';

describe('reverse replication from a PostgreSQL 17 target to a PostgreSQL 13 source', () => {
  let pair: Pair;
  const step = (id: string) => pair.context({ stepId: id }).ctx;

  before(async () => {
    pair = await startPair({ source: { bindir: embeddedBindir('pg13-bin') }, target: { bindir: embeddedBindir('pg17-bin') } });
    assert.deepEqual([pair.source.major, pair.target.major], [13, 17]);
    await pair.sql('source', `${SCHEMA + SEED + ROLES}alter table crm.audit_log replica identity full;`);
    await pair.sql('target', TARGET_ROLES);
    await schemaCopy.apply(step('schema'), schemaCopy.params.parse({ withPrivileges: true }));
    await replicationStart.apply(step('replication'), replicationStart.params.parse({ pollMs: 50 }));
    const ready = await reverseReady.probe(pair.context({ stepId: 'reverse-ready' }).ctx, reverseReady.params.parse({}));
    assert.equal(ready.state, 'ready', JSON.stringify(ready.findings));
    await freezeWrites.apply(step('freeze'), freezeWrites.params.parse({}));
    await catchUp.apply(step('catch-up'), catchUp.params.parse({}));
    await writeFence.apply(step('fence'), writeFence.params.parse({ keepSlot: true }));
    await sequenceSync.apply(step('sequences'), sequenceSync.params.parse({}));
    await replicationStop.apply(step('stop'), replicationStop.params.parse({}));
  });
  after(async () => {
    await pair?.stop();
  });

  it('streams 17’s writes to 13, the fence on 13 sets them aside, and rollback brings rows and sequences back', async () => {
    const p = reverseReplication.params.parse({ pollMs: 20 });
    const t = pair.context({ stepId: 'reverse' });
    const result = await reverseReplication.apply(t.ctx, p);
    assert.deepEqual(await reverseReplication.check(t.ctx, p, result), []);

    const app = new pg.Client({ connectionString: pair.target.url(DATABASE, 'app_writer', APP_PASSWORD) });
    await app.connect();
    try {
      for (let i = 0; i < 20; i++) {
        await app.query('begin');
        const { rows } = await app.query<{ id: string }>('insert into billing.customers (name) values ($1) returning id', [`on 17 ${i}`]);
        await app.query('insert into billing.invoices (customer_id, amount) values ($1, 5)', [rows[0]!.id]);
        await app.query("insert into crm.events values ($1, timestamptz '2024-02-01' + $2::int * interval '1 hour', 'on 17', null)", [
          rows[0]!.id,
          i,
        ]);
        await app.query('update billing.customers set touched = touched + 1 where id = $1', [1 + i]);
        await app.query("update crm.audit_log set message = message || '+' where message = 'seeded ' || $1::text", [1 + i]);
        await app.query('delete from billing.invoices where id = $1', [10 + i]);
        await app.query("select nextval('billing.invoice_number')");
        await app.query('commit');
      }
    } finally {
      await app.end();
    }
    const used: Record<string, bigint> = Object.fromEntries(
      (await pair.sql('target', "select schemaname || '.' || sequencename as s, last_value::text as v from pg_sequences")).rows.map((r) => [
        r.s,
        BigInt(r.v ?? 0),
      ]),
    );

    const [source, target] = [await pool(t.ctx, 'source'), await pool(t.ctx, 'target')];
    assert.equal((await reverseStatus(source, target, p)).workerRunning, true);
    await waitApplied(t.ctx, source, target, p, { deadline: t.ctx.now() + 300_000, pollMs: 20 });
    // What the 13 subscriber applied carries its origin: the kept fence on 13 sets it aside.
    const fence = await writeFence.apply(step('fence-end'), writeFence.params.parse({ keepSlot: true }));
    assert.ok((fence.reverseApplied ?? 0) >= 100, `set aside: ${fence.reverseApplied}`);

    await reverseReplication.undo!(pair.context({ stepId: 'reverse' }).ctx, p, t.changes, result);
    assert.deepEqual(await tableDigests((q) => pair.sql('source', q)), await tableDigests((q) => pair.sql('target', q)));
    for (const [sequence, last] of Object.entries(used)) {
      const next = await pair.sql('source', `select nextval('${sequence}')::text as v`);
      assert.ok(BigInt(next.rows[0].v) > last, `${sequence}: 13 would hand out ${next.rows[0].v}, used on 17 up to ${last}`);
    }
    const left = await reverseStatus(await pool(t.ctx, 'source'), await pool(t.ctx, 'target'), p);
    assert.equal(left.state, 'absent');
  });
});

describe('reverse replication into a PostgreSQL 17 source, whose apply worker would act as each table’s owner', () => {
  let pair: Pair;

  before(async () => {
    pair = await startPair({ source: { bindir: embeddedBindir('pg17-bin') }, target: { bindir: embeddedBindir('pg17-bin') } });
    // The same app on both sides; on the source its owner is frozen and its row-level security forced.
    for (const side of ['source', 'target'] as const) await pair.sql(side, HOSTILE_ROLES + HOSTILE_SCHEMA + HOSTILE_SEED);
    await pair.sql('source', 'alter table shop.orders force row level security');
  });
  after(async () => {
    await pair?.stop();
  });

  it('applies the target’s writes on frozen app-owned tables with forced row-level security', async () => {
    await freezeWrites.apply(pair.context({ stepId: 'freeze' }).ctx, freezeWrites.params.parse({}));
    const p = reverseReplication.params.parse({ pollMs: 20, deadlineSeconds: 120 });
    const t = pair.context({ stepId: 'reverse' });
    const result = await reverseReplication.apply(t.ctx, p);
    const owner = new pg.Client({ connectionString: pair.target.url(DATABASE, 'app_rw', APP_ROLE_PASSWORD) });
    await owner.connect();
    await owner.query("insert into shop.orders (tenant, product_id, qty) values ('acme', 1, 1), ('globex', 2, 2)");
    await owner.query("update shop.orders set note = 'on RDS' where tenant = 'globex'");
    await owner.end();
    await reverseReplication.undo!(pair.context({ stepId: 'reverse' }).ctx, p, t.changes, result);
    const digest = (side: 'source' | 'target') =>
      pair.sql(side, "select count(*)::int as n, md5(string_agg(o::text, '|' order by o.id)) as h from shop.orders o");
    assert.deepEqual((await digest('source')).rows[0], (await digest('target')).rows[0]);
  });
});
