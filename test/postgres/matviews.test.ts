/**
 * Materialized views are not replicated and arrive unpopulated: D-day's refresh-matviews fills them
 * on the target, dependencies first, leaving alone one the source itself never populated; afterwards
 * the application role selects from them on the target and reads what their query gives on the source;
 * verify fails while a view the source has populated is not populated on the target.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { refreshMatviews } from '../../migrate/steps/postgres/refresh-matviews.ts';
import { replicationStart } from '../../migrate/steps/postgres/replication-start.ts';
import { verify } from '../../migrate/steps/postgres/verify.ts';
import { APP_PASSWORD, DATABASE, type Pair, startPair } from './fixtures.ts';

const SCHEMA = (data: 'with data' | 'with no data') => `
create schema reports;
create table reports.orders (id int primary key, customer int not null, amount numeric not null);
create materialized view reports.totals as select customer, sum(amount) as total from reports.orders group by customer ${data};
create materialized view reports.top as select customer, total from reports.totals order by total desc limit 3 ${data};
create materialized view reports.never as select count(*) as n from reports.orders with no data;
`;

const APP = `
create role app_reader login password '${APP_PASSWORD}';
grant usage on schema reports to app_reader;
grant select on all tables in schema reports to app_reader;
`;

describe('postgres.refresh-matviews', () => {
  let pair: Pair;
  const context = () => pair.context({ stepId: 'refresh-matviews' });

  before(async () => {
    pair = await startPair();
    // The source's views are populated before the rows it has now arrive: the target's refresh is fresher.
    await pair.sql(
      'source',
      `${SCHEMA('with data')} insert into reports.orders select i, i % 5, i * 1.5 from generate_series(1, 200) i; refresh materialized view reports.totals; refresh materialized view reports.top; ${APP}`,
    );
    // As the pre-data schema copy leaves them.
    await pair.sql('target', `${SCHEMA('with no data')} ${APP}`);
    await replicationStart.apply(context().ctx, replicationStart.params.parse({ pollMs: 50 }));
  });
  after(async () => {
    await pair?.stop();
  });

  it('refreshes what the source has populated, dependencies first, and the app reads them on the target', async () => {
    const reader = new pg.Client({ connectionString: pair.target.url(DATABASE, 'app_reader', APP_PASSWORD) });
    await reader.connect();
    try {
      await assert.rejects(reader.query('select * from reports.top'), /has not been populated/);
      const report = { tables: [] } as unknown as Parameters<typeof verify.check>[2];
      const before = await verify.check(context().ctx, verify.params.parse({}), report);
      assert.deepEqual(
        (before ?? []).map((f) => f.object),
        ['materialized view reports.top (target)', 'materialized view reports.totals (target)'],
      );

      const p = refreshMatviews.params.parse({});
      const t = context();
      const probe = await refreshMatviews.probe(t.ctx, p);
      assert.equal(probe.state, 'ready');
      const result = await refreshMatviews.apply(t.ctx, p);
      assert.deepEqual(result.refreshed, ['reports.totals', 'reports.top']);
      assert.deepEqual(await refreshMatviews.check(t.ctx, p, result), []);
      assert.deepEqual(await verify.check(context().ctx, verify.params.parse({}), report), []);

      const onTarget = await reader.query('select customer, total::text from reports.top order by total desc');
      const expected = await pair.sql(
        'source',
        'select customer, sum(amount)::text as total from reports.orders group by customer order by sum(amount) desc limit 3',
      );
      assert.deepEqual(onTarget.rows, expected.rows);
      await assert.rejects(reader.query('select * from reports.never'), /has not been populated/);

      // Run again (resume): refreshes again, concurrently where it can, and still reads.
      await refreshMatviews.apply(context().ctx, refreshMatviews.params.parse({ concurrently: false }));
      assert.equal((await reader.query('select count(*)::int as n from reports.totals')).rows[0].n, 5);
    } finally {
      await reader.end();
    }
  });

  it('refuses when the target lacks a view the source has', async () => {
    await pair.sql('source', 'create materialized view reports.extra as select 1 as one');
    const probe = await refreshMatviews.probe(context().ctx, refreshMatviews.params.parse({}));
    assert.equal(probe.state, 'blocked');
    assert.deepEqual(
      probe.findings!.map((f) => f.object),
      ['materialized views reports.extra'],
    );
  });
});
