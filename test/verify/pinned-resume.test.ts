/**
 * kill -9 of the process running verify at a pinned switch point, mid-verification, while the app
 * writes to the target: the rerun (what `migrate resume` does) proves the same point and reports
 * the same differences, then releases the holder; nothing is left on either server.
 *
 * The kill lands inside the comparison on any machine: an ACCESS EXCLUSIVE lock taken on one target
 * table after the pin makes the comparison wait there, with other tables already compared.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import type { StackOutputs } from '../../infra/contract.ts';
import type { Json } from '../../migrate/core/step.ts';
import { alive } from '../../migrate/local/running.ts';
import { pinSwitchPoint } from '../../migrate/steps/postgres/pin-switch-point.ts';
import { verify } from '../../migrate/steps/postgres/verify.ts';
import { testContext } from '../support/context.ts';
import { type Pair, startPair } from './fixture.ts';
import { appWritesAfterPin, assertReleased, createRoles, driftBeforePin } from './pinned-support.ts';

describe('verify at a pinned switch point, kill -9 mid-verification, rerun', () => {
  let pair: Pair;
  let outputs: StackOutputs;
  let admins: { source: pg.Client; target: pg.Client };
  let target: pg.Client;
  let dir: string;

  before(async () => {
    pair = await startPair();
    const db = await pair.database('resumed');
    outputs = db.outputs;
    target = db.target;
    admins = { source: await pair.source.client(), target: await pair.target.client() };
    await createRoles([admins.source, admins.target]);
    await driftBeforePin(db.source, db.target);
    dir = mkdtempSync(join(tmpdir(), 'pinned-resume-'));
  });
  let stopped = false;
  const endAdmins = () => Promise.all([admins?.source.end(), admins?.target.end()].map((p) => p?.catch(() => {})));

  after(async () => {
    await endAdmins();
    if (!stopped) await pair?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the rerun proves the same point, with the same differences, after the app kept writing', async () => {
    const t = testContext({ outputs, stepId: 'pin' });
    const { switchPoint } = await pinSwitchPoint.apply(t.ctx, pinSwitchPoint.params.parse({}));
    await t.close();
    await appWritesAfterPin(target);

    const locker = await pair.target.client('resumed');
    await locker.query('BEGIN; LOCK TABLE app.tags IN ACCESS EXCLUSIVE MODE');
    const [outputsFile, pointFile, journal] = ['outputs.json', 'point.json', 'journal.jsonl'].map((f) => join(dir, f)) as [
      string,
      string,
      string,
    ];
    writeFileSync(outputsFile, JSON.stringify(outputs), { mode: 0o600 });
    writeFileSync(pointFile, JSON.stringify(switchPoint));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'pinned-verify-child.ts'), outputsFile, pointFile, journal],
      {
        stdio: 'ignore',
      },
    );
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    const waitingOnLock = async () =>
      (
        await admins.target.query(
          "SELECT 1 FROM pg_stat_activity WHERE application_name = 'migrate' AND wait_event_type = 'Lock' AND query LIKE '%app%tags%'",
        )
      ).rows.length > 0;
    while (!(await waitingOnLock())) {
      assert.equal(child.exitCode, null, 'the child verify ended before reaching the locked table');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    await locker.query('COMMIT');
    await locker.end();
    assert.ok(alive(switchPoint.holder.pid), 'the holder outlives the kill -9 of the process that verifies');
    const recorded = existsSync(journal)
      ? (readFileSync(journal, 'utf8')
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l)) as Json[])
      : [];
    assert.deepEqual(recorded, [], 'killed before the proof completed: nothing recorded');

    // More app writes between the kill and the rerun: still after the pin, still not reported.
    await target.query("UPDATE app.accounts SET email = 'between' WHERE id BETWEEN 1000 AND 1100");
    await target.query("DELETE FROM app.tags WHERE name = 'tag-6'");

    const rerun = testContext({ outputs, stepId: 'verify', previousChanges: recorded });
    try {
      const p = verify.params.parse({ at: switchPoint, onDifference: 'report' });
      assert.equal((await verify.probe(rerun.ctx, p)).state, 'ready');
      const result = await verify.apply(rerun.ctx, p);
      assert.equal(result.switchPoint?.pinnedAt, switchPoint.pinnedAt);
      assert.deepEqual(
        result.tables.filter((t) => t.counts === 'mismatch' || t.checksum === 'mismatch').map((t) => [t.table, t.differences.rows]),
        [['app.accounts', [{ key: { id: '7' }, kind: 'changed' }]]],
      );
      assert.deepEqual(
        result.privileges.map((f) => f.object),
        ['table app.tags'],
      );
      assert.deepEqual(
        (result.sequences ?? []).map((f) => f.object),
        ['sequence app.ticket_seq'],
      );
      assert.ok(
        result.tables.some((t) => t.table === 'app.tags' && t.counts === 'match'),
        'the table the kill landed in is proven too',
      );
    } finally {
      await rerun.close();
    }
    await assertReleased(switchPoint, admins);
  });

  it('a holder nobody released exits when its servers stop (as at the end of a test file)', async () => {
    const t = testContext({ outputs, stepId: 'pin' });
    const { switchPoint } = await pinSwitchPoint.apply(t.ctx, pinSwitchPoint.params.parse({}));
    await t.close();
    assert.ok(alive(switchPoint.holder.pid));
    await endAdmins();
    stopped = true;
    await pair.stop();
    while (alive(switchPoint.holder.pid)) await new Promise((resolve) => setTimeout(resolve, 50));
  });
});
