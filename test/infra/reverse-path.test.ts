/**
 * The legacy server's way back in to RDS (reverse replication), under mocks with the real
 * Pulumi.<stack>.yaml: over NAT an internet-facing NLB on static IPs that admits only the
 * allow-list and reaches only RDS, which admits only that NLB; over a private link RDS admits the
 * source's addresses and nothing is built; disabled, nothing at all and no output. Every variant's
 * outputs parse with the contract, and no rule anywhere admits the whole internet.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { stackOutputsSchema } from '../../infra/contract.ts';
import { type Registered, runStack, type StackRun, stackConfig } from './harness.ts';

const INGRESS = 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule';
const EGRESS = 'aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule';
const SG = 'aws:ec2/securityGroup:SecurityGroup';
const LB = 'aws:lb/loadBalancer:LoadBalancer';
const TG = 'aws:lb/targetGroup:TargetGroup';
const LISTENER = 'aws:lb/listener:Listener';
const EIP = 'aws:ec2/eip:Eip';
const COMPONENT = 'cutover:infra:ReversePath';

const PRIVATE_CIDRS = ['10.9.0.0/16', '172.20.4.0/24'];
const LINKS = {
  'vpn-gateway': { vpnGatewayId: 'vgw-0123456789abcdef0' },
  'transit-gateway': { transitGatewayId: 'tgw-0123456789abcdef0' },
  peering: { peeringConnectionId: 'pcx-0123456789abcdef0' },
} as const;

const reverseChildren = (run: StackRun) => run.resources.filter((r) => r.name.startsWith('reverse-path'));
const parsesWithContract = (run: StackRun) => {
  const parsed = stackOutputsSchema.strict().safeParse(run.outputs);
  assert.ok(parsed.success, parsed.success ? '' : JSON.stringify(parsed.error.issues));
  return parsed.data!;
};
/** `<from> → <port>` of every rule on a group: a CIDR, or the referenced group's id. */
const rulesOf = (rules: Registered[], groupId: string) =>
  rules
    .filter((r) => r.inputs.securityGroupId === groupId)
    .map((r) => `${r.inputs.cidrIpv4 ?? r.inputs.referencedSecurityGroupId} ${r.inputs.ipProtocol} ${r.inputs.fromPort}-${r.inputs.toPort}`)
    .sort();

function assertNothingWideOpen(run: StackRun) {
  for (const rule of [...run.ofType(INGRESS), ...run.ofType(EGRESS)]) {
    assert.notEqual(rule.inputs.cidrIpv4, '0.0.0.0/0', `${rule.name} is open to the internet`);
    assert.equal(rule.inputs.cidrIpv6, undefined, `${rule.name} admits IPv6`);
  }
  for (const sg of run.ofType(SG)) {
    assert.deepEqual(sg.inputs.ingress ?? [], [], `${sg.name}: no inline ingress`);
    assert.deepEqual(sg.inputs.egress ?? [], [], `${sg.name}: no inline egress (the default allow-all is revoked)`);
  }
}

