import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ChangeResourceRecordSetsCommand } from '@aws-sdk/client-route-53';
import type { RecordSet } from '../../migrate/aws/record-sets.ts';
import { redirectWebhooks } from '../../migrate/steps/webhooks/redirect.ts';
import { restoreWebhooks } from '../../migrate/steps/webhooks/restore.ts';
import { awsOutputs, fakeClock, ZONE_ID } from '../aws/fixtures.ts';
import { fakeRoute53 } from '../aws/route53-fake.ts';
import { testContext } from '../support/context.ts';

const WEBHOOKS = 'webhooks.billing.example.com.';
const legacy: RecordSet = { Name: WEBHOOKS, Type: 'A', TTL: 300, ResourceRecords: [{ Value: '198.51.100.10' }] };
const recorder: RecordSet = {
  Name: WEBHOOKS,
  Type: 'CNAME',
  TTL: 60,
  ResourceRecords: [{ Value: 'd-abc123.execute-api.eu-west-1.amazonaws.com' }],
};
const newApp: RecordSet = { Name: WEBHOOKS, Type: 'A', TTL: 60, ResourceRecords: [{ Value: '203.0.113.20' }, { Value: '203.0.113.21' }] };
const neighbour: RecordSet = {
  Name: 'www.billing.example.com.',
  Type: 'CNAME',
  TTL: 300,
  ResourceRecords: [{ Value: 'app.billing.example.com' }],
};

describe('webhooks.redirect and webhooks.restore', () => {
  let cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const close of cleanup) await close();
    cleanup = [];
  });

  function setup(sets: RecordSet[], outputs = awsOutputs()) {
    const route53 = fakeRoute53({ sets, getChangesUntilInsync: 1 });
    const clock = fakeClock();
    const t = testContext({ outputs, now: clock.now, sleep: clock.sleep });
    cleanup.push(
      () => t.close(),
      () => route53.mock.restore(),
    );
    const batches = () => route53.mock.commandCalls(ChangeResourceRecordSetsCommand).map((c) => c.args[0].input.ChangeBatch!.Changes);
    const webhookSets = () => route53.sets().filter((s) => s.Name === WEBHOOKS);
    return { route53, t, batches, webhookSets };
  }
  const params = { verifyAuthoritative: false };

  it('redirect points the record at the recorder in one batch and undo puts the legacy set back', async () => {
    const { t, batches, webhookSets, route53 } = setup([legacy, neighbour]);
    const p = redirectWebhooks.params.parse(params);

    const probe = await redirectWebhooks.probe(t.ctx, p);
    assert.equal(probe.state, 'ready');
    assert.match(probe.plan![0]!, /^Point webhooks\.billing\.example\.com at the recorder/);

    const result = await redirectWebhooks.apply(t.ctx, p);
    assert.deepEqual(batches(), [
      [
        { Action: 'DELETE', ResourceRecordSet: legacy },
        { Action: 'CREATE', ResourceRecordSet: recorder },
      ],
    ]);
    assert.deepEqual(result, { name: 'webhooks.billing.example.com', type: 'CNAME', to: 'recorder', changeId: '/change/C01ABCDEFGHIJ' });
    assert.deepEqual(t.changes, [
      { action: 'dns-change', hostedZoneId: ZONE_ID, name: WEBHOOKS, previous: { touched: ['CNAME', 'A'], sets: [legacy] } },
    ]);
    assert.deepEqual(await redirectWebhooks.check(t.ctx, p, result), []);
    assert.equal((await redirectWebhooks.probe(t.ctx, p)).state, 'done');

    await redirectWebhooks.undo!(t.ctx, p, t.changes, result);
    assert.deepEqual(webhookSets(), [legacy]);
    assert.ok(
      route53.sets().some((s) => s.Name === neighbour.Name),
      'other records untouched',
    );
  });

  it('restore points the record at the new app, not back at legacy; undo returns it to the recorder', async () => {
    const { t, batches, webhookSets } = setup([recorder, neighbour]);
    const p = restoreWebhooks.params.parse(params);

    const result = await restoreWebhooks.apply(t.ctx, p);
    assert.deepEqual(batches(), [
      [
        { Action: 'DELETE', ResourceRecordSet: recorder },
        { Action: 'CREATE', ResourceRecordSet: newApp },
      ],
    ]);
    assert.deepEqual(result, { name: 'webhooks.billing.example.com', type: 'A', to: 'new app', changeId: '/change/C01ABCDEFGHIJ' });
    assert.deepEqual(await restoreWebhooks.check(t.ctx, p, result), []);

    await restoreWebhooks.undo!(t.ctx, p, t.changes, result);
    assert.deepEqual(webhookSets(), [recorder]);
  });

  it('check fails when the record was moved elsewhere afterwards', async () => {
    const { t } = setup([legacy]);
    const p = redirectWebhooks.params.parse(params);
    const findings = await redirectWebhooks.check(t.ctx, p, {
      name: 'webhooks.billing.example.com',
      type: 'CNAME',
      to: 'recorder',
      changeId: null,
    });
    assert.equal(findings?.[0]?.severity, 'error');
    assert.match(findings![0]!.message, /^is absent, expected the recorder: CNAME/);
  });

  it('both are blocked, with the fix, when the stack has no recorder', async () => {
    const { t, batches } = setup([legacy], { ...awsOutputs(), webhooks: undefined });
    for (const step of [redirectWebhooks, restoreWebhooks]) {
      const probe = await step.probe(t.ctx, step.params.parse(params));
      assert.equal(probe.state, 'blocked');
      assert.equal(probe.findings![0]!.object, 'stack outputs: webhooks');
      assert.match(probe.findings![0]!.fix!, /Enable the recorder/);
    }
    assert.equal(batches().length, 0);
  });
});
