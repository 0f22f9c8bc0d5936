/**
 * kube.restart against the local Kubernetes stand-in (no real API server is used): the patch, the
 * rollout wait as kubectl judges it, resume without a second restart, and a failed rollout.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { StepError } from '../../migrate/core/step.ts';
import { type KubeStandin, type RestartEvent, startKubeStandin } from '../../migrate/local/kube-standin.ts';
import { kubeRestart, RESTARTED_AT } from '../../migrate/steps/kube/restart.ts';
import { testContext } from '../support/context.ts';
import { fakeClock, kubeOutputs } from './fixtures.ts';

let standin: KubeStandin | undefined;
afterEach(() => standin?.close());

async function start(onRestart?: (event: RestartEvent) => Promise<void> | void) {
  standin = await startKubeStandin({
    workloads: [{ namespace: 'pgbouncer', kind: 'Deployment', name: 'pgbouncer', replicas: 2 }],
    onRestart,
  });
  const clock = fakeClock();
  return { clock, ...testContext({ outputs: kubeOutputs(standin.kubeconfig), now: clock.now, sleep: clock.sleep }) };
}
const params = (extra: Record<string, unknown> = {}) => kubeRestart.params.parse(extra);
const deploymentPatches = () => standin!.requests.filter((r) => r.method === 'PATCH');

test('restarts the PgBouncer deployment from the outputs and waits until every replica is new and available', async () => {
  const restarts: RestartEvent[] = [];
  const t = await start((event) => {
    restarts.push(event);
  });
  const dry = await kubeRestart.probe(t.ctx, params());
  assert.equal(dry.state, 'ready');
  assert.match(
    dry.plan![0]!,
    /^PATCH deployment pgbouncer\/pgbouncer: spec.template.metadata.annotations\["kubectl.kubernetes.io\/restartedAt"\]/,
  );
  assert.equal(deploymentPatches().length, 0, 'probe writes nothing');

  const result = await kubeRestart.apply(t.ctx, params());
  const stamp = new Date(t.clock.now() - t.clock.sleeps.reduce((a, b) => a + b, 0)).toISOString();
  assert.deepEqual(result, { deployment: 'pgbouncer/pgbouncer', restartedAt: stamp, replicas: 2 });
  assert.deepEqual(t.changes, [{ action: 'restart', deployment: 'pgbouncer/pgbouncer', restartedAt: stamp }]);
  const [patch] = deploymentPatches();
  assert.equal(patch!.contentType, 'application/strategic-merge-patch+json');
  assert.deepEqual(patch!.body, { spec: { template: { metadata: { annotations: { [RESTARTED_AT]: stamp } } } } });
  assert.deepEqual(restarts, [{ namespace: 'pgbouncer', name: 'pgbouncer', restartedAt: stamp }]);

  const d = standin!.get('pgbouncer', 'Deployment', 'pgbouncer')!;
  assert.equal(d.status.observedGeneration, d.metadata.generation);
  assert.equal(d.status.updatedReplicas, 2);
  assert.equal(d.status.availableReplicas, 2);
  assert.equal(d.status.replicas, 2, 'no old pods left');
  const details = t.progress.map((p) => p.detail);
  assert.ok(details.includes('waiting for the deployment spec update to be observed'));
  assert.ok(
    details.some((x) => /old replicas pending termination|new replicas updated/.test(x ?? '')),
    'rollout progressed over several polls',
  );
  assert.deepEqual(await kubeRestart.check(t.ctx, params(), result), undefined);
  await t.close();
});

test('a resumed restart finds its own stamp and only waits, without restarting the pods again', async () => {
  const restarts: RestartEvent[] = [];
  const t = await start((event) => {
    restarts.push(event);
  });
  // First attempt times out mid-rollout (as if the CLI died while waiting).
  await assert.rejects(kubeRestart.apply(t.ctx, params({ deadlineMinutes: 1, pollSeconds: 30 })), /rollout not complete after 1 minutes/);
  const again = t.retry();
  const probe = await kubeRestart.probe(again.ctx, params());
  const result = probe.state === 'done' ? probe.result! : await kubeRestart.apply(again.ctx, params());
  assert.equal(deploymentPatches().length, 1, 'one restart only');
  assert.equal(restarts.length, 1);
  assert.deepEqual(again.changes, []);
  assert.equal(result.restartedAt, (t.changes[0] as { restartedAt: string }).restartedAt);
  assert.equal((await kubeRestart.probe(again.ctx, params())).state, 'done');
  await t.close();
});

test('a rollout that exceeds its progress deadline fails with the reason, not a timeout', async () => {
  const t = await start(() => {
    throw new Error('new pods cannot reach the database');
  });
  await assert.rejects(kubeRestart.apply(t.ctx, params()), (error: unknown) => {
    assert.ok(error instanceof StepError);
    assert.match(error.message, /^Unable to restart deployment pgbouncer\/pgbouncer: rollout exceeded its progress deadline/);
    assert.match(error.message, /new pods cannot reach the database/);
    assert.match(error.findings[0]!.fix ?? '', /rollout undo/);
    return true;
  });
  await t.close();
});

test('a missing deployment blocks with the name and namespace', async () => {
  const t = await start();
  await assert.rejects(kubeRestart.probe(t.ctx, params({ namespace: 'app', name: 'api' })), (error: unknown) => {
    assert.ok(error instanceof StepError);
    assert.match(error.message, /^Unable to read deployment app\/api: 404/);
    return true;
  });
  await t.close();
});
