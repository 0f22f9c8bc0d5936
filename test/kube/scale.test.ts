/**
 * kube.scale / kube.restore against the local Kubernetes stand-in (no real API server is used).
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { StepError } from '../../migrate/core/step.ts';
import { type KubeStandin, startKubeStandin } from '../../migrate/local/kube-standin.ts';
import { kubeRestore } from '../../migrate/steps/kube/restore.ts';
import { kubeScale } from '../../migrate/steps/kube/scale.ts';
import { testContext } from '../support/context.ts';
import { fakeClock, kubeOutputs } from './fixtures.ts';

let standin: KubeStandin;

beforeEach(async () => {
  standin = await startKubeStandin({
    workloads: [
      { namespace: 'app', kind: 'Deployment', name: 'web', replicas: 3 },
      { namespace: 'app', kind: 'Deployment', name: 'worker', replicas: 2 },
      { namespace: 'app', kind: 'Deployment', name: 'cron', replicas: 0 },
      { namespace: 'app', kind: 'Deployment', name: 'admin', replicas: 1 },
      { namespace: 'app', kind: 'StatefulSet', name: 'cache', replicas: 1 },
      { namespace: 'pgbouncer', kind: 'Deployment', name: 'pgbouncer', replicas: 2 },
    ],
  });
});
afterEach(() => standin.close());

const context = (extra: { dryRun?: boolean } = {}) => {
  const clock = fakeClock();
  return { clock, ...testContext({ outputs: kubeOutputs(standin.kubeconfig), now: clock.now, sleep: clock.sleep, ...extra }) };
};
const scaleParams = (extra: Record<string, unknown> = {}) => kubeScale.params.parse({ exclude: ['admin'], ...extra });
const patches = () => standin.requests.filter((r) => r.method === 'PATCH' || r.method === 'PUT');
const specReplicas = (ns: string, kind: 'Deployment' | 'StatefulSet', name: string) => standin.get(ns, kind, name)!.spec.replicas;
const pods = (ns: string, kind: 'Deployment' | 'StatefulSet', name: string) => standin.get(ns, kind, name)!.status.replicas;

test('dry run (probe) reads the workloads and lists each scale it would make, writing nothing', async () => {
  const t = context({ dryRun: true });
  const probe = await kubeScale.probe(t.ctx, scaleParams());
  assert.equal(probe.state, 'ready');
  assert.deepEqual(probe.plan, [
    'PATCH app/deployment/web/scale: replicas 3 → 0',
    'PATCH app/deployment/worker/scale: replicas 2 → 0',
    'PATCH app/statefulset/cache/scale: replicas 1 → 0',
  ]);
  assert.equal(patches().length, 0);
  await t.close();
});

test('scales every workload of the namespaces to zero, journalling each count before its PATCH, and waits for the pods to go', async () => {
  const t = context();
  const patchesWhenRecorded: number[] = [];
  const record = t.ctx.record;
  (t.ctx as { record: typeof record }).record = async (change) => {
    patchesWhenRecorded.push(patches().length);
    await record(change);
  };
  const result = await kubeScale.apply(t.ctx, scaleParams());
  assert.deepEqual(result, { counts: { 'app/deployment/web': 3, 'app/deployment/worker': 2, 'app/statefulset/cache': 1 } });
  assert.deepEqual(
    t.changes.filter((c: any) => c.previous > 0),
    [
      { action: 'scale', workload: 'app/deployment/web', previous: 3, replicas: 0 },
      { action: 'scale', workload: 'app/deployment/worker', previous: 2, replicas: 0 },
      { action: 'scale', workload: 'app/statefulset/cache', previous: 1, replicas: 0 },
    ],
  );
  // Write-ahead: the n-th record happened before the n-th PATCH was sent.
  patchesWhenRecorded.forEach((seen, i) => {
    assert.ok(seen <= i, `record ${i} came after ${seen} patches`);
  });
  for (const [kind, name] of [
    ['Deployment', 'web'],
    ['Deployment', 'worker'],
    ['StatefulSet', 'cache'],
  ] as const) {
    assert.equal(specReplicas('app', kind, name), 0);
    assert.equal(pods('app', kind, name), 0, `${name} pods are gone`);
  }
  assert.equal(specReplicas('app', 'Deployment', 'admin'), 1, 'excluded workload untouched');
  assert.equal(specReplicas('pgbouncer', 'Deployment', 'pgbouncer'), 2, 'other namespaces untouched');
  assert.ok(patches().every((r) => r.path.endsWith('/scale') && r.contentType === 'application/merge-patch+json'));
  assert.ok(
    t.progress.some((p) => p.label === 'scale workloads to zero' && p.deadline !== undefined),
    'progress with a deadline while pods stop',
  );
  assert.deepEqual(await kubeScale.check(t.ctx, scaleParams(), result), []);
  assert.equal((await kubeScale.probe(t.ctx, scaleParams())).state, 'done');
  await t.close();
});

test('a resumed scale keeps the original counts, never the zero its first attempt left', async () => {
  const first = context();
  // The first attempt scales, then times out waiting for the pods (a crash after the PATCHes).
  await assert.rejects(kubeScale.apply(first.ctx, scaleParams({ deadlineMinutes: 1, pollSeconds: 60 })), (error: unknown) => {
    assert.ok(error instanceof StepError);
    assert.match(error.message, /Unable to scale workloads to zero: not settled after 1 minutes/);
    assert.match(error.findings[0]!.object, /app\/deployment\/web/);
    return true;
  });
  assert.equal(specReplicas('app', 'Deployment', 'web'), 0);
  const second = first.retry();
  const probe = await kubeScale.probe(second.ctx, scaleParams());
  const result = probe.state === 'done' ? probe.result! : await kubeScale.apply(second.ctx, scaleParams());
  assert.deepEqual(result.counts, { 'app/deployment/web': 3, 'app/deployment/worker': 2, 'app/statefulset/cache': 1 });
  assert.deepEqual(second.changes, [], 'nothing re-recorded');
  await first.close();
});

test('kube.restore and the undo of kube.scale put back the recorded counts and wait until ready', async () => {
  const t = context();
  const scaled = await kubeScale.apply(t.ctx, scaleParams());
  const r = context();
  const restoreParams = kubeRestore.params.parse({ counts: scaled.counts });
  assert.deepEqual((await kubeRestore.probe(r.ctx, restoreParams)).plan, [
    'PATCH app/deployment/web/scale: replicas 0 → 3',
    'PATCH app/deployment/worker/scale: replicas 0 → 2',
    'PATCH app/statefulset/cache/scale: replicas 0 → 1',
  ]);
  await kubeRestore.apply(r.ctx, restoreParams);
  assert.equal(standin.get('app', 'Deployment', 'web')!.status.readyReplicas, 3);
  assert.equal(standin.get('app', 'StatefulSet', 'cache')!.status.readyReplicas, 1);
  assert.equal(specReplicas('app', 'Deployment', 'cron'), 0, 'a workload that was at zero stays there');
  assert.equal((await kubeRestore.probe(r.ctx, restoreParams)).state, 'done');

  // Someone scales web down again; rolling back the scale step restores it from the journal.
  standin.setReplicas('app', 'Deployment', 'web', 0);
  await kubeScale.undo!(t.ctx, scaleParams(), t.changes, scaled);
  assert.equal(specReplicas('app', 'Deployment', 'web'), 3);
  assert.equal(standin.get('app', 'Deployment', 'web')!.status.readyReplicas, 3);
  await t.close();
  await r.close();
});

test('restore params reject a malformed workload key', () => {
  const parsed = kubeRestore.params.safeParse({ counts: { web: 3 } });
  assert.equal(parsed.success, false);
});

test('rejected credentials name the object and say what to check', async () => {
  const t = testContext({ outputs: kubeOutputs(standin.kubeconfig.replace(standin.token, 'wrong-token')) });
  await assert.rejects(kubeScale.probe(t.ctx, scaleParams()), (error: unknown) => {
    assert.ok(error instanceof StepError);
    assert.match(error.message, /^Unable to list deployments and statefulsets in namespace app: 401/);
    assert.match(error.findings[0]!.fix ?? '', /credentials/);
    return true;
  });
  await t.close();
});
