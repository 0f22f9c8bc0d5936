/**
 * A run that cannot start leaves no journal: `runs` does not list it, `resume` and `rollback` do not
 * find it. The run lock covers what the selected steps touch, a run stopped by a blocked probe exits
 * 4, `resume` keeps the run's own `--without`, and a mistyped rollback is refused. Real CLI processes;
 * real PostgreSQL where a database is involved.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXIT } from '../../migrate/commands/exit-codes.ts';
import { localOutputs } from '../../migrate/local/outputs.ts';
import {
  type CliProcess,
  cli,
  describeResult,
  entriesSoFar,
  journalFiles,
  placeholderServer,
  type Stack,
  startCli,
  startStack,
  state,
  waitUntil,
} from './support.ts';

/** Nothing of a run that never started: no journal, no run listed, nothing to resume. */
async function assertNoRun(global: string[], stateDir: string) {
  assert.deepEqual(journalFiles(stateDir), [], 'no journal');
  const runs = await cli([...global, 'runs']);
  assert.equal(runs.code, EXIT.ok, describeResult(runs));
  assert.match(runs.stdout, /^No runs for stack rehearsal/, describeResult(runs));
  const resumed = await cli([...global, 'resume', '--yes']);
  assert.equal(resumed.code, EXIT.usage, describeResult(resumed));
  assert.match(resumed.stderr, /Nothing to resume/);
}

