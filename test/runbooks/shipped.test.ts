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
  assert.deepEqual(files.sort(), ['d-day.yaml', 'day-before.yaml', 'retire-legacy.yaml', 'rollback.yaml', 'week-prior.yaml']);
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

test("d-day follows ChartMogul's order, with every go/no-go before the first change and the proof pinned to the switch", () => {
  const runbook = loadRunbook(join(dir, 'd-day.yaml'), { outputs: awsOutputs(), ...kindLookup('/nonexistent-state') });
  const ids = runbook.steps.map((s) => s.id);
  const at = (id: string) => {
    const index = ids.indexOf(id);
    assert.ok(index >= 0, `${id} is in d-day.yaml`);
    return index;
  };
  const inOrder = (sequence: string[], why: string) => {
    const positions = sequence.map(at);
    assert.deepEqual(
      [...positions].sort((a, b) => a - b),
      positions,
      why,
    );
  };
  inOrder(
    [
      'redirect-webhooks',
      'stop-source',
      'catch-up',
      'verify',
      'stop-replication',
      'replicas',
      'swap-secrets',
      'restart-pgbouncer',
      'switch-dns',
      'replay-webhooks',
    ],
    "ChartMogul's order",
  );
  inOrder(
    [
      'pause-pgbouncer',
      'freeze',
      'catch-up',
      'write-fence',
      'sequences',
      'pin',
      'stop-replication',
      'reverse-replication',
      'repoint-pgbouncer',
      'resume-pgbouncer',
    ],
    'the write window: reverse replication starts at the pinned point, before any write reaches the target',
  );
  inOrder(['resume-pgbouncer', 'scale-up', 'switch-dns', 'prove', 'split-brain', 'stop-legacy-app'], 'the proof runs after writes resume');
  assert.equal(ids.at(-1), 'stop-legacy-app', 'keep-serving: the legacy app stops last');

  // Go/no-go before harm: every check runs before the first step that changes anything.
  const firstChange = runbook.steps.findIndex((s) => s.kind.destructive);
  assert.ok(firstChange > 0 && firstChange <= at('pause-pgbouncer'));
  for (const id of ['go-no-go-forecast', 'go-no-go-schema', 'go-no-go-replication', 'go-no-go-reverse', 'go-no-go-reverse-path'])
    assert.ok(at(id) < firstChange, `${id} runs before ${ids[firstChange]}, the first step that changes anything`);

  const step = (id: string) => runbook.steps.find((s) => s.id === id)!;
  assert.equal(step('prove').with.at, '${{ steps.pin.switchPoint }}');
  assert.match(step('verify').if!, /before-switch/);
  assert.match(step('pin').if!, /after-switch/);
  assert.match(step('prove').if!, /after-switch/);
  assert.equal(step('write-fence').with.keepSlot, true, 'the fence stays up after the switch, for split-brain');
});
