/**
 * postgres.pin-switch-point then postgres.verify `at` the pin, on real servers, while the app writes
 * to the target: what differed at the switch point is found (rows, privileges, sequences), what the
 * app did after it is not; report, stop and rollback; what holding the snapshots cost; a holder that
 * is gone is a plain failure, never a proof of another moment; the holder leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import type { StackOutputs } from '../../infra/contract.ts';
import { StepError } from '../../migrate/core/step.ts';
import { alive } from '../../migrate/local/running.ts';
import type { SwitchPoint } from '../../migrate/postgres/switch-point/point.ts';
import { pinSwitchPoint } from '../../migrate/steps/postgres/pin-switch-point.ts';
import { VerifyRollbackError, verify } from '../../migrate/steps/postgres/verify.ts';
import { testContext } from '../support/context.ts';
import { type Pair, startPair } from './fixture.ts';
import { appWritesAfterPin, assertReleased, createRoles, driftBeforePin } from './pinned-support.ts';

describe('verify at a pinned switch point', () => {
  let pair: Pair;
  let outputs: StackOutputs;
  let admins: { source: pg.Client; target: pg.Client };
  let target: pg.Client;

  const pin = async (maxHoldMinutes = 120) => {
    const t = testContext({ outputs, stepId: 'pin' });
    try {
      const { switchPoint } = await pinSwitchPoint.apply(t.ctx, pinSwitchPoint.params.parse({ maxHoldMinutes }));
      return { switchPoint, changes: t.changes, lines: t.lines };
    } finally {
      await t.close();
    }
  };
  const verifyAt = async (at: SwitchPoint | undefined, onDifference: 'report' | 'stop' | 'rollback') => {
    const t = testContext({ outputs, stepId: 'verify' });
    const p = verify.params.parse({ onDifference, ...(at ? { at } : {}) });
    try {
      const result = await verify.apply(t.ctx, p);
      const check = await verify.check(t.ctx, p, result).then(
        (findings) => ({ findings: findings ?? [] }),
        (error: unknown) => ({ error }),
      );
      return { result, check, lines: t.lines, changes: t.changes };
    } finally {
      await t.close();
    }
  };

  before(async () => {
    pair = await startPair();
    const db = await pair.database('pinned');
    outputs = db.outputs;
    target = db.target;
    admins = { source: await pair.source.client(), target: await pair.target.client() };
    await createRoles([admins.source, admins.target]);
    await driftBeforePin(db.source, db.target);
  });
  after(async () => {
    await Promise.all([admins?.source.end(), admins?.target.end()].map((p) => p?.catch(() => {})));
    await pair?.stop();
  });

  it('report: finds what differed at the pin, not what the app wrote after it; says what the hold cost; releases the holder', async () => {
    const { switchPoint, changes, lines: pinLines } = await pin();
    assert.ok(alive(switchPoint.holder.pid), 'the holder runs detached after the pin step returned');
    // The passwords reached the holder on its stdin only: not its command line, environment, the journal or the log.
    const passwords = [pair.source.password, pair.target.password];
    const exposed = [
      readFileSync(`/proc/${switchPoint.holder.pid}/cmdline`, 'utf8'),
      readFileSync(`/proc/${switchPoint.holder.pid}/environ`, 'utf8'),
      JSON.stringify([changes, pinLines, switchPoint]),
    ];
    for (const password of passwords) for (const text of exposed) assert.ok(!text.includes(password), 'a password is exposed');
    await appWritesAfterPin(target);

    // The present differs on many tables: that is what the pinned proof must not report.
    const now = await verifyAt(undefined, 'report');
    assert.deepEqual(
      now.result.tables.filter((t) => t.counts === 'mismatch' || t.checksum === 'mismatch').map((t) => t.table),
      ['app.accounts', 'app.audit_log', 'app.measurements', 'app.tags', 'billing.lines'],
    );

    const { result, lines, check } = await verifyAt(switchPoint, 'report');
    const differing = result.tables.filter((t) => t.counts === 'mismatch' || t.checksum === 'mismatch');
    assert.deepEqual(
      differing.map((t) => [t.table, t.differences.rows]),
      [['app.accounts', [{ key: { id: '7' }, kind: 'changed' }]]],
    );
    assert.deepEqual(
      result.privileges.map((f) => f.object),
      ['table app.tags'],
    );
    assert.match(result.privileges[0]!.message, /pin_before/);
    assert.deepEqual(
      (result.sequences ?? []).map((f) => [
        f.object,
        f.message.match(/target would hand out (nextval \d+), the source (nextval \d+)/)?.slice(1),
      ]),
      [['sequence app.ticket_seq', ['nextval 101', 'nextval 501']]],
    );
    assert.deepEqual(check, { findings: [] }, 'report: the run continues');
    assert.ok(lines.some((l) => l.startsWith('warning: table app.accounts') && l.includes('id=7 (changed)')));

    const proof = result.switchPoint!;
    assert.equal(proof.pinnedAt, switchPoint.pinnedAt);
    assert.equal(proof.target.snapshot, switchPoint.target.snapshot);
    assert.ok(proof.holdMs > 0);
    assert.ok((proof.xminAge.target ?? 0) >= 15, `the target's xmin held back by the app's transactions: ${JSON.stringify(proof.xminAge)}`);
    assert.equal(typeof proof.xminAge.source, 'number');
    assert.equal(proof.released, true);
    assert.ok(
      lines.some((l) =>
        /Snapshots held [\d.]+ s, holding vacuum back by up to \d+ transactions on the source and \d+ transactions on the target; released/.test(
          l,
        ),
      ),
    );
    await assertReleased(switchPoint, admins);
  });

  it('stop: the postcondition names the table and key; rollback: a VerifyRollbackError (rollback: true) with the same findings', async () => {
    await target.query("UPDATE app.accounts SET email = 'drift-again' WHERE id = 8");
    const stopPoint = (await pin()).switchPoint;
    const stop = await verifyAt(stopPoint, 'stop');
    assert.ok('findings' in stop.check);
    const accounts = stop.check.findings.find((f) => f.object === 'table app.accounts');
    assert.match(accounts?.message ?? '', /id=8 \(changed\).*at the switch point/);
    await assertReleased(stopPoint, admins);

    const rollbackPoint = (await pin()).switchPoint;
    await target.query("UPDATE app.accounts SET email = 'user8@example.test' WHERE id = 8");
    const rollback = await verifyAt(rollbackPoint, 'rollback');
    assert.ok('error' in rollback.check);
    const error = rollback.check.error as VerifyRollbackError;
    assert.ok(error instanceof VerifyRollbackError && error instanceof StepError);
    assert.equal(error.rollback, true);
    assert.match(error.message, /rollback/);
    assert.deepEqual(
      error.findings.map((f) => f.object),
      stop.check.findings.map((f) => f.object),
    );
    assert.match(error.findings.find((f) => f.object === 'table app.accounts')!.message, /id=8 \(changed\)/);
    await assertReleased(rollbackPoint, admins);
  });

  it('a holder that is gone: a plain failure saying why and how to decide, nothing verified at another moment', async () => {
    const { switchPoint } = await pin();
    process.kill(switchPoint.holder.pid, 'SIGKILL');
    const t = testContext({ outputs, stepId: 'verify' });
    const p = verify.params.parse({ at: switchPoint, onDifference: 'report' });
    try {
      const probe = await verify.probe(t.ctx, p);
      assert.equal(probe.state, 'blocked');
      await assert.rejects(verify.apply(t.ctx, p), (error: StepError) => {
        assert.match(error.message, /can no longer be proven/);
        assert.match(error.message, new RegExp(`holder process ${switchPoint.holder.pid} is no longer running`));
        assert.match(error.message, /nothing was verified at any other point/);
        assert.match(error.findings[0]!.fix!, /migrate rollback --runbook d-day/);
        assert.match(error.findings[0]!.fix!, /A later proof shows that source and target are equal at that later moment/);
        return true;
      });
      assert.deepEqual(t.progress, [], 'no table was compared');
      assert.ok(!t.lines.some((l) => l.startsWith('verified')));
    } finally {
      await t.close();
    }
    await assertReleased(switchPoint, admins);
  });

  it('maxHoldMinutes: the holder lets go on its own, and verify says so', async () => {
    const { switchPoint } = await pin(0.005);
    while (alive(switchPoint.holder.pid)) await new Promise((resolve) => setTimeout(resolve, 50));
    const t = testContext({ outputs, stepId: 'verify' });
    try {
      await assert.rejects(verify.apply(t.ctx, verify.params.parse({ at: switchPoint })), /its maximum hold ended at/);
    } finally {
      await t.close();
    }
    await assertReleased(switchPoint, admins);
  });

  it('undo releases the holder, idempotently; a rerun of the pin keeps a live point', async () => {
    const first = await pin();
    const t = testContext({ outputs, stepId: 'pin', previousChanges: first.changes });
    try {
      const rerun = await pinSwitchPoint.apply(t.ctx, pinSwitchPoint.params.parse({}));
      assert.deepEqual(rerun.switchPoint, first.switchPoint, 'the same point, not a later one');
      assert.equal((await pinSwitchPoint.probe(t.ctx, pinSwitchPoint.params.parse({}))).state, 'done');
      await pinSwitchPoint.undo!(t.ctx, pinSwitchPoint.params.parse({}), first.changes, rerun);
      await assertReleased(first.switchPoint, admins);
      await pinSwitchPoint.undo!(t.ctx, pinSwitchPoint.params.parse({}), first.changes, rerun);
    } finally {
      await t.close();
    }
  });

  it('a table truncated on the target after the pin: reported as not provable at the switch point, not as rows lost then', async () => {
    const { switchPoint } = await pin();
    await target.query('TRUNCATE app.audit_log');
    await target.query("INSERT INTO app.audit_log VALUES (now(), 'after-truncate', '{}')");
    const { result } = await verifyAt(switchPoint, 'report');
    const audit = result.tables.find((t) => t.table === 'app.audit_log');
    assert.match(audit?.problem ?? '', /rewritten on the target after the switch point/);
    assert.deepEqual(
      result.tables.filter((t) => t.problem).map((t) => t.table),
      ['app.audit_log'],
      'only the rewritten table',
    );
    await assertReleased(switchPoint, admins);
  });
});
