import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { ChangeResourceRecordSetsCommand, GetChangeCommand, GetHostedZoneCommand } from '@aws-sdk/client-route-53';
import { AUTHORITATIVE_DNS_RESOURCE, type DnsLookups } from '../../migrate/aws/authoritative.ts';
import type { RecordSet } from '../../migrate/aws/record-sets.ts';
import { ResourcePool } from '../../migrate/core/context.ts';
import { StepError } from '../../migrate/core/step.ts';
import { type DnsServer, startDnsServer } from '../../migrate/local/dns-standin.ts';
import { dnsSwitch } from '../../migrate/steps/aws/dns-switch.ts';
import { testContext } from '../support/context.ts';
import { ALB_ZONE_ID, awsOutputs, fakeClock, ZONE_ID } from './fixtures.ts';
import { fakeRoute53 } from './route53-fake.ts';

const APP = 'app.billing.example.com.';
const WEBHOOKS = 'webhooks.billing.example.com.';
const ALB = 'k8s-app-ingress-0123456789.eu-west-1.elb.amazonaws.com';
const ALB_ADDRESSES = ['203.0.113.50', '203.0.113.51'];
const NAME_SERVERS = ['ns-1201.awsdns-22.org', 'ns-77.awsdns-09.com'];

const legacyApp: RecordSet = { Name: APP, Type: 'CNAME', TTL: 3600, ResourceRecords: [{ Value: 'lb.legacy-dc.example.net' }] };
const legacyWebhooks: RecordSet = { Name: WEBHOOKS, Type: 'A', TTL: 300, ResourceRecords: [{ Value: '198.51.100.10' }] };
const neighbours: RecordSet[] = [
  { Name: 'billing.example.com.', Type: 'MX', TTL: 300, ResourceRecords: [{ Value: '10 mx.example.net' }] },
  { Name: 'www.billing.example.com.', Type: 'CNAME', TTL: 300, ResourceRecords: [{ Value: 'app.billing.example.com' }] },
];