describe('runs that cannot start, without a database', () => {
  let dir: string;
  let outputsFile: string;
  const globalFor = (stateDir: string) => ['--outputs', outputsFile, '--state-dir', stateDir];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'migrate-cli-lifecycle-'));
    const outputs = localOutputs({
      dir,
      source: placeholderServer('source', { host: 'db.invalid', port: 5432 }),
      target: placeholderServer('target', { host: 'db.invalid', port: 5432 }),
      database: 'app',
    });
    outputsFile = join(dir, 'outputs.json');
    writeFileSync(outputsFile, JSON.stringify(outputs, null, 2));
    writeFileSync(
      join(dir, 'mixed.yaml'),
      `name: mixed
secrets:
  token: "env:MIGRATE_LIFECYCLE_TEST_UNSET"
steps:
  - id: verify
    uses: postgres.verify
  - id: swap
    uses: ssm.swap
    with:
      parameters:
        - name: /cutover/rehearsal/token
          value: \${{ secrets.token }}
`,
    );
    writeFileSync(
      join(dir, 'local.yaml'),
      'name: local\nsteps:\n  - id: verify\n    uses: postgres.verify\n  - id: note\n    uses: source.stop\n    with: { command: "true" }\n',
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('side by side', { concurrency: true }, () => {
    it('--only an AWS step does not connect to the unreachable database for the lock; its missing secret stops it before it starts', async () => {
      const stateDir = join(dir, 'state-only');
      const r = await cli([...globalFor(stateDir), 'run', join(dir, 'mixed.yaml'), '--only', 'swap', '--yes']);
      // A secret that does not resolve is a blocking problem found before anything changed: exit 4.
      assert.equal(r.code, EXIT.blocked, describeResult(r));
      assert.doesNotMatch(r.stdout + r.stderr, /db\.invalid|ENOTFOUND|lock on the target/, 'no database connection was attempted');
      assert.match(
        r.stderr,
        /cannot start: 1 problem found before the first step; nothing was changed:\n.*secret token: env:MIGRATE_LIFECYCLE_TEST_UNSET \(used by step 'swap'\) does not resolve/,
      );
      await assertNoRun(globalFor(stateDir), stateDir);
    });

    it('--without postgres runs the other steps under the file lock alone', async () => {
      const stateDir = join(dir, 'state-without');
      const r = await cli([...globalFor(stateDir), '--without', 'postgres', 'run', join(dir, 'local.yaml'), '--yes']);
      assert.equal(r.code, EXIT.ok, describeResult(r));
      assert.doesNotMatch(r.stdout + r.stderr, /db\.invalid|ENOTFOUND/);
      const [journal] = journalFiles(stateDir);
      assert.deepEqual(
        state(journal!).steps.map((s) => s.status),
        ['skipped', 'applied'],
      );
    });

    it('a run that needs the database for its lock says why it connected, and leaves no journal when it cannot', async () => {
      const stateDir = join(dir, 'state-needs-db');
      const r = await cli([...globalFor(stateDir), 'run', join(dir, 'local.yaml'), '--yes']);
      assert.equal(r.code, EXIT.failed, describeResult(r));
      assert.match(
        r.stderr,
        /could not take the run lock on the target database db\.invalid:5432 \(database\.endpoint\/port in the outputs\), needed because step\(s\) verify use PostgreSQL/,
      );
      assert.match(r.stderr, /--only <step>, --without postgres/);
      await assertNoRun(globalFor(stateDir), stateDir);
    });

    it("resume keeps the run's own --without unless the operator gives another", async () => {
      const stateDir = join(dir, 'state-resume');
      const marker = join(dir, 'marker');
      const runbook = join(dir, 'resume.yaml');
      writeFileSync(
        runbook,
        `name: resumable\nsteps:\n  - id: first\n    uses: source.stop\n    with: { command: "test -f ${marker}" }\n  - id: verify\n    uses: postgres.verify\n`,
      );
      const failed = await cli([...globalFor(stateDir), '--without', 'postgres', 'run', runbook, '--yes']);
      assert.equal(failed.code, EXIT.failed, describeResult(failed));
      writeFileSync(marker, '');
      const resumed = await cli([...globalFor(stateDir), 'resume', '--yes']);
      assert.equal(resumed.code, EXIT.ok, describeResult(resumed));
      assert.doesNotMatch(resumed.stderr, /db\.invalid|ENOTFOUND/);
      const [journal] = journalFiles(stateDir);
      const run = state(journal!);
      assert.deepEqual(
        run.steps.map((s) => [s.id, s.status, s.reason ?? null]),
        [
          ['first', 'applied', null],
          ['verify', 'skipped', 'skipped: --without postgres'],
        ],
      );
      const resumedEntry = entriesSoFar(journal!).find((e) => e.type === 'run-resumed');
      assert.deepEqual(
        resumedEntry && 'capabilities' in resumedEntry ? resumedEntry.capabilities : undefined,
        ['aws', 'kube', 'pgbouncer', 'shell', 'http'],
        'journaled',
      );
    });

    it('an explicit --without on resume overrides the journaled one', async () => {
      const stateDir = join(dir, 'state-resume-override');
      const runbook = join(dir, 'override.yaml');
      writeFileSync(
        runbook,
        'name: override\nsteps:\n  - id: fail\n    uses: source.stop\n    with: { command: "false" }\n  - id: verify\n    uses: postgres.verify\n',
      );
      await cli([...globalFor(stateDir), '--without', 'postgres', 'run', runbook, '--yes']);
      const resumed = await cli([...globalFor(stateDir), '--without', 'shell', 'resume', '--yes']);
      assert.equal(resumed.code, EXIT.failed, describeResult(resumed));
      assert.match(resumed.stderr, /needed because step\(s\) verify use PostgreSQL/, 'postgres is back, so verify needs the lock');
    });

    it('rollback of a runbook or run the journal does not have exits 2 naming what exists, writing nothing', async () => {
      const stateDir = join(dir, 'state-rollback');
      const ran = await cli([...globalFor(stateDir), '--without', 'postgres', 'run', join(dir, 'local.yaml'), '--yes']);
      assert.equal(ran.code, EXIT.ok, describeResult(ran));
      const before = journalFiles(stateDir);
      const typo = await cli([...globalFor(stateDir), 'rollback', '--runbook', 'lcoal', '--yes']);
      assert.equal(typo.code, EXIT.usage, describeResult(typo));
      assert.match(
        typo.stderr,
        /rollback --runbook lcoal: stack 'rehearsal' has no run of a runbook named 'lcoal' .*\(runbooks with runs: local\)\. Nothing was done\./,
      );
      const unknown = await cli([...globalFor(stateDir), 'rollback', '--run', 'd-day-20250101T000000-beef', '--yes']);
      assert.equal(unknown.code, EXIT.usage, describeResult(unknown));
      assert.match(unknown.stderr, /rollback --run d-day-20250101T000000-beef: stack 'rehearsal' has no such run .*newest runs: local-/);
      assert.deepEqual(journalFiles(stateDir), before, 'no rollback run was journaled');
      // A runbook that did run but changed nothing undoable: said plainly, as a skipped step.
      const nothing = await cli([...globalFor(stateDir), 'rollback', '--runbook', 'local', '--yes', '--keep', 'note']);
      assert.equal(nothing.code, EXIT.ok, describeResult(nothing));
      assert.match(
        nothing.stdout,
        /skipped .*nothing to undo: 1 run\(s\) of runbook 'local' \(local-\S+\); kept as asked: note of run local-/,
      );
    });
  });
});

