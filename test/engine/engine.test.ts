import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { rollbackIfRequested } from '../../migrate/commands/run.ts';
import { dryRun, type EngineEnvironment, findResumableRun, resume, run } from '../../migrate/core/engine.ts';
import { listRuns } from '../../migrate/core/journal.ts';
import { acquireLock, LockHeldError } from '../../migrate/core/lock.ts';
import { jsonReporter } from '../../migrate/core/report.ts';
import { loadRunbook, runbookFromObject } from '../../migrate/core/runbook.ts';
import { createSecretResolver } from '../../migrate/core/secret-refs.ts';
import type { Capability } from '../../migrate/core/step.ts';
import { undoStepKind } from '../../migrate/core/undo.ts';
import { fakeKinds, fixtureOutputs, lookupFor, newWorld } from '../support/fake-kinds.ts';

const PLANTED = 'planted-Secret-9f2c';

function setup(caps: Capability[] = ['postgres', 'aws', 'kube', 'pgbouncer', 'shell', 'http']) {
  const dir = mkdtempSync(join(tmpdir(), 'engine-test-'));
  const stateDir = join(dir, 'state');
  const world = newWorld();
  const lines: string[] = [];
  const kinds = fakeKinds(world);
  const lookup = lookupFor(kinds, (name) => (name === 'run.undo' ? undo : undefined));
  const undo = undoStepKind({ stateDir, ...lookup });
  const env: EngineEnvironment = {
    stack: 'test',
    outputs: fixtureOutputs(),
    stateDir,
    reporter: jsonReporter((l) => lines.push(l)),
    secret: createSecretResolver({ region: 'eu-west-1' }),
    capabilities: new Set(caps),
    unavailable: { aws: 'skipped: no AWS in this test' },
    yes: true,
  };
  const file = join(dir, 'book.yaml');
  writeFileSync(
    file,
    `name: book
secrets: { token: "env:ENGINE_TEST_TOKEN" }
steps:
  - { id: a, uses: test.set, with: { key: a, value: "1" } }
  - { id: b, uses: test.set, with: { key: b, value: "\${{ secrets.token }}" } }
  - { id: cloud, uses: test.aws }
  - { id: c, uses: test.set, with: { key: c, value: "len-\${{ steps.b.length }}" } }
`,
  );
  const load = { outputs: env.outputs, ...lookup };
  return { dir, stateDir, world, lines, env, file, load, runbook: () => loadRunbook(file, load) };
}

process.env.ENGINE_TEST_TOKEN = PLANTED;

test('a run applies every step in order, journals it, passes results on, and skips unavailable steps visibly', async () => {
  const s = setup(['postgres']);
  const outcome = await run(s.runbook(), s.env);
  assert.equal(outcome.outcome, 'finished');
  assert.deepEqual(s.world.applyCalls, ['a', 'b', 'c']);
  assert.equal(s.world.values.get('c'), `len-${PLANTED.length}`);
  const [state] = listRuns(s.stateDir, 'test');
  assert.equal(state!.status, 'finished');
  assert.deepEqual(
    state!.steps.map((x) => x.status),
    ['applied', 'applied', 'skipped', 'applied'],
  );
  assert.equal(state!.steps[2]!.reason, 'skipped: no AWS in this test');
  const journal = readFileSync(outcome.journal!, 'utf8');
  assert.ok(!journal.includes(PLANTED), 'journal must not contain the secret');
  assert.ok(!s.lines.join('').includes(PLANTED), 'output must not contain the secret');
});

test('a failed step leaves a journal that resume completes without repeating finished steps', async () => {
  const s = setup();
  s.world.failOnce.add('b');
  const first = await run(s.runbook(), s.env);
  assert.equal(first.outcome, 'failed');
  assert.equal(first.failedStep, 'b');
  assert.deepEqual(s.world.applyCalls, ['a', 'b']);
  const state = findResumableRun(s.stateDir, 'test');
  assert.equal(state.steps[1]!.status, 'failed');
  assert.equal(state.steps[1]!.changes.length, 1, 'the write-ahead change of the failed attempt is journaled');
  const second = await resume(state, s.runbook(), s.env);
  assert.equal(second.outcome, 'finished');
  assert.equal(second.runId, first.runId);
  assert.deepEqual(s.world.applyCalls, ['a', 'b', 'b', 'aws', 'c'], 'a is not applied again');
  assert.throws(() => findResumableRun(s.stateDir, 'test'), /Nothing to resume/);
});

test('resume refuses a runbook edited since the run started', async () => {
  const s = setup();
  s.world.failOnce.add('a');
  await run(s.runbook(), s.env);
  writeFileSync(s.file, `${readFileSync(s.file, 'utf8')}\n# edited\n`);
  await assert.rejects(resume(findResumableRun(s.stateDir, 'test'), s.runbook(), s.env), /has changed since run/);
});

