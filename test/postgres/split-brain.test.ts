/**
 * The write fence from the freeze to the end of D-day (split-brain detection), on real servers: an
 * advisory freeze, the fence kept inside the window, replication-stop (the forward publication is
 * gone), reverse replication. The rows the reverse subscription applies on the source carry its
 * replication origin and are set aside, also through the advisory freeze; a frozen role writing
 * anyway (BEGIN READ WRITE) and a superuser session are reported with table and key, and stay
 * reported on every rerun; undo drops the fence.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { StepError } from '../../migrate/core/step.ts';
import { pool } from '../../migrate/postgres/connections.ts';
import { PgoutputDecoder } from '../../migrate/postgres/pgoutput.ts';
import { waitApplied } from '../../migrate/postgres/reverse-replication.ts';
import { catchUp } from '../../migrate/steps/postgres/catch-up.ts';
import { freezeWrites } from '../../migrate/steps/postgres/freeze-writes.ts';
import { replicationStart } from '../../migrate/steps/postgres/replication-start.ts';
import { replicationStop } from '../../migrate/steps/postgres/replication-stop.ts';
import { reverseReplication } from '../../migrate/steps/postgres/reverse-replication.ts';
import { schemaCopy } from '../../migrate/steps/postgres/schema-copy.ts';
import { sequenceSync } from '../../migrate/steps/postgres/sequence-sync.ts';
import { writeFence } from '../../migrate/steps/postgres/write-fence.ts';
import { APP_PASSWORD, DATABASE, type Pair, ROLES, SCHEMA, SEED, startPair, TARGET_ROLES } from './fixtures.ts';

const fenceParams = writeFence.params.parse({ keepSlot: true });

async function asWriter(pair: Pair, side: 'source' | 'target', statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: pair[side].url(DATABASE, 'app_writer', APP_PASSWORD) });
  client.on('error', () => {});
  await client.connect();
  try {
    for (const s of statements) await client.query(s);
  } finally {
    await client.end();
  }
}

async function fenceError(pair: Pair): Promise<StepError> {
  try {
    await writeFence.apply(pair.context({ stepId: 'fence-end' }).ctx, fenceParams);
  } catch (error) {
    assert.ok(error instanceof StepError, String(error));
    return error;
  }
  assert.fail('the fence passed despite writes on the source');
}

describe('split-brain: the write fence after the switch', () => {
  let pair: Pair;
  let reverseChanges: Parameters<NonNullable<typeof reverseReplication.undo>>[2] = [];
  const reverseParams = reverseReplication.params.parse({ pollMs: 20 });

  before(async () => {
    pair = await startPair();
    await pair.sql('source', `${SCHEMA + SEED + ROLES}alter table crm.audit_log replica identity full;`);
    await pair.sql('target', TARGET_ROLES);
    const step = (id: string) => pair.context({ stepId: id }).ctx;
    await schemaCopy.apply(step('schema'), schemaCopy.params.parse({ withPrivileges: true }));
    await replicationStart.apply(step('replication'), replicationStart.params.parse({ pollMs: 50 }));
    await freezeWrites.apply(step('freeze'), freezeWrites.params.parse({ mode: 'advisory' }));
    await catchUp.apply(step('catch-up'), catchUp.params.parse({}));
    const inWindow = await writeFence.apply(step('fence'), fenceParams);
    assert.equal(inWindow.kept, true);
    await sequenceSync.apply(step('sequences'), sequenceSync.params.parse({}));
    await replicationStop.apply(step('stop'), replicationStop.params.parse({}));
    const reverse = pair.context({ stepId: 'reverse' });
    await reverseReplication.apply(reverse.ctx, reverseParams);
    reverseChanges = reverse.changes;
  });
  after(async () => {
    await pair?.stop();
  });

  it('sets aside what the reverse subscription applied, through an advisory freeze, and keeps watching', async () => {
    await asWriter(pair, 'target', [
      "insert into billing.customers (id, name) values (700001, 'written on RDS')",
      "update billing.customers set plan = 'annual' where id = 3",
      'delete from billing.invoices where id = 1',
    ]);
    const w = pair.context({ stepId: 'wait' }).ctx;
    await waitApplied(w, await pool(w, 'source'), await pool(w, 'target'), reverseParams, { deadline: w.now() + 300_000, pollMs: 20 });
    const applied = await pair.sql('source', 'select plan from billing.customers where id in (3, 700001) order by id');
    assert.deepEqual(
      applied.rows.map((r) => r.plan),
      ['annual', 'trial'],
      'the advisory freeze does not stop the apply worker',
    );
    const t = pair.context({ stepId: 'fence-end' });
    const passed = await writeFence.apply(t.ctx, fenceParams);
    assert.equal(passed.kept, true);
    assert.ok((passed.reverseApplied ?? 0) >= 3, `reverse-applied changes set aside: ${passed.reverseApplied}`);
    assert.deepEqual(await writeFence.check(t.ctx, fenceParams, passed), []);
    const slot = await pair.sql('source', "select count(*)::int as n from pg_replication_slots where slot_name = 'migrate_fence'");
    assert.equal(slot.rows[0].n, 1, 'the fence slot is kept');
  });

  it('reports a frozen role writing anyway and a superuser session, with table and key, on every run', async () => {
    await asWriter(pair, 'target', ["insert into billing.customers (id, name) values (700002, 'written on RDS too')"]);
    await asWriter(pair, 'source', [
      'begin read write',
      "insert into billing.customers (id, name) values (800001, 'split brain')",
      'commit',
    ]);
    await pair.sql('source', "update crm.audit_log set message = 'operator' where message = 'seeded 4'");
    for (const attempt of [1, 2]) {
      const error = await fenceError(pair);
      const byObject = Object.fromEntries(error.findings.map((f) => [f.object, f.message]));
      assert.deepEqual(Object.keys(byObject).sort(), ['table billing.customers', 'table crm.audit_log'], `run ${attempt}`);
      assert.match(byObject['table billing.customers']!, /1 insert\b.*insert \(id\)=\(800001\)/);
      assert.doesNotMatch(byObject['table billing.customers']!, /700002/, 'the reverse-applied row is not split-brain');
      assert.match(byObject['table crm.audit_log']!, /1 update/);
    }
  });

  it('the reverse replication’s undo drops the fence with it', async () => {
    await reverseReplication.undo!(pair.context({ stepId: 'reverse' }).ctx, reverseParams, reverseChanges, undefined);
    const left = await pair.sql(
      'source',
      'select (select count(*)::int from pg_replication_slots) as slots, (select count(*)::int from pg_publication) as pubs, (select count(*)::int from pg_subscription) as subs',
    );
    assert.deepEqual(left.rows[0], { slots: 0, pubs: 0, subs: 0 });
  });
});

describe('PgoutputDecoder: a transaction’s origin', () => {
  const begin = () => Buffer.concat([Buffer.from('B'), Buffer.alloc(20)]);
  const origin = (name: string) => Buffer.concat([Buffer.from('O'), Buffer.alloc(8), Buffer.from(`${name}\0`)]);
  const commit = () => Buffer.concat([Buffer.from('C'), Buffer.alloc(25)]);
  const relation = () => {
    const head = Buffer.from('R');
    const id = Buffer.alloc(4);
    id.writeInt32BE(7);
    const columns = Buffer.alloc(2);
    columns.writeInt16BE(1);
    return Buffer.concat([
      head,
      id,
      Buffer.from('public\0t\0'),
      Buffer.from('d'),
      columns,
      Buffer.from([1]),
      Buffer.from('id\0'),
      Buffer.alloc(8),
    ]);
  };
  const insert = (value: string) => {
    const id = Buffer.alloc(4);
    id.writeInt32BE(7);
    const n = Buffer.alloc(2);
    n.writeInt16BE(1);
    const len = Buffer.alloc(4);
    len.writeInt32BE(value.length);
    return Buffer.concat([Buffer.from('I'), id, Buffer.from('N'), n, Buffer.from('t'), len, Buffer.from(value)]);
  };

  it('gives each change its transaction’s origin, and none to a local one', () => {
    const d = new PgoutputDecoder();
    const changes = [begin(), origin('pg_16401'), relation(), insert('1'), commit(), begin(), insert('2'), commit()].flatMap((m) =>
      d.decode(m),
    );
    assert.deepEqual(changes, [
      { action: 'insert', table: 'public.t', key: '(id)=(1)', origin: 'pg_16401' },
      { action: 'insert', table: 'public.t', key: '(id)=(2)' },
    ]);
    // BEGIN and ORIGIN in one buffer.
    const e = new PgoutputDecoder();
    const joined = [Buffer.concat([begin(), origin('pg_9')]), relation(), insert('3'), commit()].flatMap((m) => e.decode(m));
    assert.equal(joined[0]?.origin, 'pg_9');
  });
});
