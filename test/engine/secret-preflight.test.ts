/**
 * Issue 10 #3: a secret the runbook needs and Parameter Store does not have is blocking in a dry run
 * (exit 4, naming the secret and the parameter, never a value) and stops a real run before its first
 * step. "Depends on an earlier step" is said only of a result an earlier step of this run produces.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { SSMClient } from '@aws-sdk/client-ssm';
import { exitCodeFor } from '../../migrate/commands/environment.ts';
import { EXIT } from '../../migrate/commands/exit-codes.ts';
import { exitCodeOf } from '../../migrate/commands/run.ts';
import { dryRun, type EngineEnvironment, run } from '../../migrate/core/engine.ts';
import { jsonReporter } from '../../migrate/core/report.ts';
import { runbookFromObject } from '../../migrate/core/runbook.ts';
import { UnresolvedReferencesError } from '../../migrate/core/secret-preflight.ts';
import { createSecretResolver } from '../../migrate/core/secret-refs.ts';
import { fakeSsm } from '../aws/ssm-fake.ts';
import { fakeKinds, fixtureOutputs, lookupFor, newWorld } from '../support/fake-kinds.ts';

const APP_PASSWORD = '/c/test/database/app-password';
const PLANTED = 'planted-App-Pw-5c1e';

let restore: (() => void) | undefined;
afterEach(() => restore?.());

function setup(withParameter: boolean) {
  const ssm = fakeSsm();
  restore = () => ssm.mock.restore();
  if (withParameter) ssm.put(APP_PASSWORD, PLANTED);
  const world = newWorld();
  const lines: string[] = [];
  const lookup = lookupFor(fakeKinds(world));
  const env: EngineEnvironment = {
    stack: 'test',
    outputs: fixtureOutputs(),
    stateDir: join(mkdtempSync(join(tmpdir(), 'secret-preflight-')), 'state'),
    reporter: jsonReporter((l) => lines.push(l)),
    secret: createSecretResolver({ region: 'eu-west-1', ssm: new SSMClient({ region: 'eu-west-1' }) }),
    capabilities: new Set(['postgres', 'aws']),
    yes: true,
  };
  // The shape of d-day: the swap uses the app password and a result of the replicas step before it.
  const runbook = runbookFromObject(
    {
      name: 'swap',
      secrets: { appPassword: 'ssm:${{ outputs.parameters.prefix }}/database/app-password' },
      steps: [
        { id: 'first', uses: 'test.set', with: { key: 'first', value: 'x' } },
        { id: 'replicas', uses: 'test.set', with: { key: 'replicas', value: 'r1,r2' } },
        {
          id: 'swap-secrets',
          uses: 'test.set',
          with: { key: 'url', value: 'postgresql://app:${{ secrets.appPassword | urlencode }}@${{ steps.replicas.length }}/app' },
        },
      ],
    },
    'swap.yaml',
    { outputs: env.outputs, ...lookup },
  );
  const events = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { world, env, runbook, lines, events };
}

test('a dry run reports a missing secret as blocking, naming the secret and the parameter', async () => {
  const s = setup(false);
  const outcome = await dryRun(s.runbook, s.env);
  assert.equal(exitCodeOf(outcome), EXIT.blocked);
  const errors = outcome.findings.filter((f) => f.severity === 'error');
  assert.deepEqual(
    errors.map((f) => f.object),
    ['secret appPassword'],
  );
  assert.match(
    errors[0]!.message,
    new RegExp(`ssm:${APP_PASSWORD} \\(used by step 'swap-secrets'\\) does not resolve: .*ParameterNotFound`),
  );
  assert.match(errors[0]!.fix!, /aws ssm put-parameter --type SecureString/);
  const ends = s.events().filter((e) => e.type === 'step-end');
  assert.deepEqual(
    ends.map((e) => [e.step, e.outcome]),
    [
      ['first', 'would-run'],
      ['replicas', 'would-run'],
      ['swap-secrets', 'blocked'],
    ],
  );
  assert.ok(!s.lines.join('\n').includes('depend on earlier'), 'a missing secret is not "depends on an earlier step"');
});

test('a dry run with every secret present defers only on the earlier step that produces the value', async () => {
  const s = setup(true);
  const outcome = await dryRun(s.runbook, s.env);
  assert.equal(exitCodeOf(outcome), EXIT.ok);
  const plan = s.events().find((e) => e.type === 'step-plan' && e.step === 'swap-secrets')!;
  assert.deepEqual(plan.lines, ["parameters depend on earlier step 'replicas': probed when the run gets there"]);
  assert.ok(!s.lines.join('\n').includes(PLANTED));
});

test('a reference to a step that does not run in this selection is an error, not a dependency', async () => {
  const s = setup(true);
  const outcome = await dryRun(s.runbook, s.env, { only: 'swap-secrets' });
  assert.equal(exitCodeOf(outcome), EXIT.blocked);
  assert.match(
    outcome.findings[0]!.message,
    /\$\{\{ steps\.replicas\.length \}\}: step 'replicas' does not run before 'swap-secrets' in this run/,
  );
  await assert.rejects(run(s.runbook, s.env, { only: 'swap-secrets' }), UnresolvedReferencesError);
  assert.deepEqual(s.world.applyCalls, []);
});

test('a real run with a missing secret refuses before its first step: nothing applied, no journal', async () => {
  const s = setup(false);
  await assert.rejects(run(s.runbook, s.env), (error: unknown) => {
    assert.ok(error instanceof UnresolvedReferencesError);
    assert.match(error.message, /cannot start: 1 problem found before the first step; nothing was changed/);
    assert.match(error.message, new RegExp(`secret appPassword: ssm:${APP_PASSWORD}`));
    assert.equal(exitCodeFor(error).code, EXIT.blocked);
    return true;
  });
  assert.deepEqual(s.world.applyCalls, []);
  assert.equal(existsSync(s.env.stateDir), false, 'no journal, no lock');
});

test('with the secret present the real run passes the gate and uses it', async () => {
  const s = setup(true);
  const outcome = await run(s.runbook, s.env);
  assert.equal(outcome.outcome, 'finished');
  assert.deepEqual(s.world.applyCalls, ['first', 'replicas', 'swap-secrets']);
  assert.equal(s.world.values.get('url'), `postgresql://app:${encodeURIComponent(PLANTED)}@5/app`);
});