test('a dry run probes, reports blocked steps with every finding, and writes nothing', async () => {
  const s = setup();
  const runbook = runbookFromObject(
    {
      name: 'guard',
      steps: [
        { id: 'set', uses: 'test.set', with: { key: 'x', value: 'y' } },
        { id: 'g', uses: 'test.guarded' },
      ],
    },
    'guard',
    s.load,
  );
  const outcome = await dryRun(runbook, s.env);
  assert.equal(outcome.outcome, 'dry-run');
  assert.equal(outcome.findings.filter((f) => f.severity === 'error').length, 2);
  assert.deepEqual(s.world.applyCalls, []);
  assert.equal(existsSync(s.stateDir), false, 'no journal, no lock');
  const ends = s.lines
    .map((l) => JSON.parse(l))
    .filter((e) => e.type === 'step-end')
    .map((e) => e.outcome);
  assert.deepEqual(ends, ['would-run', 'blocked']);
});

test('a dry run expects what an earlier step that would run creates, and blocks on it otherwise', async () => {
  const s = setup();
  const ends = () =>
    s.lines
      .splice(0)
      .map((l) => JSON.parse(l))
      .filter((e) => e.type === 'step-end')
      .map((e) => e.outcome);
  const both = runbookFromObject(
    {
      name: 'pair',
      steps: [
        { id: 'set', uses: 'test.set', with: { key: 'x', value: 'y' } },
        { id: 'after', uses: 'test.after-set' },
      ],
    },
    'pair',
    s.load,
  );
  const planned = await dryRun(both, s.env);
  assert.deepEqual(ends(), ['would-run', 'would-run']);
  assert.deepEqual(
    planned.findings.map((f) => [f.severity, f.object]),
    [['info', 'key x']],
  );
  assert.match(planned.findings[0]!.message, /expected before the earlier steps have run/);

  const alone = await dryRun(both, s.env, { only: 'after' });
  assert.deepEqual(ends(), ['blocked']);
  assert.deepEqual(
    alone.findings.map((f) => f.severity),
    ['error'],
  );
  const ran = await run(both, s.env, { only: 'after' });
  assert.equal(ran.outcome, 'failed');
  assert.deepEqual(s.world.applyCalls, []);
});

test('a blocked probe fails the step before any change', async () => {
  const s = setup();
  const runbook = runbookFromObject({ name: 'guard', steps: [{ id: 'g', uses: 'test.guarded' }] }, 'guard', s.load);
  const outcome = await run(runbook, s.env);
  assert.equal(outcome.outcome, 'failed');
  assert.match(outcome.error!, /2 problem/);
  assert.deepEqual(s.world.applyCalls, []);
});

test('steps that ask for confirmation need --yes when there is no terminal, and a "no" changes nothing', async () => {
  const s = setup();
  s.world.values.set('ok', '1');
  const runbook = runbookFromObject({ name: 'guard', steps: [{ id: 'g', uses: 'test.guarded' }] }, 'guard', s.load);
  await assert.rejects(run(runbook, { ...s.env, yes: false }), /pass --yes/);
  const declined = await run(runbook, { ...s.env, yes: false, confirm: async () => false });
  assert.equal(declined.outcome, 'failed');
  assert.match(declined.error!, /not confirmed/);
  assert.deepEqual(s.world.applyCalls, []);
});

test('--only and --from select steps; an unknown step id is a usage error', async () => {
  const s = setup();
  await run(s.runbook(), s.env, { only: 'a' });
  assert.deepEqual(s.world.applyCalls, ['a']);
  await assert.rejects(run(s.runbook(), s.env, { from: 'zzz' }), /--from zzz: .* has no step 'zzz'/);
});

test('the lock keeps a second operator out and is taken over from a dead process', async () => {
  const s = setup();
  const held = acquireLock(s.stateDir, 'test', 'other-run');
  await assert.rejects(run(s.runbook(), s.env), (e: unknown) => e instanceof LockHeldError && /locked by run other-run/.test(e.message));
  held.release();
  writeFileSync(
    join(s.stateDir, 'test', 'lock'),
    JSON.stringify({ pid: 2 ** 22 + 12345, host: (await import('node:os')).hostname(), runId: 'dead', since: '' }),
  );
  assert.equal((await run(s.runbook(), s.env)).outcome, 'finished');
});

test('run.undo undoes the newest run in reverse order, resumes after a failure, and never undoes a step twice', async () => {
  const s = setup();
  s.world.values.set('a', 'before');
  // A stopped clock: every step starts in the same millisecond, as fast steps do, and order must still hold.
  await run(s.runbook(), { ...s.env, now: () => 1_795_000_000_000 });
  const rollback = runbookFromObject(
    { name: 'rollback', steps: [{ id: 'undo', uses: 'run.undo', with: { runbook: 'book' } }] },
    'rollback',
    s.load,
  );
  s.world.failOnce.add('undo:b');
  const failed = await run(rollback, s.env);
  assert.equal(failed.outcome, 'failed');
  assert.deepEqual(s.world.undoCalls, ['c']);
  const resumed = await resume(findResumableRun(s.stateDir, 'test'), rollback, s.env);
  assert.equal(resumed.outcome, 'finished');
  assert.deepEqual(s.world.undoCalls, ['c', 'b', 'a']);
  assert.equal(s.world.values.get('a'), 'before');
  assert.equal(s.world.values.has('b'), false);
  assert.equal(s.world.values.has('c'), false);
  const again = await run(rollback, s.env);
  assert.equal(again.outcome, 'finished');
  assert.deepEqual(s.world.undoCalls, ['c', 'b', 'a'], 'a second rollback finds nothing left to undo');
});