describe('reverse path over the internet (sourceNetwork via nat): an allow-listed NLB in front of RDS', () => {
  const runs: Record<'staging' | 'prod', StackRun> = {} as never;
  before(async () => {
    runs.staging = await runStack({ stack: 'staging' });
    runs.prod = await runStack({ stack: 'prod' });
  });

  for (const stack of ['staging', 'prod'] as const) {
    it(`${stack}: the real config enables it; the NLB's group admits only the source's public IPs on 5432 and sends only to RDS`, () => {
      const run = runs[stack];
      const configured = stackConfig(stack)['cutover:sourceNetwork'] as { cidrs: string[]; via: string };
      assert.equal(configured.via, 'nat');
      assert.deepEqual(stackConfig(stack)['cutover:reversePath'], { enabled: true });
      const nlbGroup = run.one(SG, 'reverse-path-nlb');
      assert.equal(nlbGroup.inputs.vpcId, run.outputs.network.vpcId);
      const dbGroup = run.outputs.database.securityGroupId;
      assert.deepEqual(
        rulesOf(run.ofType(INGRESS), nlbGroup.id),
        configured.cidrs.map((c) => `${c} tcp 5432-5432`),
      );
      assert.deepEqual(rulesOf(run.ofType(EGRESS), nlbGroup.id), [`${dbGroup} tcp 5432-5432`]);
      // RDS admits the NLB by its group (client IPs are not preserved), never the source's IPs directly.
      const dbIngress = rulesOf(run.ofType(INGRESS), dbGroup);
      assert.ok(dbIngress.includes(`${nlbGroup.id} tcp 5432-5432`));
      for (const cidr of configured.cidrs) assert.ok(!dbIngress.some((r) => r.startsWith(`${cidr} `)), `RDS admits ${cidr} directly`);
      assert.equal(run.one('aws:rds/instance:Instance', 'database-postgres').inputs.publiclyAccessible, false);
      assertNothingWideOpen(run);
    });

    it(`${stack}: internet-facing network LB, one static Elastic IP per public subnet, cross-zone, TCP passthrough to an ip target group`, () => {
      const run = runs[stack];
      const zones: string[] = run.outputs.network.availabilityZones;
      const lb = run.one(LB, 'reverse-path-nlb');
      assert.equal(lb.inputs.loadBalancerType, 'network');
      assert.equal(lb.inputs.internal, false);
      assert.deepEqual(lb.inputs.securityGroups, [run.one(SG, 'reverse-path-nlb').id]);
      assert.equal(lb.inputs.enableCrossZoneLoadBalancing, true);
      assert.equal(lb.inputs.enableDeletionProtection, false, 'disabling the path must be able to remove it');
      assert.equal(lb.inputs.subnets, undefined);
      const eips = run.ofType(EIP).filter((e) => e.name.startsWith('reverse-path-'));
      assert.deepEqual(
        eips.map((e) => e.name),
        zones.map((z) => `reverse-path-nlb-${z}`),
      );
      assert.deepEqual(
        lb.inputs.subnetMappings,
        zones.map((z, i) => ({ subnetId: `subnet-public-${z}`, allocationId: eips[i]!.id })),
      );

      const tg = run.one(TG, 'reverse-path-postgres');
      assert.equal(tg.inputs.targetType, 'ip');
      assert.equal(tg.inputs.protocol, 'TCP');
      assert.equal(tg.inputs.port, 5432);
      assert.equal(tg.inputs.vpcId, run.outputs.network.vpcId);
      assert.equal(tg.inputs.preserveClientIp, 'false', 'RDS admits the NLB by its security group');
      assert.equal(tg.inputs.healthCheck.protocol, 'TCP');
      assert.equal(tg.inputs.targets, undefined);
      assert.equal(run.ofType('aws:lb/targetGroupAttachment:TargetGroupAttachment').length, 0, "the CLI registers RDS's current address");

      const listener = run.one(LISTENER, 'reverse-path-postgres');
      assert.equal(
        listener.inputs.loadBalancerArn,
        `arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/net/nlb/0123456789abcdef`,
      );
      assert.equal(listener.inputs.protocol, 'TCP', 'PostgreSQL negotiates TLS inside its protocol: the NLB must not terminate it');
      assert.equal(listener.inputs.port, 5432);
      assert.equal(listener.inputs.certificateArn, undefined);
      assert.deepEqual(listener.inputs.defaultActions, [{ type: 'forward', targetGroupArn: run.outputs.reversePath.targetGroupArn }]);
    });

    it(`${stack}: created only once the internet gateway is (an internet-facing NLB needs it attached)`, () => {
      const run = runs[stack];
      const igw = run.one('aws:ec2/internetGateway:InternetGateway', 'network-igw');
      assert.ok(run.one(COMPONENT, 'reverse-path').dependencies.includes(igw.urn));
    });

    it(`${stack}: RDS refuses sessions without TLS (rds.force_ssl=1), which the passthrough relies on`, () => {
      const group = runs[stack].one('aws:rds/parameterGroup:ParameterGroup');
      const forceSsl = (group.inputs.parameters as { name: string; value: string }[]).find((p) => p.name === 'rds.force_ssl');
      assert.equal(forceSsl?.value, '1');
    });

    it(`${stack}: outputs reversePath: dial the first Elastic IP, verify the RDS endpoint name, register in the target group`, () => {
      const run = runs[stack];
      const outputs = parsesWithContract(run);
      assert.deepEqual(outputs.reversePath, {
        via: 'load-balancer',
        host: run.outputs.database.endpoint,
        hostaddr: '192.0.2.1',
        port: 5432,
        sslMode: 'verify-full',
        targetGroupArn: `arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/postgres/0123456789abcdef`,
      });
      assert.equal(outputs.network.natPublicIps.includes('192.0.2.1'), false);
    });

    it(`${stack}: every reverse-path child is named after the component, tagged, and parented to it`, () => {
      const run = runs[stack];
      const component = run.one(COMPONENT, 'reverse-path');
      for (const child of reverseChildren(run).filter((r) => r.type !== COMPONENT)) {
        assert.equal(child.parent, component.urn, `${child.name} parent`);
        assert.equal(child.aliases.length, 1, `${child.name} alias`);
        assert.equal(child.name, `reverse-path-${child.aliases[0]}`);
        assert.equal(child.inputs.tags?.project, 'cutover', `${child.name} tags`);
        assert.match(child.inputs.tags?.Name ?? '', new RegExp(`^cutover-${stack}-reverse-`), `${child.name} Name tag`);
      }
    });
  }

  it('an explicit allow-list replaces the source CIDRs on the NLB, and only there', async () => {
    const run = await runStack({ stack: 'prod', config: { reversePath: { enabled: true, allowedCidrs: ['192.0.2.64/28'] } } });
    const nlbGroup = run.one(SG, 'reverse-path-nlb');
    assert.deepEqual(rulesOf(run.ofType(INGRESS), nlbGroup.id), ['192.0.2.64/28 tcp 5432-5432']);
    assertNothingWideOpen(run);
    parsesWithContract(run);
  });
});