describe('runs that cannot start, with real servers', () => {
  let stack: Stack;
  let wrongPassword: string;
  const running: CliProcess[] = [];
  const globalFor = (stateDir: string, outputs = stack.outputsFile) => ['--outputs', outputs, '--state-dir', stateDir];

  before(async () => {
    stack = await startStack({ customers: 20 });
    writeFileSync(
      join(stack.dir, 'long.yaml'),
      'name: long\nsteps:\n  - id: wait\n    uses: source.stop\n    with: { command: sleep 60, timeoutSeconds: 90 }\n  - id: verify\n    uses: postgres.verify\n',
    );
    const outputs = JSON.parse(readFileSync(stack.outputsFile, 'utf8'));
    writeFileSync(join(stack.dir, 'wrong.password'), 'not-the-password', { mode: 0o600 });
    wrongPassword = join(stack.dir, 'outputs-wrong-password.json');
    writeFileSync(
      wrongPassword,
      JSON.stringify({ ...outputs, database: { ...outputs.database, masterPasswordRef: `file:${join(stack.dir, 'wrong.password')}` } }),
    );
  });
  after(async () => {
    for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await stack?.stop();
  });

  it('a lock held from another state dir refuses the second run before it journals anything', async () => {
    const first = startCli([...globalFor(join(stack.dir, 'state-a')), 'run', join(stack.dir, 'long.yaml'), '--yes']);
    running.push(first);
    const journal = await waitUntil('the first run journal', () => journalFiles(join(stack.dir, 'state-a'))[0], { process: first });
    await waitUntil(
      'the first run inside its step',
      () => (entriesSoFar(journal).some((e) => e.type === 'step-started') ? true : undefined),
      { process: first },
    );

    const stateB = join(stack.dir, 'state-b');
    const second = await cli([...globalFor(stateB), 'run', join(stack.dir, 'long.yaml'), '--yes']);
    assert.equal(second.code, EXIT.locked, describeResult(second));
    assert.match(second.stderr, /Another migrate run holds the lock for stack 'rehearsal' on the target database/);
    await assertNoRun(globalFor(stateB), stateB);

    first.child.kill('SIGTERM');
    assert.equal((await first.done).code, EXIT.interrupted);
  });

  it('a target password the server refuses stops the run before its first step, with no journal', async () => {
    const stateDir = join(stack.dir, 'state-auth');
    const r = await cli([...globalFor(stateDir, wrongPassword), 'run', join(stack.dir, 'long.yaml'), '--yes']);
    assert.equal(r.code, EXIT.failed, describeResult(r));
    assert.match(r.stderr, /needed because step\(s\) verify use PostgreSQL: .*password authentication failed/);
    assert.ok(!r.stdout.includes('[1/2]'), 'no step started');
    await assertNoRun(globalFor(stateDir, wrongPassword), stateDir);
  });

  it('a run stopped by a blocking preflight exits 4, as a blocked dry run does', async () => {
    await stack.sql('source', 'select lo_create(0)');
    try {
      const r = await cli([
        ...globalFor(join(stack.dir, 'state-blocked')),
        'run',
        'runbooks/week-prior.yaml',
        '--only',
        'preflight',
        '--yes',
      ]);
      assert.equal(r.code, EXIT.blocked, describeResult(r));
      assert.match(r.stdout, /large objects exist/);
    } finally {
      await stack.sql('source', 'select lo_unlink(oid) from pg_largeobject_metadata');
    }
  });
});
