import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ChangeResourceRecordSetsCommand } from '@aws-sdk/client-route-53';
import type { RecordSet } from '../../migrate/aws/record-sets.ts';
import { StepError } from '../../migrate/core/step.ts';
import { dnsSetTtl } from '../../migrate/steps/aws/dns-set-ttl.ts';
import { dnsSwitch } from '../../migrate/steps/aws/dns-switch.ts';
import { testContext } from '../support/context.ts';
import { ALB_ZONE_ID, awsOutputs, fakeClock, ZONE_ID } from './fixtures.ts';
import { fakeRoute53 } from './route53-fake.ts';

const APP = 'app.billing.example.com.';
const WEBHOOKS = 'webhooks.billing.example.com.';
const legacyApp: RecordSet = { Name: APP, Type: 'CNAME', TTL: 3600, ResourceRecords: [{ Value: 'lb.legacy-dc.example.net' }] };
const legacyWebhooks: RecordSet = { Name: WEBHOOKS, Type: 'A', TTL: 300, ResourceRecords: [{ Value: '198.51.100.10' }] };

describe('dns.set-ttl', () => {
  let cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const close of cleanup) await close();
    cleanup = [];
  });
  function setup(sets: RecordSet[] = [legacyApp, legacyWebhooks]) {
    const route53 = fakeRoute53({ sets, getChangesUntilInsync: 1 });
    const clock = fakeClock();
    const t = testContext({ outputs: awsOutputs(), now: clock.now, sleep: clock.sleep });
    cleanup.push(
      () => t.close(),
      () => route53.mock.restore(),
    );
    return { route53, t, clock };
  }
  const params = (extra: object = {}) => dnsSetTtl.params.parse(extra);
  const batches = (route53: ReturnType<typeof setup>['route53']) =>
    route53.mock
      .commandCalls(ChangeResourceRecordSetsCommand)
      .map((c) => [c.args[0].input.HostedZoneId, c.args[0].input.ChangeBatch!.Changes]);

  it('UPSERTs each record with its values and the cutover TTL, journalling the old set first, and waits INSYNC', async () => {
    const { route53, t, clock } = setup();
    const result = await dnsSetTtl.apply(t.ctx, params());
    assert.deepEqual(batches(route53), [
      [ZONE_ID, [{ Action: 'UPSERT', ResourceRecordSet: { ...legacyApp, TTL: 60 } }]],
      [ZONE_ID, [{ Action: 'UPSERT', ResourceRecordSet: { ...legacyWebhooks, TTL: 60 } }]],
    ]);
    assert.deepEqual(t.changes, [
      { action: 'dns-ttl', name: APP, type: 'CNAME', previousTtl: 3600, previous: legacyApp },
      { action: 'dns-ttl', name: WEBHOOKS, type: 'A', previousTtl: 300, previous: legacyWebhooks },
    ]);
    assert.deepEqual(result.records, [
      { name: 'app.billing.example.com', type: 'CNAME', previousTtl: 3600, ttl: 60 },
      { name: 'webhooks.billing.example.com', type: 'A', previousTtl: 300, ttl: 60 },
    ]);
    assert.deepEqual(clock.sleeps, [5000, 5000], 'one PENDING poll per change');
  });

  it('a re-run (or a TTL already that low) changes nothing', async () => {
    const { route53, t } = setup();
    await dnsSetTtl.apply(t.ctx, params({ records: ['webhooks'] }));
    const again = t.retry();
    cleanup.push(() => again.close());
    assert.equal((await dnsSetTtl.probe(again.ctx, params({ records: ['webhooks'] }))).state, 'done');
    const result = await dnsSetTtl.apply(again.ctx, params({ records: ['webhooks'] }));
    assert.equal(batches(route53).length, 1);
    assert.deepEqual(
      result.records,
      [{ name: 'webhooks.billing.example.com', type: 'A', previousTtl: 300, ttl: 60 }],
      'the journal still knows the original TTL',
    );
  });

  it('dry run plans each UPSERT with its TTLs and reads only', async () => {
    const { route53, t } = setup();
    const probe = await dnsSetTtl.probe(t.ctx, params({ records: ['app'], ttl: 120 }));
    assert.deepEqual(probe.plan, [
      `route53:ChangeResourceRecordSets HostedZoneId=${ZONE_ID} UPSERT app.billing.example.com CNAME TTL 120 lb.legacy-dc.example.net (was TTL 3600)`,
      'wait until INSYNC',
    ]);
    assert.equal(batches(route53).length, 0);
  });

  it('undo puts the old TTL back on the values the record has then, so it never reverts a switch', async () => {
    const { route53, t } = setup();
    await dnsSetTtl.apply(t.ctx, params({ records: ['webhooks'] }));
    const switched = testContext({ outputs: awsOutputs(), now: t.ctx.now, sleep: t.ctx.sleep });
    cleanup.push(() => switched.close());
    await dnsSwitch.apply(switched.ctx, dnsSwitch.params.parse({ record: 'webhooks', verifyAuthoritative: false }));

    await dnsSetTtl.undo!(t.ctx, params({ records: ['webhooks'] }), t.changes, undefined);
    assert.deepEqual(
      route53.sets().find((s) => s.Name === WEBHOOKS),
      {
        Name: WEBHOOKS,
        Type: 'A',
        TTL: 300,
        ResourceRecords: [{ Value: '203.0.113.20' }, { Value: '203.0.113.21' }],
      },
    );
  });

  it('leaves an alias record alone (Route53 uses the target TTL) and blocks on a missing record', async () => {
    const aliasApp: RecordSet = {
      Name: APP,
      Type: 'CNAME',
      AliasTarget: { HostedZoneId: ALB_ZONE_ID, DNSName: 'x.elb.amazonaws.com.', EvaluateTargetHealth: false },
    };
    const { route53, t } = setup([aliasApp]);
    const probe = await dnsSetTtl.probe(t.ctx, params());
    assert.equal(probe.state, 'blocked');
    assert.deepEqual(
      probe.findings?.map((f) => [f.severity, f.object]),
      [
        ['info', 'record app.billing.example.com CNAME'],
        ['error', 'record webhooks.billing.example.com A'],
      ],
    );
    await assert.rejects(dnsSetTtl.apply(t.ctx, params()), (error: unknown) => {
      assert.ok(error instanceof StepError);
      assert.match(
        error.message,
        /^Unable to lower DNS TTLs: record webhooks\.billing\.example\.com A: not found in zone Z0123456789ABCDEFGHIJ$/,
      );
      assert.deepEqual(
        error.findings.filter((f) => f.severity === 'error').map((f) => f.object),
        ['record webhooks.billing.example.com A'],
      );
      return true;
    });
    assert.deepEqual(batches(route53), [], 'nothing changed');
  });
});