describe('reverse path over a private link: RDS admits the source over the same link', () => {
  for (const via of Object.keys(LINKS) as (keyof typeof LINKS)[]) {
    describe(via, () => {
      let run: StackRun;
      before(async () => {
        run = await runStack({ stack: 'prod', config: { sourceNetwork: { cidrs: PRIVATE_CIDRS, via, ...LINKS[via] } } });
      });

      it("the database group admits exactly the source's private CIDRs on 5432; no load balancer, no public address", () => {
        const dbGroup = run.outputs.database.securityGroupId;
        const reverse = run.ofType(INGRESS).filter((r) => r.name.startsWith('reverse-path-'));
        assert.deepEqual(
          rulesOf(reverse, dbGroup),
          PRIVATE_CIDRS.map((c) => `${c} tcp 5432-5432`),
        );
        assert.deepEqual(
          reverse.map((r) => r.name),
          ['reverse-path-postgres-from-10-9-0-0-16', 'reverse-path-postgres-from-172-20-4-0-24'],
        );
        assert.equal(run.ofType(LB).length, 0);
        assert.equal(run.ofType(TG).length, 0);
        assert.equal(run.ofType(LISTENER).length, 0);
        assert.equal(run.ofType(EIP).filter((e) => e.name.startsWith('reverse-path')).length, 0);
        assert.equal(run.ofType(SG).filter((e) => e.name.startsWith('reverse-path')).length, 0);
        assertNothingWideOpen(run);
      });

      it('outputs reversePath: the RDS endpoint itself, verify-full, no hostaddr or target group', () => {
        const outputs = parsesWithContract(run);
        assert.deepEqual(outputs.reversePath, {
          via: 'private-link',
          host: run.outputs.database.endpoint,
          port: 5432,
          sslMode: 'verify-full',
        });
      });
    });
  }
});