describe('dns.switch', () => {
  let dns: DnsServer;
  before(async () => {
    dns = await startDnsServer();
  });
  after(() => dns.close());
  let cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const close of cleanup) await close();
    cleanup = [];
  });

  function setup(
    options: { sets?: RecordSet[]; linkDns?: boolean; pageSize?: number; getChangesUntilInsync?: number; privateZone?: boolean } = {},
  ) {
    const route53 = fakeRoute53({
      sets: options.sets ?? [legacyApp, legacyWebhooks, ...neighbours],
      nameServers: NAME_SERVERS,
      aliasAddresses: { [ALB]: ALB_ADDRESSES },
      ...(options.linkDns === false ? {} : { dns }),
      ...(options.pageSize ? { pageSize: options.pageSize } : {}),
      ...(options.getChangesUntilInsync !== undefined ? { getChangesUntilInsync: options.getChangesUntilInsync } : {}),
    });
    const asked: string[][] = [];
    const lookups: DnsLookups = {
      nameServerAddresses: async (names) => {
        asked.push([...names]);
        return names.map(() => dns.address);
      },
      resolveRecursive: async (name) => (name.replace(/\.$/, '') === ALB ? ALB_ADDRESSES : []),
    };
    const resources = new ResourcePool();
    void resources.get(AUTHORITATIVE_DNS_RESOURCE, () => lookups);
    const clock = fakeClock();
    const outputs = awsOutputs();
    if (options.privateZone) outputs.dns.privateZone = true;
    const t = testContext({ outputs, now: clock.now, sleep: clock.sleep, resources });
    cleanup.push(
      () => t.close(),
      () => route53.mock.restore(),
    );
    dns.queries.length = 0;
    return { route53, t, clock, asked };
  }
  const params = (extra: object) => dnsSwitch.params.parse(extra);

  it('switches a CNAME to an alias A in one DELETE+CREATE batch, waits PENDING → INSYNC, confirms with the authoritative servers', async () => {
    const { route53, t, clock, asked } = setup();
    const result = await dnsSwitch.apply(t.ctx, params({ record: 'app' }));

    assert.deepEqual(
      route53.mock.commandCalls(ChangeResourceRecordSetsCommand).map((c) => c.args[0].input),
      [
        {
          HostedZoneId: ZONE_ID,
          ChangeBatch: {
            Comment: 'migrate run test-run step step',
            Changes: [
              { Action: 'DELETE', ResourceRecordSet: legacyApp },
              {
                Action: 'CREATE',
                ResourceRecordSet: {
                  Name: APP,
                  Type: 'A',
                  AliasTarget: { HostedZoneId: ALB_ZONE_ID, DNSName: `${ALB}.`, EvaluateTargetHealth: false },
                },
              },
            ],
          },
        },
      ],
    );
    assert.deepEqual(t.changes, [
      { action: 'dns-change', hostedZoneId: ZONE_ID, name: APP, previous: { touched: ['A', 'CNAME'], sets: [legacyApp] } },
    ]);
    assert.deepEqual(result, { name: 'app.billing.example.com', type: 'A', to: 'cutover', changeId: '/change/C01ABCDEFGHIJ' });

    // PENDING, PENDING, INSYNC: two 5 s waits on the fake clock, each reported with the deadline.
    assert.equal(route53.mock.commandCalls(GetChangeCommand).length, 3);
    assert.deepEqual(clock.sleeps, [5000, 5000]);
    const pending = t.progress.filter((p) => p.label.startsWith('Route53 change C01ABCDEFGHIJ'));
    assert.deepEqual(
      pending.map((p) => p.detail),
      ['status PENDING', 'status PENDING'],
    );
    assert.equal(pending[0]!.deadline, clock.now() - clock.elapsedMs() + 15 * 60_000);

    // Both delegated name servers were asked, over UDP, for the A record.
    assert.deepEqual(asked, [NAME_SERVERS]);
    assert.deepEqual(dns.queries, [
      { name: 'app.billing.example.com', type: 1 },
      { name: 'app.billing.example.com', type: 1 },
    ]);
    assert.ok(t.lines.some((l) => l === 'app.billing.example.com: all 2 authoritative servers give the new answer'));
  });

  it('fails at the deadline when the authoritative servers keep the legacy answer, naming servers and answers', async () => {
    const { t, clock } = setup({ linkDns: false });
    dns.set('app.billing.example.com', 'CNAME', ['lb.legacy-dc.example.net']);
    await assert.rejects(dnsSwitch.apply(t.ctx, params({ record: 'app', deadlineMinutes: 2 })), (error: unknown) => {
      assert.ok(error instanceof StepError);
      assert.match(
        error.message,
        /^Unable to point app\.billing\.example\.com at A alias k8s-app-ingress.*: the authoritative name servers of app\.billing\.example\.com do not give the new A answer \(127\.0\.0\.1:\d+: no records; 127\.0\.0\.1:\d+: no records\)/,
      );
      assert.equal(error.findings[0]?.object, 'record app.billing.example.com A');
      assert.match(error.findings[0]!.fix!, /dig @ns-1201\.awsdns-22\.org app\.billing\.example\.com A/);
      return true;
    });
    assert.equal(clock.elapsedMs(), 2 * 60_000);
  });

  it('A → A is an UPSERT with the lowered TTL; a re-run changes nothing', async () => {
    const { route53, t } = setup({ getChangesUntilInsync: 0 });
    await dnsSwitch.apply(t.ctx, params({ record: 'webhooks' }));
    assert.deepEqual(route53.mock.commandCalls(ChangeResourceRecordSetsCommand)[0]!.args[0].input.ChangeBatch!.Changes, [
      {
        Action: 'UPSERT',
        ResourceRecordSet: { Name: WEBHOOKS, Type: 'A', TTL: 60, ResourceRecords: [{ Value: '203.0.113.20' }, { Value: '203.0.113.21' }] },
      },
    ]);

    const again = t.retry();
    cleanup.push(() => again.close());
    assert.equal((await dnsSwitch.probe(again.ctx, params({ record: 'webhooks' }))).state, 'done');
    const result = await dnsSwitch.apply(again.ctx, params({ record: 'webhooks' }));
    assert.equal(result.changeId, null);
    assert.equal(route53.mock.commandCalls(ChangeResourceRecordSetsCommand).length, 1, 'no second change');
    assert.deepEqual(again.changes, []);
  });

  it('undo restores the recorded set with the same batch rules (DELETE alias A + CREATE CNAME)', async () => {
    const { route53, t } = setup({ getChangesUntilInsync: 0 });
    await dnsSwitch.apply(t.ctx, params({ record: 'app' }));
    await dnsSwitch.undo!(t.ctx, params({ record: 'app' }), t.changes, undefined);
    assert.deepEqual(route53.mock.commandCalls(ChangeResourceRecordSetsCommand)[1]!.args[0].input.ChangeBatch!.Changes, [
      {
        Action: 'DELETE',
        ResourceRecordSet: {
          Name: APP,
          Type: 'A',
          AliasTarget: { HostedZoneId: ALB_ZONE_ID, DNSName: `${ALB}.`, EvaluateTargetHealth: false },
        },
      },
      { Action: 'CREATE', ResourceRecordSet: legacyApp },
    ]);
    assert.deepEqual(
      route53.sets().filter((s) => s.Name === APP),
      [legacyApp],
    );
    await dnsSwitch.undo!(t.ctx, params({ record: 'app' }), t.changes, undefined);
    assert.equal(route53.mock.commandCalls(ChangeResourceRecordSetsCommand).length, 2, 'undo is idempotent');
  });

  it('follows ListResourceRecordSets pages: switching back to a CNAME deletes both the A and AAAA aliases', async () => {
    const alias = (Type: string): RecordSet => ({
      Name: APP,
      Type,
      AliasTarget: { HostedZoneId: ALB_ZONE_ID, DNSName: `dualstack.${ALB}.`, EvaluateTargetHealth: false },
    });
    const { route53, t } = setup({
      sets: [alias('A'), alias('AAAA'), legacyWebhooks, ...neighbours],
      pageSize: 1,
      getChangesUntilInsync: 0,
    });
    await dnsSwitch.apply(t.ctx, params({ record: 'app', to: 'legacy', verifyAuthoritative: false }));
    assert.deepEqual(route53.mock.commandCalls(ChangeResourceRecordSetsCommand)[0]!.args[0].input.ChangeBatch!.Changes, [
      { Action: 'DELETE', ResourceRecordSet: alias('A') },
      { Action: 'DELETE', ResourceRecordSet: alias('AAAA') },
      { Action: 'CREATE', ResourceRecordSet: { ...legacyApp, TTL: 60 } },
    ]);
  });

  it('skips the authoritative check for a private zone', async () => {
    const { route53, t } = setup({ privateZone: true, getChangesUntilInsync: 0 });
    await dnsSwitch.apply(t.ctx, params({ record: 'webhooks' }));
    assert.equal(route53.mock.commandCalls(GetHostedZoneCommand).length, 0);
    assert.equal(dns.queries.length, 0);
  });

  it('dry run reads only and plans the batch', async () => {
    const { route53, t } = setup();
    const probe = await dnsSwitch.probe(t.ctx, params({ record: 'app' }));
    assert.equal(probe.state, 'ready');
    assert.deepEqual(probe.plan, [
      `route53:ChangeResourceRecordSets HostedZoneId=${ZONE_ID} in one batch:`,
      '  DELETE app.billing.example.com CNAME TTL 3600 lb.legacy-dc.example.net',
      `  CREATE app.billing.example.com A alias ${ALB} (zone ${ALB_ZONE_ID}, evaluate health false)`,
      'wait until the change is INSYNC (up to 15 minutes)',
      "confirm the new answer with the zone's authoritative name servers",
    ]);
    assert.deepEqual([...new Set(route53.mock.calls().map((c) => c.args[0].constructor.name))], ['ListResourceRecordSetsCommand']);
  });

  it('journals the old set before the change, so a denied change still leaves undo its record', async () => {
    const { route53, t } = setup();
    route53.mock.on(ChangeResourceRecordSetsCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDenied' }));
    await assert.rejects(
      dnsSwitch.apply(t.ctx, params({ record: 'app' })),
      /permission denied: route53:ChangeResourceRecordSets on arn:aws:route53:::hostedzone\/Z0123456789ABCDEFGHIJ/,
    );
    assert.equal(t.changes.length, 1);
  });

  it('fails when the change never reaches INSYNC, naming the change', async () => {
    const { t, clock } = setup({ getChangesUntilInsync: Number.MAX_SAFE_INTEGER });
    await assert.rejects(
      dnsSwitch.apply(t.ctx, params({ record: 'webhooks', deadlineMinutes: 1 })),
      /Route53 change \/change\/C01ABCDEFGHIJ for webhooks\.billing\.example\.com not INSYNC by the deadline \(status PENDING\)/,
    );
    assert.equal(clock.elapsedMs(), 60_000);
  });
});
