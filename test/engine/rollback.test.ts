/**
 * Rollback (`run.undo`) undoes every run of a runbook not undone yet, newest change first: a runbook
 * run twice, or in pieces with `--only`, is undone completely, and a rollback with nothing to undo
 * says so instead of reporting a success. The shipped runbooks run in-process against the in-memory
 * Route53 and RDS behind aws-sdk-client-mock.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type { StackOutputs } from '../../infra/contract.ts';
import type { RecordSet } from '../../migrate/aws/record-sets.ts';
import { type EngineEnvironment, type RunSelection, run } from '../../migrate/core/engine.ts';
import { kindLookup } from '../../migrate/core/environment.ts';
import { listRuns } from '../../migrate/core/journal.ts';
import { jsonReporter } from '../../migrate/core/report.ts';
import { type LoadOptions, loadRunbook, runbookFromObject } from '../../migrate/core/runbook.ts';
import { createSecretResolver } from '../../migrate/core/secret-refs.ts';
import type { Capability } from '../../migrate/core/step.ts';
import { undoStepKind } from '../../migrate/core/undo.ts';
import { awsOutputs, fakeClock } from '../aws/fixtures.ts';
import { fakeRds } from '../aws/rds-fake.ts';
import { fakeRoute53 } from '../aws/route53-fake.ts';
import { fakeKinds, fixtureOutputs, lookupFor, newWorld } from '../support/fake-kinds.ts';

const RUNBOOKS = join(import.meta.dirname, '..', '..', 'runbooks');

function engine(outputs: StackOutputs, capabilities: Capability[], extra: Partial<EngineEnvironment> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'rollback-test-'));
  const stateDir = join(dir, 'state');
  const events: Record<string, any>[] = [];
  const env: EngineEnvironment = {
    stack: 'test',
    outputs,
    stateDir,
    reporter: jsonReporter((line) => events.push(JSON.parse(line))),
    secret: createSecretResolver({ region: outputs.region }),
    capabilities: new Set(capabilities),
    yes: true,
    ...extra,
  };
  const stepEnd = (step: string) => events.filter((e) => e.type === 'step-end' && e.step === step).at(-1)!;
  const logs = () => events.filter((e) => e.type === 'log').map((e) => e.message as string);
  return { dir, stateDir, env, events, stepEnd, logs };
}

describe('rollback undoes every run of the runbook', () => {
  let cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const close of cleanup) await close();
    cleanup = [];
  });

  function withFakeKinds() {
    const world = newWorld();
    let undo: ReturnType<typeof undoStepKind>;
    const lookup = lookupFor(fakeKinds(world), (name) => (name === 'run.undo' ? undo : undefined));
    const e = engine(fixtureOutputs(), ['postgres']);
    undo = undoStepKind({ stateDir: e.stateDir, ...lookup });
    cleanup.push(() => rmSync(e.dir, { recursive: true, force: true }));
    const file = join(e.dir, 'book.yaml');
    writeFileSync(
      file,
      `name: book
steps:
  - { id: redirect, uses: test.set, with: { key: record, value: recorder } }
  - { id: other, uses: test.set, with: { key: other, value: "1" } }
  - { id: restore, uses: test.set, with: { key: record, value: new-app } }
`,
    );
    const load = { outputs: e.env.outputs, ...lookup };
    const rollback = (p: Record<string, unknown> = { runbook: 'book' }) =>
      runbookFromObject({ name: 'rollback', steps: [{ id: 'undo', uses: 'run.undo', with: p }] }, 'rollback', load);
    return { ...e, world, book: () => loadRunbook(file, load), rollback };
  }

  it('a runbook run twice (the second run finding everything done) is undone completely', async () => {
    const s = withFakeKinds();
    s.world.values.set('other', 'before');
    const book = s.book();
    await run({ ...book, steps: book.steps.filter((x) => x.id === 'other') }, s.env);
    assert.equal((await run(book, s.env, { only: 'other' })).outcome, 'finished');
    assert.deepEqual(s.world.applyCalls, ['other'], 'the second run changed nothing');
    const undone = await run(s.rollback(), s.env);
    assert.equal(undone.outcome, 'finished');
    assert.equal(s.world.values.get('other'), 'before');
    assert.equal(s.stepEnd('undo').outcome, 'applied');
    assert.ok(
      s.logs().some((l) => /^undid 1 step\(s\): other of run book-/.test(l)),
      s.logs().join('\n'),
    );
    assert.ok(s.logs().includes('nothing of those runs remains to undo'));
  });

  it('runs made of single steps (--only) are undone newest first, leaving the world as before them', async () => {
    const s = withFakeKinds();
    s.world.values.set('record', 'legacy');
    await run(s.book(), s.env, { only: 'redirect' });
    await run(s.book(), s.env, { only: 'restore' });
    assert.equal(s.world.values.get('record'), 'new-app');
    assert.equal((await run(s.rollback(), s.env)).outcome, 'finished');
    assert.equal(s.world.values.get('record'), 'legacy');
    assert.deepEqual(s.world.undoCalls, ['record', 'record']);
    // A second rollback finds both undone and says so, changing nothing.
    assert.equal((await run(s.rollback(), s.env)).outcome, 'finished');
    assert.deepEqual(s.world.undoCalls, ['record', 'record']);
    const second = s.stepEnd('undo');
    assert.equal(second.outcome, 'skipped');
    assert.match(second.reason, /^nothing to undo: 2 run\(s\) of runbook 'book' \(book-\S+, book-\S+\); already undone: /);
    assert.match(second.reason, /redirect of run book-/);
    assert.match(second.reason, /restore of run book-/);
  });

  it('--keep leaves a step of every run alone and says that it remains', async () => {
    const s = withFakeKinds();
    await run(s.book(), s.env, { only: 'other' });
    await run(s.book(), s.env, { only: 'redirect' });
    await run(s.rollback({ runbook: 'book', keep: ['other'] }), s.env);
    assert.equal(s.world.values.get('other'), '1');
    assert.equal(s.world.values.has('record'), false);
    assert.ok(
      s.logs().some((l) => /^remains as it is: other of run book-\S+ \(kept as asked\)$/.test(l)),
      s.logs().join('\n'),
    );
  });

  it('a rollback when nothing was ever done says so, as a skipped step, not as already-done', async () => {
    const s = withFakeKinds();
    const nothing = await run(s.rollback(), s.env);
    assert.equal(nothing.outcome, 'finished');
    assert.deepEqual(s.world.undoCalls, []);
    assert.equal(s.stepEnd('undo').outcome, 'skipped');
    assert.equal(s.stepEnd('undo').reason, "nothing to undo: no run of runbook 'book' on stack test has changed anything");
    const [journaled] = listRuns(s.stateDir, 'test');
    assert.equal(journaled!.steps[0]!.status, 'skipped');
    // A run that changed nothing is no different.
    s.world.values.set('other', '1');
    await run(s.book(), s.env, { only: 'other' });
    await run(s.rollback(), s.env);
    assert.match(s.stepEnd('undo').reason, /^nothing to undo: 1 run\(s\) of runbook 'book' \(book-[^)]+\); none of them changed anything$/);
  });

  describe('the shipped runbooks against the AWS fakes', () => {
    const WEBHOOKS = 'webhooks.billing.example.com.';
    const APP = 'app.billing.example.com.';
    const legacyWebhooks: RecordSet = { Name: WEBHOOKS, Type: 'A', TTL: 300, ResourceRecords: [{ Value: '198.51.100.10' }] };
    const legacyApp: RecordSet = { Name: APP, Type: 'CNAME', TTL: 3600, ResourceRecords: [{ Value: 'lb.legacy-dc.example.net' }] };
    // A private zone: no authoritative name servers to ask in a test.
    const outputs = () => {
      const base = awsOutputs();
      return { ...base, dns: { ...base.dns, privateZone: true } };
    };

    function shipped(sets: RecordSet[]) {
      const route53 = fakeRoute53({ sets, getChangesUntilInsync: 1 });
      const rds = fakeRds({ describesUntilAvailable: 1, describesUntilDeleted: 1 });
      rds.add('billing-production');
      const clock = fakeClock();
      const e = engine(outputs(), ['aws'], { now: clock.now, sleep: clock.sleep });
      cleanup.push(
        () => route53.mock.restore(),
        () => rds.mock.restore(),
        () => rmSync(e.dir, { recursive: true, force: true }),
      );
      const lookup = kindLookup(e.stateDir);
      const load: LoadOptions = { outputs: e.env.outputs, ...lookup };
      const runFile = (file: string, selection: RunSelection = {}) => run(loadRunbook(join(RUNBOOKS, file), load), e.env, selection);
      const rollback = (runbook: string) =>
        run(runbookFromObject({ name: 'rollback', steps: [{ id: 'undo', uses: 'run.undo', with: { runbook } }] }, 'rollback', load), e.env);
      return { ...e, route53, rds, runFile, rollback, record: (name: string) => route53.sets().filter((s) => s.Name === name) };
    }

    it('d-day as --only redirect-webhooks, then --only restore-webhooks: rollback puts the webhook record back as before', async () => {
      const s = shipped([legacyWebhooks, legacyApp]);
      assert.equal((await s.runFile('d-day.yaml', { only: 'redirect-webhooks' })).outcome, 'finished');
      assert.equal((await s.runFile('d-day.yaml', { only: 'restore-webhooks' })).outcome, 'finished');
      assert.notDeepEqual(s.record(WEBHOOKS), [legacyWebhooks]);
      const undone = await s.rollback('d-day');
      assert.equal(undone.outcome, 'finished', undone.error);
      assert.deepEqual(s.record(WEBHOOKS), [legacyWebhooks]);
      assert.deepEqual(s.record(APP), [legacyApp]);
    });

    it('day-before run twice: rollback restores the TTLs and deletes the replicas the first run created', async () => {
      const s = shipped([legacyWebhooks, legacyApp]);
      assert.equal((await s.runFile('day-before.yaml')).outcome, 'finished');
      assert.equal((await s.runFile('day-before.yaml')).outcome, 'finished');
      assert.equal(s.record(APP)[0]!.TTL, 60);
      assert.ok(s.rds.instances.has('billing-production-replica-1'));
      const undone = await s.rollback('day-before');
      assert.equal(undone.outcome, 'finished', undone.error);
      assert.deepEqual(s.record(APP), [legacyApp]);
      assert.deepEqual(s.record(WEBHOOKS), [legacyWebhooks]);
      assert.deepEqual([...s.rds.instances.keys()], ['billing-production']);
    });
  });
});