test("a runbook can use a result of another runbook's newest run of this stack", async () => {
  const s = setup();
  const next = runbookFromObject(
    { name: 'next', steps: [{ id: 'use', uses: 'test.set', with: { key: 'copied', value: 'len-${{ runs.book.b.length }}' } }] },
    'next',
    s.load,
  );
  // Refused before its first step: nothing would produce the value the step needs, and no journal is left behind.
  await assert.rejects(run(next, s.env), /no run of runbook 'book' of this stack has finished step 'b'/);
  assert.deepEqual(s.world.applyCalls, []);
  assert.deepEqual(listRuns(s.stateDir, 'test'), []);
  await run(s.runbook(), s.env);
  assert.equal((await run(next, s.env)).outcome, 'finished');
  assert.equal(s.world.values.get('copied'), `len-${PLANTED.length}`);
});

test('`if:` on an output the stack does not have skips the step visibly; config defaults may use outputs', async () => {
  const s = setup();
  const runbook = runbookFromObject(
    {
      name: 'cond',
      config: { url: 'https://${{ outputs.dns.records.app.name }}/hooks' },
      steps: [
        { id: 'when-recorder', uses: 'test.set', if: '${{ outputs.webhooks.recorderUrl }}', with: { key: 'r', value: 'x' } },
        { id: 'always', uses: 'test.set', with: { key: 'u', value: '${{ config.url }}' } },
      ],
    },
    'cond',
    s.load,
  );
  assert.equal((await run(runbook, s.env)).outcome, 'finished');
  assert.equal(s.world.values.has('r'), false);
  assert.equal(s.world.values.get('u'), 'https://app.example.com/hooks');
  const [state] = listRuns(s.stateDir, 'test');
  assert.equal(state!.steps[0]!.status, 'skipped');
  assert.match(state!.steps[0]!.reason!, /condition .* is false/);
});

test('`if:` with `==`, `!=` and `&&` chooses between two paths, and a --set override flips the choice', async () => {
  const object = {
    name: 'paths',
    config: { proof: 'after-switch', command: 'stop-it' },
    steps: [
      { id: 'inside', uses: 'test.set', if: "${{ config.proof == 'before-switch' }}", with: { key: 'inside', value: 'x' } },
      { id: 'after', uses: 'test.set', if: "${{ config.proof != 'before-switch' }}", with: { key: 'after', value: 'x' } },
      { id: 'both', uses: 'test.set', if: "${{ config.proof == 'after-switch' && config.command }}", with: { key: 'both', value: 'x' } },
    ],
  };
  const s = setup();
  assert.equal((await run(runbookFromObject(object, 'paths', s.load), s.env)).outcome, 'finished');
  assert.deepEqual([s.world.values.has('inside'), s.world.values.has('after'), s.world.values.has('both')], [false, true, true]);
  const t = setup();
  const flipped = runbookFromObject(object, 'paths', { ...t.load, configOverrides: { proof: 'before-switch' } });
  assert.equal((await run(flipped, t.env)).outcome, 'finished');
  assert.deepEqual([t.world.values.has('inside'), t.world.values.has('after'), t.world.values.has('both')], [true, false, false]);
  const u = setup();
  const noCommand = runbookFromObject(object, 'paths', { ...u.load, configOverrides: { command: '' } });
  assert.equal((await run(noCommand, u.env)).outcome, 'finished');
  assert.equal(u.world.values.has('both'), false, '&& needs both sides');
});

test('a step that asks for a rollback (RollbackRequested) fails the run, which is then undone newest change first, without asking', async () => {
  const s = setup(['postgres']);
  s.world.failOnce.add('rollback:c');
  const outcome = await run(s.runbook(), { ...s.env, yes: false });
  assert.equal(outcome.outcome, 'failed');
  assert.equal(outcome.rollbackRequested, true);
  assert.equal(s.world.values.get('c'), `len-${PLANTED.length}`, 'the step itself changed the world before asking');
  const after = await rollbackIfRequested(outcome, { ...s.env, yes: false }, s.load);
  assert.equal(after.outcome, 'failed', 'the run stays a failure');
  assert.deepEqual(s.world.undoCalls, ['c', 'b', 'a']);
  assert.equal(s.world.values.size, 0);
  // A failure that does not ask for it is left for the operator.
  const t = setup(['postgres']);
  t.world.failOnce.add('c');
  const failed = await run(t.runbook(), t.env);
  assert.equal(failed.rollbackRequested, false);
  await rollbackIfRequested(failed, t.env, t.load);
  assert.deepEqual(t.world.undoCalls, []);
});
