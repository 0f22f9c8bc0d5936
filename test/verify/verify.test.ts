/** postgres.verify against two real servers: what it finds, where it narrows to, what it never prints. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import type { StackOutputs } from '../../infra/contract.ts';
import { LEAF_ROWS } from '../../migrate/postgres/compare/narrow.ts';
import type { TableReport, VerifyReport } from '../../migrate/postgres/compare/types.ts';
import { verify } from '../../migrate/steps/postgres/verify.ts';
import { testContext } from '../support/context.ts';
import { type Pair, startPair } from './fixture.ts';

async function runVerify(outputs: StackOutputs, withParams: Record<string, unknown> = {}) {
  const t = testContext({ outputs });
  try {
    const p = verify.params.parse(withParams);
    const probe = await verify.probe(t.ctx, p);
    const result = (await verify.apply(t.ctx, p)) as VerifyReport;
    const findings = (await verify.check(t.ctx, p, result as never)) ?? [];
    return { probe, result, findings, lines: t.lines, progress: t.progress };
  } finally {
    await t.close();
  }
}

function table(result: VerifyReport, name: string): TableReport {
  const found = result.tables.find((t) => t.table === name);
  assert.ok(found, `no report for ${name}; got ${result.tables.map((t) => t.table).join(', ')}`);
  return found;
}

const keysOf = (t: TableReport) => t.differences.rows.map((r) => ({ ...r.key, kind: r.kind }));

describe('postgres.verify', () => {
  let pair: Pair;
  before(async () => {
    pair = await startPair();
  });
  after(async () => {
    await pair?.stop();
  });

  it('finds no difference between identical databases, and plans every table once', async () => {
    const { outputs } = await pair.database('identical');
    const { probe, result, findings, progress } = await runVerify(outputs);

    assert.equal(probe.state, 'ready');
    const names = result.tables.map((t) => t.table);
    assert.deepEqual(names, ['app.accounts', 'app.audit_log', 'app.measurements', 'app.tags', 'billing.lines']);
    // Partitions are compared through their parent, never on their own as well.
    assert.ok(!probe.plan!.some((line) => line.includes('measurements_2023')));
    assert.equal(result.hash, 'record');
    for (const t of result.tables) {
      assert.equal(t.counts, 'match', t.table);
      assert.equal(t.checksum, 'match', t.table);
      assert.equal(t.differences.count, 0, t.table);
    }
    assert.equal(table(result, 'app.accounts').rows.source, 20_000);
    assert.equal(table(result, 'app.measurements').rows.target, 5_000);
    assert.deepEqual(findings, []);
    const last = progress.at(-1)!;
    assert.equal(last.done, 5);
    assert.equal(last.total, 5);
  });

  it('narrows a changed TOAST byte, a missing, an extra and two swapped rows to their keys', async () => {
    const { outputs, target } = await pair.database('broken');
    await target.query(`UPDATE app.accounts SET doc = overlay(doc PLACING 'X' FROM 3000 FOR 1) WHERE id = 12345`);
    await target.query('DELETE FROM app.accounts WHERE id = 777');
    await target.query(`INSERT INTO app.accounts (id, email) VALUES (20001, 'extra@example.test')`);
    // Swap the emails of two rows: counts and the multiset of emails stay the same.
    await target.query(`UPDATE app.accounts a SET email = b.email FROM app.accounts b WHERE (a.id, b.id) IN ((100, 101), (101, 100))`);

    const { result, findings } = await runVerify(outputs);
    const accounts = table(result, 'app.accounts');
    assert.equal(accounts.checksum, 'mismatch');
    assert.deepEqual(keysOf(accounts), [
      { id: '100', kind: 'changed' },
      { id: '101', kind: 'changed' },
      { id: '777', kind: 'missing-on-target' },
      { id: '12345', kind: 'changed' },
      { id: '20001', kind: 'extra-on-target' },
    ]);
    assert.equal(accounts.differences.truncated, false);
    // Each difference lies in a reported range, and the ranges are small: the bisection narrowed.
    for (const row of accounts.differences.rows) {
      const id = Number(row.key.id);
      const range = accounts.differences.ranges.find(
        (r) => (r.from ? Number(r.from.id) <= id : true) && (r.to ? id < Number(r.to.id) : true),
      );
      assert.ok(range, `no range holds id ${id}`);
      const width = Number(range.to?.id ?? 20_002) - Number(range.from?.id ?? 1);
      assert.ok(width <= LEAF_ROWS, `range ${JSON.stringify(range)} is not narrowed`);
    }
    for (const other of ['app.audit_log', 'app.measurements', 'app.tags', 'billing.lines'])
      assert.equal(table(result, other).checksum, 'match');
    assert.deepEqual(
      findings.map((f) => f.object),
      ['table app.accounts'],
    );
    assert.match(findings[0]!.message, /id=12345 \(changed\)/);
  });

  it('lists composite and text keys, and reports a partitioned table under its parent', async () => {
    const { outputs, target } = await pair.database('keys');
    await target.query(`UPDATE billing.lines SET qty = qty + 1 WHERE invoice = 1500 AND line = 2`);
    await target.query(`UPDATE app.tags SET uses = 0 WHERE name = 'tag-2500'`);
    await target.query(`DELETE FROM app.tags WHERE name = 'tag-10'`);
    await target.query(`UPDATE app.measurements SET value = -1 WHERE id = 4321`);

    const { result } = await runVerify(outputs);
    assert.deepEqual(keysOf(table(result, 'billing.lines')), [{ invoice: '1500', line: '2', kind: 'changed' }]);
    // Byte order (COLLATE "C"), the same on both servers whatever their collations.
    assert.deepEqual(keysOf(table(result, 'app.tags')), [
      { name: 'tag-10', kind: 'missing-on-target' },
      { name: 'tag-2500', kind: 'changed' },
    ]);
    const measurements = table(result, 'app.measurements');
    assert.equal(keysOf(measurements).length, 1);
    assert.equal(measurements.differences.rows[0]!.key.id, '4321');
    assert.ok(!result.tables.some((t) => t.table.startsWith('app.measurements_')));
  });

  it('compares a table without a primary key as a multiset, duplicates included', async () => {
    const { outputs, target } = await pair.database('keyless');
    // Same row count, and the same rows except that one duplicate became a copy of another row.
    await target.query(`
      WITH victim AS (SELECT ctid FROM app.audit_log WHERE detail = '{"g": 7}' LIMIT 1)
      UPDATE app.audit_log a SET at = b.at, kind = b.kind, detail = b.detail
        FROM (SELECT * FROM app.audit_log WHERE detail = '{"g": 8}' LIMIT 1) b
       WHERE a.ctid IN (SELECT ctid FROM victim)`);
    const { result, findings } = await runVerify(outputs);
    const log = table(result, 'app.audit_log');
    assert.deepEqual(log.key, []);
    assert.deepEqual(log.rows, { source: 4000, target: 4000 });
    assert.equal(log.counts, 'match');
    assert.equal(log.checksum, 'mismatch');
    assert.equal(log.differences.count, 1);
    assert.deepEqual(log.differences.rows, []);
    assert.match(findings[0]!.message, /no primary key/);
  });

  it('in counts mode compares row counts only', async () => {
    const { outputs, target } = await pair.database('counts');
    await target.query('DELETE FROM billing.lines WHERE invoice = 3');
    await target.query(`UPDATE app.tags SET uses = 0 WHERE name = 'tag-1'`);
    const { result, findings } = await runVerify(outputs, { mode: 'counts' });
    assert.equal(result.hash, 'none');
    const lines = table(result, 'billing.lines');
    assert.deepEqual(lines.rows, { source: 6000, target: 5997 });
    assert.equal(lines.checksum, 'skipped');
    // A changed value keeps the count: counts mode cannot see it, which is why full is the default.
    assert.equal(table(result, 'app.tags').counts, 'match');
    assert.deepEqual(
      findings.map((f) => f.object),
      ['table billing.lines'],
    );
  });

  it('reports a table missing on the target and columns missing from a target table', async () => {
    const { outputs, target } = await pair.database('schema');
    await target.query('DROP TABLE app.tags');
    await target.query('ALTER TABLE billing.lines DROP COLUMN sku');
    const { probe, result, findings } = await runVerify(outputs);
    assert.deepEqual(
      probe.findings!.map((f) => f.object),
      ['table app.tags'],
    );
    assert.match(table(result, 'app.tags').problem!, /does not exist on the target/);
    assert.match(table(result, 'billing.lines').problem!, /columns missing on the target: sku/);
    assert.deepEqual(findings.map((f) => f.object).sort(), ['table app.tags', 'table billing.lines']);
  });

  it('never prints a column value or a password, only keys', async () => {
    const planted = 'PLANTED-secret-4f9a1c';
    const { outputs, source, target } = await pair.database('secrets');
    await source.query(`UPDATE app.accounts SET email = $1 WHERE id = 4242`, [planted]);
    await target.query(`UPDATE app.accounts SET email = $1 WHERE id = 4242`, [`${planted}-changed`]);
    await target.query(`UPDATE app.audit_log SET kind = $1 WHERE ctid = (SELECT ctid FROM app.audit_log LIMIT 1)`, [planted]);
    await source.query(`INSERT INTO app.tags VALUES ($1, 1)`, [`tag-${planted}`]);
    await target.query(`INSERT INTO app.tags VALUES ('tag-other', 1)`);
    const { probe, result, findings, lines, progress } = await runVerify(outputs);
    assert.deepEqual(keysOf(table(result, 'app.accounts')), [{ id: '4242', kind: 'changed' }]);
    const printed = JSON.stringify({ probe, result, findings, lines, progress });
    const columnValue = planted;
    // The key of app.tags is the one value that may be printed (it names the row); the others never.
    const withoutKeys = printed.split(`tag-${planted}`).join('<key>');
    assert.ok(!withoutKeys.includes(columnValue), 'a column value appears in the output');
    assert.ok(!printed.includes(pair.target.password) && !printed.includes(pair.source.password), 'a password appears in the output');
    assert.ok(printed.includes(`tag-${planted}`), 'the differing key is listed');
  });

  it('agrees with a slow reference: ordered per-row md5 of every row on both sides', async () => {
    const { outputs, source, target } = await pair.database('reference');
    await target.query(`UPDATE app.accounts SET profile = jsonb_set(profile, '{plan}', '"gold"') WHERE id IN (5, 19999)`);
    await target.query(`UPDATE app.accounts SET created = created + interval '1 microsecond' WHERE id = 6000`);
    await target.query(`UPDATE app.accounts SET ratio = ratio + 1e-12 WHERE id = 7000`);
    await target.query(`DELETE FROM app.accounts WHERE id BETWEEN 15000 AND 15002`);

    const reference = async (client: pg.Client) => {
      await client.query(`SET TimeZone = 'UTC'; SET extra_float_digits = 3`);
      const { rows } = await client.query(
        `SELECT id::text AS id, md5(ROW(id, email, profile, balance, ratio, created, mood, visits, session, doc, doubled)::text) AS h FROM app.accounts ORDER BY id`,
      );
      return new Map(rows.map((r) => [r.id as string, r.h as string]));
    };
    const [s, t] = await Promise.all([reference(source), reference(target)]);
    const expected = [...new Set([...s.keys(), ...t.keys()])]
      .filter((id) => s.get(id) !== t.get(id))
      .sort((a, b) => Number(a) - Number(b))
      .map((id) => ({ id, kind: !t.has(id) ? 'missing-on-target' : !s.has(id) ? 'extra-on-target' : 'changed' }));
    assert.equal(expected.length, 7);

    const { result } = await runVerify(outputs);
    assert.deepEqual(keysOf(table(result, 'app.accounts')), expected);
  });
});
