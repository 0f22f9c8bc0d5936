/**
 * The shipped runbooks load and validate, every parameter included, against a production-like AWS
 * stack's outputs (with and without the webhook recorder) — so a renamed parameter of any step kind
 * breaks this test rather than an operator's D-day.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { kindLookup } from '../../migrate/core/environment.ts';
import { displayParams, loadRunbook } from '../../migrate/core/runbook.ts';
import { awsOutputs } from '../aws/fixtures.ts';

const dir = join(import.meta.dirname, '..', '..', 'runbooks');
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));

test('the shipped runbooks are the four stages of the cutover', () => {
  assert.deepEqual(files.sort(), ['d-day.yaml', 'day-before.yaml', 'rollback.yaml', 'week-prior.yaml']);
});

for (const outputs of [awsOutputs(), { ...awsOutputs(), webhooks: undefined }]) {
  const label = outputs.webhooks ? 'with' : 'without';
  for (const file of files) {
    test(`${file} validates against a stack ${label} the webhook recorder`, () => {
      const runbook = loadRunbook(join(dir, file), { outputs, ...kindLookup('/nonexistent-state') });
      assert.ok(runbook.steps.length > 0);
      for (const step of runbook.steps) {
        const shown = JSON.stringify(displayParams(runbook, step, outputs));
        assert.ok(!shown.includes('kubeconfig'), `${step.id} shows no kubeconfig`);
      }
    });
  }
}

test("d-day follows ChartMogul's order", () => {
  const runbook = loadRunbook(join(dir, 'd-day.yaml'), { outputs: awsOutputs(), ...kindLookup('/nonexistent-state') });
  const order = runbook.steps.map((s) => s.uses);
  const position = (kind: string) => {
    const at = order.indexOf(kind);
    assert.ok(at >= 0, `${kind} is in d-day.yaml`);
    return at;
  };
  const chartmogul = [
    'webhooks.redirect', // redirect all webhooks to the recorder
    'source.stop', // stop all services on the legacy machines
    'postgres.catch-up', // wait for replication to catch up
    'postgres.verify', // compare the data
    'postgres.replication-stop', // drop the subscription
    'rds.create-replicas', // create read replicas
    'ssm.swap', // update Parameter Store secrets
    'kube.restart', // restart PgBouncer
    'dns.switch', // switch DNS
    'webhooks.replay', // replay the recorded webhooks
  ];
  const positions = chartmogul.map(position);
  assert.deepEqual(
    [...positions].sort((a, b) => a - b),
    positions,
  );
  assert.ok(position('postgres.freeze-writes') < position('postgres.catch-up'), 'writes are frozen before catching up');
  assert.ok(position('postgres.sequence-sync') > position('postgres.freeze-writes'), 'sequences are read after the freeze');
});
