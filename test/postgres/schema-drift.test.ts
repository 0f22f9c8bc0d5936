/**
 * Issue 9 #7: DDL run on the source during the replication week (a new column, a new table, a new
 * index, a changed grant) is found by `migrate status` and by D-day's go/no-go step, which refuses
 * before anything is frozen; `postgres.schema-sync` applies the additive part, and replication
 * carries the new table's rows afterwards.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kindLookup } from '../../migrate/core/environment.ts';
import { loadRunbook } from '../../migrate/core/runbook.ts';
import { pool } from '../../migrate/postgres/connections.ts';
import { readSchema } from '../../migrate/postgres/schema-compare/catalog.ts';
import { schemaDrift } from '../../migrate/postgres/schema-compare/drift.ts';
import { catchUp } from '../../migrate/steps/postgres/catch-up.ts';
import { refreshMatviews } from '../../migrate/steps/postgres/refresh-matviews.ts';
import { replicationStart } from '../../migrate/steps/postgres/replication-start.ts';
import { schemaCopy } from '../../migrate/steps/postgres/schema-copy.ts';
import { schemaParity } from '../../migrate/steps/postgres/schema-parity.ts';
import { schemaSync } from '../../migrate/steps/postgres/schema-sync.ts';
import { snapshotCopy } from '../../migrate/steps/postgres/snapshot-copy.ts';
import { verify } from '../../migrate/steps/postgres/verify.ts';
import { awsOutputs } from '../aws/fixtures.ts';
import { cli, describeResult } from '../cli/support.ts';
import { HOSTILE_ROLES, HOSTILE_SCHEMA, HOSTILE_SEED } from '../support/hostile-app.ts';
import { DATABASE, type Pair, startPair } from './fixtures.ts';

const DRIFT = `
set role app_owner;
alter table shop.orders add column channel text not null default 'web';
create table shop.refunds (id bigserial primary key, order_id bigint not null, amount numeric not null);
comment on table shop.refunds is 'money given back';
grant select on shop.refunds to app_ro;
create index products_name on shop.products (name);
grant select on shop.ledger to app_ro;
reset role;
insert into shop.refunds (order_id, amount) select i, i from generate_series(1, 7) i;
`;

describe('schema drift during the replication week', () => {
  let pair: Pair;
  let baseline: string;
  const context = (stepId: string) => pair.context({ stepId });

  before(async () => {
    pair = await startPair();
    await pair.sql('source', HOSTILE_ROLES);
    await pair.sql('target', `${HOSTILE_ROLES}grant create on database ${DATABASE} to app_owner;`);
    await pair.sql('source', HOSTILE_SCHEMA + HOSTILE_SEED);
    await schemaCopy.apply(context('schema').ctx, schemaCopy.params.parse({ section: 'pre-data', withPrivileges: true }));
    await snapshotCopy.apply(context('copy').ctx, snapshotCopy.params.parse({}));
    const post = await schemaCopy.apply(context('indexes').ctx, schemaCopy.params.parse({ section: 'post-data', withPrivileges: true }));
    baseline = (post as { fingerprint: string }).fingerprint;
    await replicationStart.apply(context('replication').ctx, replicationStart.params.parse({ copyData: false, pollMs: 50 }));
  });
  after(async () => {
    await pair?.stop();
  });

  it('the go/no-go passes right after week-prior, against the fingerprint week-prior recorded', async () => {
    const probe = await schemaParity.probe(context('go-no-go').ctx, schemaParity.params.parse({ baseline }));
    assert.equal(probe.state, 'done', JSON.stringify(probe.findings));
    assert.deepEqual({ ...probe.result, objects: 0 }, { objects: 0, fingerprint: baseline, changedSinceBaseline: false });
    const drift = (await schemaDrift(context('status').ctx)) as { identical: boolean };
    assert.equal(drift.identical, true);
  });

  it('d-day runs the go/no-go first, before the first destructive step', () => {
    const runbook = loadRunbook(join(import.meta.dirname, '..', '..', 'runbooks', 'd-day.yaml'), {
      outputs: awsOutputs(),
      ...kindLookup('/nonexistent-state'),
    });
    const ids = runbook.steps.map((s) => s.id);
    // The forecast (read-only) comes first, then the schema parity check.
    assert.deepEqual(
      runbook.steps.slice(0, 2).map((s) => s.uses),
      ['forecast.window', 'postgres.schema-parity'],
    );
    assert.ok(ids.indexOf('go-no-go-schema') < ids.indexOf('redirect-webhooks'));
    assert.ok(ids.indexOf('go-no-go-schema') < ids.indexOf('freeze'));
  });

  it('status and the go/no-go list each object that drifted, with its fix, and the go/no-go refuses', async () => {
    await pair.sql('source', DRIFT);
    const drift = (await schemaDrift(context('status').ctx)) as { identical: boolean; differences: { object: string; fix: string }[] };
    assert.equal(drift.identical, false);
    const objects = drift.differences.map((d) => d.object);
    assert.deepEqual(objects, ['column shop.orders.channel', 'index shop.products_name', 'table shop.ledger', 'table shop.refunds']);
    assert.match(drift.differences[0]!.fix, /ALTER TABLE shop\.orders ADD COLUMN channel text/);

    // Scripts watching the replication week see drift as a failing status, with each object named.
    const outputsFile = join(pair.dir, 'outputs.json');
    writeFileSync(outputsFile, JSON.stringify(pair.outputs), { mode: 0o600 });
    const status = await cli(['--outputs', outputsFile, '--state-dir', join(pair.dir, 'state'), 'status']);
    assert.equal(status.code, 1, describeResult(status));
    assert.match(status.stdout, /Schema: +DRIFT, 4 difference/);
    assert.match(status.stdout, /table shop\.ledger/);

    const t = context('go-no-go');
    const p = schemaParity.params.parse({ baseline });
    const probe = await schemaParity.probe(t.ctx, p);
    assert.equal(probe.state, 'blocked');
    const errors = probe.findings!.filter((f) => f.severity === 'error');
    assert.deepEqual(
      errors.map((f) => f.object),
      objects,
    );
    assert.match(errors.find((f) => f.object === 'table shop.ledger')!.message, /acl: .*app_ro:SELECT.* on the source/);
    assert.ok(probe.findings!.some((f) => f.object === 'source schema' && /changed since week-prior/.test(f.message)));
    await assert.rejects(schemaParity.apply(t.ctx, p), /shop\.orders|differs|missing/);
  });

  it('schema-sync applies the additive differences, leaves the grant to the operator, and the new table replicates', async () => {
    const t = context('sync');
    const p = schemaSync.params.parse({});
    const probe = await schemaSync.probe(t.ctx, p);
    assert.equal(probe.state, 'ready');
    assert.deepEqual(
      probe.findings!.map((f) => f.object),
      ['table shop.ledger'],
      'the changed grant is reported, not guessed',
    );
    const result = await schemaSync.apply(t.ctx, p);
    assert.deepEqual(result.applied.sort(), ['column shop.orders.channel', 'index shop.products_name', 'shop.refunds']);
    assert.ok(t.changes.some((c) => (c as { action: string }).action === 'refresh-subscription'));
    assert.deepEqual(await schemaSync.check(t.ctx, p, result), []);

    const left = await schemaParity.probe(context('go-no-go').ctx, schemaParity.params.parse({}));
    assert.deepEqual(
      left.findings!.map((f) => f.object),
      ['table shop.ledger'],
    );
    await pair.sql('target', 'grant select on shop.ledger to app_ro');
    assert.equal((await schemaParity.probe(context('go-no-go').ctx, schemaParity.params.parse({}))).state, 'done');

    await pair.sql(
      'source',
      "insert into shop.orders (tenant, product_id, qty, channel) values ('acme', 1, 1, 'app'); insert into shop.refunds (order_id, amount) values (99, 9);",
    );
    for (let i = 0; ; i++) {
      const { rows } = await pair.sql('target', "select count(*)::int as n from pg_subscription_rel where srsubstate <> 'r'");
      if (rows[0].n === 0) break;
      assert.ok(i < 600, 'the new table finished its initial copy');
      await new Promise((r) => setTimeout(r, 100));
    }
    await catchUp.apply(context('catch-up').ctx, catchUp.params.parse({}));
    // As D-day does before the window: materialized views are not replicated.
    await refreshMatviews.apply(context('refresh-matviews').ctx, refreshMatviews.params.parse({}));
    const checking = context('verify');
    const verified = await verify.apply(checking.ctx, verify.params.parse({}));
    assert.deepEqual(await verify.check(checking.ctx, verify.params.parse({}), verified), []);
    assert.equal((await pair.sql('target', 'select count(*)::int as n from shop.refunds')).rows[0].n, 8);
    assert.equal((await pair.sql('target', "select count(*)::int as n from shop.orders where channel = 'app'")).rows[0].n, 1);
  });

  it('a table locked behind a pending TRUNCATE makes the comparison fail with the reason, not hang', async () => {
    const [holder, truncating] = [await pair.target.client(DATABASE), await pair.target.client(DATABASE)];
    await holder.query('begin; lock table shop.orders in share mode');
    await truncating.query('begin');
    const pending = truncating.query('truncate shop.orders');
    pending.catch(() => {});
    await assert.rejects(
      readSchema(await pool(context('status').ctx, 'target'), 500),
      /stayed locked for more than 0\.5 s .*pending TRUNCATE or ALTER/,
    );
    await holder.query('rollback');
    await pending;
    await truncating.query('rollback');
    await Promise.all([holder.end(), truncating.end()]);
  });
});