describe('reverse path disabled (after the cutover): nothing of it, and no output', () => {
  for (const [stack, sourceNetwork] of [
    ['staging', undefined],
    ['prod', { cidrs: PRIVATE_CIDRS, via: 'peering', ...LINKS.peering }],
  ] as const) {
    it(`${stack}${sourceNetwork ? ' over peering' : ''}: no reverse-path resource and no reversePath output`, async () => {
      const run = await runStack({ stack, config: { reversePath: { enabled: false }, ...(sourceNetwork ? { sourceNetwork } : {}) } });
      assert.deepEqual(
        reverseChildren(run).map((r) => r.name),
        [],
      );
      assert.equal(run.ofType(LB).length, 0);
      const dbGroup = run.outputs.database.securityGroupId;
      assert.ok(
        rulesOf(run.ofType(INGRESS), dbGroup).every((r) => !PRIVATE_CIDRS.some((c) => r.startsWith(c))),
        'RDS admits the source',
      );
      const outputs = parsesWithContract(run);
      assert.equal(outputs.reversePath, undefined);
    });
  }

  it('absent from config: disabled', async () => {
    const run = await runStack({ stack: 'staging', config: { reversePath: undefined } });
    assert.equal(reverseChildren(run).length, 0);
    assert.equal(run.outputs.reversePath, undefined);
  });
});

describe('reverse path config validation', () => {
  const cases: { label: string; config: Record<string, unknown>; error: RegExp }[] = [
    {
      label: 'no enabled flag',
      config: { reversePath: { allowedCidrs: ['192.0.2.64/28'] } },
      error: /cutover:reversePath: is required: true while the cutover needs the legacy server to reach RDS.* at enabled/,
    },
    {
      label: 'the whole internet in the allow-list',
      config: { reversePath: { enabled: true, allowedCidrs: ['0.0.0.0/0'] } },
      error: /cutover:reversePath: must be a narrow network \(\/16 or longer\).* at allowedCidrs\.0/,
    },
    {
      label: 'a wide range in the allow-list',
      config: { reversePath: { enabled: true, allowedCidrs: ['100.0.0.0/8'] } },
      error: /cutover:reversePath: must be a narrow network \(\/16 or longer\).* at allowedCidrs\.0/,
    },
    {
      label: 'an empty allow-list',
      config: { reversePath: { enabled: true, allowedCidrs: [] } },
      error: /cutover:reversePath: needs at least one CIDR \(leave it out to use sourceNetwork\.cidrs\) at allowedCidrs/,
    },
    {
      label: 'an allow-list entry inside the VPC',
      config: { reversePath: { enabled: true, allowedCidrs: ['10.40.3.0/24'] } },
      error: /cutover:reversePath: allowedCidrs: 10\.40\.3\.0\/24 overlaps vpcCidr 10\.40\.0\.0\/16/,
    },
    {
      label: 'a key it does not know',
      config: { reversePath: { enabled: true, cidrs: ['192.0.2.64/28'] } },
      error: /cutover:reversePath: .*cidrs/,
    },
    {
      label: 'a flag that is not a boolean',
      config: { reversePath: { enabled: 'yes' } },
      error: /cutover:reversePath: .* at enabled/,
    },
  ];
  for (const c of cases) {
    it(`rejects ${c.label}, naming the key`, async () => {
      await assert.rejects(runStack({ stack: 'staging', config: c.config }), (error: Error) => {
        assert.match(error.message, c.error);
        assert.match(error.message, /Fix it in Pulumi\.staging\.yaml/);
        return true;
      });
    });
  }
});
