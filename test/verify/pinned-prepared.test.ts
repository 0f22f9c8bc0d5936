/**
 * postgres.prepare-switch-point then postgres.pin-switch-point (prepared), on real servers: the
 * holder waits connected and idle (holding nothing back, no secret exposed), the pin only tells it to
 * export, and the proof at that point is the proof of the switch point; it survives a kill -9 of the
 * CLI that prepared and pinned it; a pin that told it and died, or a prepared holder gone before the
 * pin, ends with a fresh holder and nothing left over; unpinned, it lets go on its own or on undo.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import type { StackOutputs } from '../../infra/contract.ts';
import type { Json } from '../../migrate/core/step.ts';
import { alive } from '../../migrate/local/running.ts';
import { applicationName, exportPrepared } from '../../migrate/postgres/switch-point/holder.ts';
import type { PreparedHolderRef, SwitchPoint } from '../../migrate/postgres/switch-point/point.ts';
import { pinSwitchPoint } from '../../migrate/steps/postgres/pin-switch-point.ts';
import { prepareSwitchPoint } from '../../migrate/steps/postgres/prepare-switch-point.ts';
import { verify } from '../../migrate/steps/postgres/verify.ts';
import { testContext } from '../support/context.ts';
import { type Pair, startPair } from './fixture.ts';
import { appWritesAfterPin, assertReleased, createRoles, driftBeforePin } from './pinned-support.ts';

describe('a prepared snapshot holder, pinned inside the window', () => {
  let pair: Pair;
  let admins: { source: pg.Client; target: pg.Client };
  let dir: string;

  const database = async (name: string) => {
    const db = await pair.database(name);
    await driftBeforePin(db.source, db.target);
    return db;
  };
  const prepare = async (outputs: StackOutputs, params: object = {}) => {
    const t = testContext({ outputs, stepId: 'prepare-pin' });
    try {
      const { holder } = await prepareSwitchPoint.apply(t.ctx, prepareSwitchPoint.params.parse(params));
      return { holder, changes: t.changes, lines: t.lines };
    } finally {
      await t.close();
    }
  };
  const pin = async (outputs: StackOutputs, prepared: PreparedHolderRef, previousChanges: Json[] = []) => {
    const t = testContext({ outputs, stepId: 'pin', previousChanges });
    try {
      const p = pinSwitchPoint.params.parse({ prepared });
      const { switchPoint } = await pinSwitchPoint.apply(t.ctx, p);
      assert.deepEqual((await pinSwitchPoint.check(t.ctx, p, { switchPoint })) ?? [], [], 'the snapshots import');
      return { switchPoint, changes: t.changes, lines: t.lines };
    } finally {
      await t.close();
    }
  };
  /** The proof at the point finds exactly what differed at the pin. */
  const proves = async (outputs: StackOutputs, at: SwitchPoint) => {
    const t = testContext({ outputs, stepId: 'prove' });
    try {
      const result = await verify.apply(t.ctx, verify.params.parse({ at, onDifference: 'report' }));
      assert.deepEqual(
        result.tables.filter((x) => x.counts === 'mismatch' || x.checksum === 'mismatch').map((x) => [x.table, x.differences.rows]),
        [['app.accounts', [{ key: { id: '7' }, kind: 'changed' }]]],
      );
      assert.deepEqual(
        (result.sequences ?? []).map((f) => f.object),
        ['sequence app.ticket_seq'],
      );
    } finally {
      await t.close();
    }
  };
  const sessions = async (tag: string) =>
    Promise.all(
      [admins.source, admins.target].map(
        async (admin) =>
          (
            await admin.query(
              'SELECT state, backend_xmin::text AS xmin, backend_xid::text AS xid FROM pg_stat_activity WHERE application_name = $1',
              [applicationName(tag)],
            )
          ).rows,
      ),
    );
  const gone = async (holder: PreparedHolderRef) => {
    while (alive(holder.pid)) await new Promise((resolve) => setTimeout(resolve, 20));
    for (;;) {
      const left = await sessions(holder.tag);
      if (left.every((rows) => rows.length === 0)) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(existsSync(holder.dir), false, 'its directory is removed');
  };

  before(async () => {
    pair = await startPair();
    admins = { source: await pair.source.client(), target: await pair.target.client() };
    await createRoles([admins.source, admins.target]);
    dir = mkdtempSync(join(tmpdir(), 'pinned-prepared-'));
  });
  after(async () => {
    await Promise.all([admins?.source.end(), admins?.target.end()].map((p) => p?.catch(() => {})));
    await pair?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('waits connected and idle, then exports in the same process when pinned; the proof is the switch point’s', async () => {
    const db = await database('prepared');
    const prepared = await prepare(db.outputs);
    const { holder } = prepared;
    assert.ok(alive(holder.pid), 'the holder runs detached after the prepare step returned');
    assert.equal(statSync(holder.dir).mode & 0o777, 0o700, 'its directory is private');
    // Idle on both servers: no transaction, so nothing held back until the pin.
    assert.deepEqual(await sessions(holder.tag), [[{ state: 'idle', xmin: null, xid: null }], [{ state: 'idle', xmin: null, xid: null }]]);
    const passwords = [pair.source.password, pair.target.password];
    const exposed = [
      readFileSync(`/proc/${holder.pid}/cmdline`, 'utf8'),
      readFileSync(`/proc/${holder.pid}/environ`, 'utf8'),
      JSON.stringify([prepared.changes, prepared.lines, holder]),
    ];
    for (const password of passwords) for (const text of exposed) assert.ok(!text.includes(password), 'a password is exposed');

    const { switchPoint, changes } = await pin(db.outputs, holder);
    assert.equal(switchPoint.holder.pid, holder.pid, 'the prepared process holds the snapshots');
    assert.equal(switchPoint.holder.tag, holder.tag);
    assert.deepEqual(
      changes.map((c) => (c as { action: string }).action),
      ['pin', 'pinned'],
    );
    const held = await sessions(holder.tag);
    for (const rows of held) assert.equal(rows[0]?.state, 'idle in transaction', 'the snapshot is held in an open transaction');
    await appWritesAfterPin(db.target);
    await proves(db.outputs, switchPoint);
    await assertReleased(switchPoint, admins);
    assert.equal(existsSync(holder.dir), false);
  });

  it('kill -9 of the CLI that prepared and pinned: the holder keeps the point, a resumed pin returns it, the proof holds', async () => {
    const db = await database('killed');
    const [outputsFile, journal, pointFile] = ['outputs.json', 'journal.jsonl', 'point.json'].map((f) => join(dir, f)) as [
      string,
      string,
      string,
    ];
    writeFileSync(outputsFile, JSON.stringify(db.outputs), { mode: 0o600 });
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'pinned-prepare-child.ts'), outputsFile, journal, pointFile],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    while (!out.includes('PINNED')) {
      assert.equal(child.exitCode, null, `the child ended before pinning: ${out}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    const { holder, switchPoint } = JSON.parse(readFileSync(pointFile, 'utf8')) as { holder: PreparedHolderRef; switchPoint: SwitchPoint };
    assert.ok(alive(holder.pid), 'the holder outlives the kill -9 of the CLI');
    const pinChanges = readFileSync(journal, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: string; change: Json })
      .filter((l) => l.step === 'pin')
      .map((l) => l.change);
    await appWritesAfterPin(db.target);
    // `migrate resume`: the pin is found done, at the same point, not pinned again.
    const resumed = testContext({ outputs: db.outputs, stepId: 'pin', previousChanges: pinChanges });
    try {
      const probe = await pinSwitchPoint.probe(resumed.ctx, pinSwitchPoint.params.parse({ prepared: holder }));
      assert.equal(probe.state, 'done');
      assert.deepEqual((probe.result as { switchPoint: SwitchPoint }).switchPoint, switchPoint);
    } finally {
      await resumed.close();
    }
    await proves(db.outputs, switchPoint);
    await assertReleased(switchPoint, admins);
  });

  it('a pin that told the holder and died before recording the point: the rerun lets it go and pins afresh', async () => {
    const db = await database('told');
    const { holder } = await prepare(db.outputs);
    // What the killed attempt left: its record, and a holder that exported for it.
    const told: Json[] = [{ action: 'pin', tag: holder.tag, prepared: true, maxHoldMinutes: 120 }];
    assert.ok(await exportPrepared(holder, 60_000));
    const { switchPoint } = await pin(db.outputs, holder, told);
    assert.notEqual(switchPoint.holder.tag, holder.tag, 'a holder exports once: a fresh one pins');
    await gone(holder);
    await appWritesAfterPin(db.target);
    await proves(db.outputs, switchPoint);
    await assertReleased(switchPoint, admins);
  });

  it('a prepared holder gone before the pin: the pin starts its own, says so, and proves the same', async () => {
    const db = await database('lost');
    const { holder } = await prepare(db.outputs);
    process.kill(holder.pid, 'SIGKILL');
    while (alive(holder.pid)) await new Promise((resolve) => setTimeout(resolve, 20));
    const { switchPoint, lines } = await pin(db.outputs, holder);
    assert.notEqual(switchPoint.holder.pid, holder.pid);
    assert.ok(
      lines.some((l) => /prepared snapshot holder .* cannot be told to export from here: released, starting one now/.test(l)),
      lines.join('\n'),
    );
    // Its sessions were released too (a SIGKILLed client's backend ends when it notices).
    for (;;) {
      if ((await sessions(holder.tag)).every((rows) => rows.length === 0)) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await appWritesAfterPin(db.target);
    await proves(db.outputs, switchPoint);
    await assertReleased(switchPoint, admins);
    rmSync(holder.dir, { recursive: true, force: true });
  });

  it('unpinned: lets go after maxWaitMinutes; a rerun keeps a live one; undo releases it, idempotently', async () => {
    const db = await pair.database('unpinned');
    const short = await prepare(db.outputs, { maxWaitMinutes: 0.005 });
    await gone(short.holder);

    const first = await prepare(db.outputs);
    const t = testContext({ outputs: db.outputs, stepId: 'prepare-pin', previousChanges: first.changes });
    try {
      const p = prepareSwitchPoint.params.parse({});
      const probe = await prepareSwitchPoint.probe(t.ctx, p);
      assert.equal(probe.state, 'done');
      assert.deepEqual((probe.result as { holder: PreparedHolderRef }).holder, first.holder, 'the same holder, not a second one');
      await prepareSwitchPoint.undo!(t.ctx, p, first.changes, { holder: first.holder });
      await gone(first.holder);
      await prepareSwitchPoint.undo!(t.ctx, p, first.changes, { holder: first.holder });
      await assert.rejects(prepareSwitchPoint.check(t.ctx, p, { holder: first.holder }), /cannot serve the pin/);
    } finally {
      await t.close();
    }
  });
});
