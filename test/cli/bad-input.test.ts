/**
 * Bad input stops the CLI before it touches anything, with exit code 2 and a message naming what
 * is wrong and where; a second run while one holds the stack's lock exits 3 naming the holder.
 * None of these needs a database: the outputs point at a port where nothing listens.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  STACK,
  startCli,
  state,
  waitUntil,
} from './support.ts';

describe('bad input and the lock', () => {
  let dir: string;
  let outputsFile: string;
  let global: string[];
  const running: CliProcess[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'migrate-cli-input-'));
    const outputs = localOutputs({ dir, source: placeholderServer('source'), target: placeholderServer('target'), database: 'app' });
    outputsFile = join(dir, 'outputs.json');
    writeFileSync(outputsFile, JSON.stringify(outputs, null, 2));
    global = ['--outputs', outputsFile, '--state-dir', join(dir, 'state')];
  });

  after(() => {
    for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  // Independent CLI processes: run them side by side to keep the suite's wall time down.
  describe('usage errors (exit 2)', { concurrency: true }, () => {
    it('a runbook with an unknown step kind names the file, the step and the kind', async () => {
      const file = join(dir, 'unknown-kind.yaml');
      writeFileSync(
        file,
        'name: unknown-kind\nsteps:\n  - id: freeze\n    uses: postgres.freeze-writes\n  - id: beam-up\n    uses: postgres.teleport\n',
      );
      const r = await cli([...global, 'run', file, '--yes']);
      assert.equal(r.code, EXIT.usage, describeResult(r));
      assert.match(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      assert.match(r.stderr, /step 'beam-up'/);
      assert.match(r.stderr, /unknown step kind 'postgres\.teleport'/);
      assert.deepEqual(journalFiles(join(dir, 'state')), [], 'nothing ran, not even a journal');
    });

    it('an outputs file missing a field names the field', async () => {
      const outputs = JSON.parse(readFileSync(outputsFile, 'utf8'));
      delete outputs.database.port;
      const broken = join(dir, 'no-port.json');
      writeFileSync(broken, JSON.stringify(outputs));
      const r = await cli(['--outputs', broken, '--state-dir', join(dir, 'state-no-port'), 'plan', 'runbooks/week-prior.yaml']);
      assert.equal(r.code, EXIT.usage, describeResult(r));
      assert.match(r.stderr, /database\.port/);
      assert.ok(r.stderr.includes(broken), `the message names the file: ${r.stderr}`);
    });

    it('--from a step the runbook does not have names the step and lists the real ones', async () => {
      const r = await cli([...global, 'run', 'runbooks/week-prior.yaml', '--yes', '--from', 'nosuchstep']);
      assert.equal(r.code, EXIT.usage, describeResult(r));
      assert.match(r.stderr, /--from nosuchstep/);
      assert.match(r.stderr, /preflight, schema, copy, indexes, replication/);
    });

    // Its defaults leave the shell and in-place PgBouncer steps empty (the EKS setting); a step whose
    // `if:` is false must not have those empty values validated.
    it('the shipped d-day.yaml plans with its default config', async () => {
      const r = await cli([...global, 'plan', 'runbooks/d-day.yaml']);
      assert.equal(r.code, EXIT.ok, describeResult(r));
    });
  });

  it('a second run while the first holds the lock exits 3 naming the holder; SIGTERM interrupts the first cleanly', async () => {
    const stateDir = join(dir, 'state-lock');
    const lockGlobal = ['--outputs', outputsFile, '--state-dir', stateDir];
    const runbook = join(dir, 'long.yaml');
    // A shell step that waits: the run holds the lock for as long as the test needs, no server required.
    writeFileSync(
      runbook,
      'name: long\nsteps:\n  - id: wait\n    uses: source.stop\n    with:\n      command: sleep 60\n      timeoutSeconds: 90\n',
    );
    const first = startCli([...lockGlobal, 'run', runbook, '--yes']);
    running.push(first);
    const lockFile = join(stateDir, STACK, 'lock');
    const journal = await waitUntil('the first run journal', () => journalFiles(stateDir)[0], { process: first });
    await waitUntil(
      'the first run inside its step',
      () => (entriesSoFar(journal).some((e) => e.type === 'step-started') ? true : undefined),
      { process: first },
    );
    assert.ok(existsSync(lockFile));
    const holder = JSON.parse(readFileSync(lockFile, 'utf8')) as { pid: number; runId: string };
    assert.equal(holder.pid, first.child.pid);

    const second = await cli([...lockGlobal, 'run', runbook, '--yes']);
    assert.equal(second.code, EXIT.locked, describeResult(second));
    assert.ok(second.stderr.includes(holder.runId), `names the holding run: ${second.stderr}`);
    assert.ok(second.stderr.includes(`pid ${holder.pid}`), `names the holding process: ${second.stderr}`);
    assert.equal(journalFiles(stateDir).length, 1, 'the refused run wrote no journal');

    first.child.kill('SIGTERM');
    const ended = await first.done;
    assert.equal(ended.code, EXIT.interrupted, describeResult(ended));
    assert.equal(state(journal).status, 'interrupted');
    assert.ok(!existsSync(lockFile), 'an interrupted run releases the lock');
  });
});
