/**
 * A PostgreSQL 13 source against a PostgreSQL 17 target, as when leaving an old self-managed server:
 * rows must hash the same although float output, and which hash functions exist, differ by version.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { embeddedBindir } from '../../migrate/local/postgres-server.ts';
import type { VerifyReport } from '../../migrate/postgres/compare/types.ts';
import { verify } from '../../migrate/steps/postgres/verify.ts';
import { testContext } from '../support/context.ts';
import { type Pair, startPair } from './fixture.ts';

let pair: Pair;
before(async () => {
  pair = await startPair({ source: { bindir: embeddedBindir('pg13-bin') }, target: { bindir: embeddedBindir('pg17-bin') } });
});
after(async () => {
  await pair?.stop();
});

it('compares a PostgreSQL 13 source with a PostgreSQL 17 target row for row', async () => {
  assert.deepEqual([pair.source.major, pair.target.major], [13, 17]);
  const { outputs, target } = await pair.database('versions');
  const run = async () => {
    const t = testContext({ outputs });
    try {
      const p = verify.params.parse({});
      return (await verify.apply(t.ctx, p)) as VerifyReport;
    } finally {
      await t.close();
    }
  };

  const identical = await run();
  // hash_record_extended does not exist before 14: both sides hash the row's text instead.
  assert.equal(identical.hash, 'text');
  assert.deepEqual(
    identical.tables.filter((t) => t.checksum !== 'match').map((t) => t.table),
    [],
  );

  await target.query('UPDATE app.accounts SET ratio = ratio * (1 + 1e-15) WHERE id = 3');
  const changed = await run();
  const accounts = changed.tables.find((t) => t.table === 'app.accounts')!;
  assert.deepEqual(accounts.differences.rows, [{ key: { id: '3' }, kind: 'changed' }]);
});
