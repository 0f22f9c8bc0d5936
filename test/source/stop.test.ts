/** source.stop with real shell commands: marker files stand in for the legacy services. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { StepError } from '../../migrate/core/step.ts';
import { sourceStop } from '../../migrate/steps/source/stop.ts';
import { awsOutputs } from '../aws/fixtures.ts';
import { testContext } from '../support/context.ts';

const dir = mkdtempSync(join(tmpdir(), 'source-stop-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const context = () => testContext({ outputs: awsOutputs() });

test('runs the stop command, skips it when the check says it is done, and undo runs the undo command', async () => {
  const running = join(dir, 'legacy.running');
  writeFileSync(running, '');
  const p = sourceStop.params.parse({
    command: `rm ${running} && echo stopped legacy`,
    check: ['test', '!', '-e', running],
    undo: ['touch', running],
  });
  const t = context();
  const probe = await sourceStop.probe(t.ctx, p);
  assert.equal(probe.state, 'ready');
  assert.deepEqual(probe.plan, [`run: rm ${running} && echo stopped legacy (timeout 300 s)`]);
  assert.ok(existsSync(running), 'probe (dry run) does not run the command');

  const result = await sourceStop.apply(t.ctx, p);
  assert.equal(existsSync(running), false);
  assert.equal(result.stdoutTail, 'stopped legacy');
  assert.deepEqual(t.changes[0], { action: 'run', role: 'command', command: `rm ${running} && echo stopped legacy` });
  assert.equal((t.changes[1] as any).exitCode, 0);
  assert.equal((t.changes[1] as any).stdoutTail, 'stopped legacy');
  assert.deepEqual(await sourceStop.check(t.ctx, p, result), undefined);
  assert.equal((await sourceStop.probe(t.retry().ctx, p)).state, 'done', 'a resumed run does not stop twice');

  await sourceStop.undo!(t.ctx, p, t.changes, result);
  assert.ok(existsSync(running), 'undo started it again');
  await t.close();
});

test('a failing command is an error carrying the output tail', async () => {
  const t = context();
  const p = sourceStop.params.parse({ command: 'echo "connecting to legacy-1"; echo "legacy-1: unit not found" >&2; exit 5' });
  await assert.rejects(sourceStop.apply(t.ctx, p), (error: unknown) => {
    assert.ok(error instanceof StepError);
    assert.match(
      error.message,
      /^Unable to run the stop command of source.stop: '.*' exited with 5:\nlegacy-1: unit not found\nconnecting to legacy-1$/,
    );
    assert.equal(error.findings[0]!.object, 'with.command');
    return true;
  });
  assert.equal((t.changes[1] as any).exitCode, 5, 'the failure is journalled too');
  await t.close();
});

test('a command that hangs is killed at its timeout', async () => {
  const t = context();
  await assert.rejects(
    sourceStop.apply(t.ctx, sourceStop.params.parse({ command: ['sleep', '30'], timeoutSeconds: 0.5 })),
    /did not finish within 0.5 s and was killed/,
  );
  await t.close();
});

test('a secret in the environment is scrubbed from the journal, the log and errors', async () => {
  const planted = 'planted-secret-Zq81x7';
  process.env.SOURCE_STOP_PLANTED = planted;
  const t = context();
  // The engine resolves `${{ secrets.x }}` through ctx.secret, which registers the value for redaction.
  const token = (await t.ctx.secret('env:SOURCE_STOP_PLANTED')).reveal();
  const p = sourceStop.params.parse({
    command: 'echo "token is $API_TOKEN"; echo "auth $API_TOKEN failed" >&2; exit 1',
    env: { API_TOKEN: token },
  });
  let message = '';
  await assert.rejects(sourceStop.apply(t.ctx, p), (error: unknown) => {
    message = `${(error as Error).message} ${JSON.stringify((error as StepError).findings)}`;
    return true;
  });
  const everything = JSON.stringify([t.changes, t.lines, message]);
  assert.ok(everything.includes('token is ***'), 'the output was captured');
  assert.ok(!everything.includes(planted), 'the secret never appears');
  delete process.env.SOURCE_STOP_PLANTED;
  await t.close();
});

test('waitSeconds waits out cached DNS answers before the command runs, showing the time left', async () => {
  const running = join(dir, 'legacy-wait.running');
  writeFileSync(running, '');
  let clock = 1_000_000;
  const seenWhileWaiting: boolean[] = [];
  const t = testContext({
    outputs: awsOutputs(),
    now: () => clock,
    sleep: async (ms) => {
      seenWhileWaiting.push(existsSync(running));
      clock += ms;
    },
  });
  const p = sourceStop.params.parse({ command: ['rm', running], waitSeconds: 60, waitMarginSeconds: 5 });
  assert.equal((await sourceStop.probe(t.ctx, p)).plan![0], 'wait 65 s first (clients may still hold the old DNS answer)');
  await sourceStop.apply(t.ctx, p);
  assert.equal(existsSync(running), false);
  assert.equal(clock, 1_000_000 + 65_000, 'waited exactly the given time on the step clock');
  assert.ok(seenWhileWaiting.length >= 65 && seenWhileWaiting.every(Boolean), 'the services ran for the whole wait');
  assert.ok(t.progress.every((p) => p.deadline === 1_065_000 && /cached DNS/.test(p.label)));
  await t.close();
});
