/**
 * The schema comparison is version-tolerant: the hostile application copied from a PostgreSQL 13
 * source into a PostgreSQL 17 target compares equal object by object (owners, ACLs, policies, view
 * definitions, statistics), so D-day's go/no-go passes on a cross-version cutover and fails only on a
 * real difference.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { embeddedBindir } from '../../migrate/local/postgres-server.ts';
import { schemaCopy } from '../../migrate/steps/postgres/schema-copy.ts';
import { schemaParity } from '../../migrate/steps/postgres/schema-parity.ts';
import { snapshotCopy } from '../../migrate/steps/postgres/snapshot-copy.ts';
import { HOSTILE_ROLES, HOSTILE_SCHEMA, HOSTILE_SEED } from '../support/hostile-app.ts';
import { DATABASE, type Pair, startPair } from './fixtures.ts';

describe('schema parity from PostgreSQL 13 to 17 on the hostile application', () => {
  let pair: Pair;
  const context = (stepId: string) => pair.context({ stepId });

  before(async () => {
    pair = await startPair({ source: { bindir: embeddedBindir('pg13-bin') }, target: { bindir: embeddedBindir('pg17-bin') } });
    await pair.sql('source', HOSTILE_ROLES);
    await pair.sql('target', `${HOSTILE_ROLES}grant create on database ${DATABASE} to app_owner;`);
    await pair.sql('source', HOSTILE_SCHEMA + HOSTILE_SEED);
  });
  after(async () => {
    await pair?.stop();
  });

  it('week-prior leaves a 17 target equal to the 13 source, and the go/no-go passes', async () => {
    await schemaCopy.apply(context('schema').ctx, schemaCopy.params.parse({ section: 'pre-data', withPrivileges: true }));
    await snapshotCopy.apply(context('copy').ctx, snapshotCopy.params.parse({}));
    const t = context('indexes');
    const post = schemaCopy.params.parse({ section: 'post-data', withPrivileges: true });
    const result = await schemaCopy.apply(t.ctx, post);
    assert.deepEqual(await schemaCopy.check(t.ctx, post, result), []);
    const parity = await schemaParity.probe(context('go-no-go').ctx, schemaParity.params.parse({}));
    assert.equal(parity.state, 'done', JSON.stringify(parity.findings, null, 1));
  });

  it('and refuses when one policy differs', async () => {
    await pair.sql('target', "alter policy ro_acme on shop.orders using (tenant = 'globex')");
    const parity = await schemaParity.probe(context('go-no-go').ctx, schemaParity.params.parse({}));
    assert.equal(parity.state, 'blocked');
    assert.deepEqual(
      parity.findings!.map((f) => f.object),
      ['policy shop.orders.ro_acme'],
    );
  });
});
