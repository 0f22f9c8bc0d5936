/**
 * A runbook pins the switch point and verifies at it (`at: ${{ steps.pin.switchPoint }}`) through
 * the engine, as D-day will: the switch point travels from one step's result to the other's params,
 * and onDifference: rollback fails the run naming the table and key, with the holder released.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { HOLDER_APPLICATION } from '../../migrate/postgres/switch-point/holder.ts';
import { cli, describeResult } from '../cli/support.ts';
import { type Pair, startPair } from './fixture.ts';

const runbook = (onDifference: string) => `
name: pinned-proof
description: pin the switch point, then prove it
steps:
  - id: pin
    uses: postgres.pin-switch-point
  - id: verify
    uses: postgres.verify
    with:
      at: \${{ steps.pin.switchPoint }}
      onDifference: ${onDifference}
`;

describe('a runbook: pin-switch-point, then verify at it', () => {
  let pair: Pair;
  let global: string[];
  let dir: string;
  let admins: pg.Client[];

  before(async () => {
    pair = await startPair();
    const { outputs, target } = await pair.database('pinbook');
    await target.query("UPDATE app.accounts SET email = 'changed' WHERE id = 3");
    dir = mkdtempSync(join(tmpdir(), 'pinned-runbook-'));
    const file = join(dir, 'outputs.json');
    writeFileSync(file, JSON.stringify(outputs), { mode: 0o600 });
    global = ['--outputs', file, '--state-dir', join(dir, 'state')];
    admins = [await pair.source.client(), await pair.target.client()];
  });
  after(async () => {
    await Promise.all((admins ?? []).map((c) => c.end().catch(() => {})));
    await pair?.stop();
  });

  const holderSessions = async () =>
    (
      await Promise.all(
        admins.map((c) => c.query('SELECT 1 FROM pg_stat_activity WHERE application_name LIKE $1', [`${HOLDER_APPLICATION}%`])),
      )
    ).flatMap((r) => r.rows);

  for (const [onDifference, code] of [
    ['rollback', 1],
    ['report', 0],
  ] as const) {
    it(`onDifference: ${onDifference}: exit ${code}, the differing key named, the holder released`, async () => {
      const file = join(dir, `${onDifference}.yaml`);
      writeFileSync(file, runbook(onDifference));
      const r = await cli([...global, 'run', file, '--yes']);
      assert.equal(r.code, code, describeResult(r));
      assert.match(r.stdout + r.stderr, /id=3 \(changed\)/);
      if (onDifference === 'rollback') assert.match(r.stdout + r.stderr, /the runbook asks for a rollback/);
      assert.deepEqual(await holderSessions(), []);
    });
  }
});
