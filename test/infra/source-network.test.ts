/**
 * RDS is the logical-replication subscriber: its workers connect out to the legacy source. For every
 * `sourceNetwork.via` and for 2, 3 and 6 zones: one egress rule per source CIDR on exactly that port
 * and no other egress; routes for exactly those CIDRs from every database subnet's table (through its
 * zone's NAT, the single NAT, the VGW, the TGW or the peering); no other route out of the database
 * tier, and nothing that lets the source (or anyone) in.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { stackOutputsSchema } from '../../infra/contract.ts';
import { mockId, runStack, type StackRun, stackConfig } from './harness.ts';

const EGRESS = 'aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule';
const INGRESS = 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule';
const TABLE = 'aws:ec2/routeTable:RouteTable';
const ASSOCIATION = 'aws:ec2/routeTableAssociation:RouteTableAssociation';
const VGW_ATTACHMENT = 'aws:ec2/vpnGatewayAttachment:VpnGatewayAttachment';
const TGW_ATTACHMENT = 'aws:ec2transitgateway/vpcAttachment:VpcAttachment';

const CIDRS = ['198.51.100.30/32', '192.0.2.0/28'];
const PORT = 6543;
const IDS = {
  'vpn-gateway': { vpnGatewayId: 'vgw-0123456789abcdef0' },
  'transit-gateway': { transitGatewayId: 'tgw-0123456789abcdef0' },
  peering: { peeringConnectionId: 'pcx-0123456789abcdef0' },
  nat: {},
} as const;
type Via = keyof typeof IDS;

interface Scenario {
  label: string;
  stack: 'staging' | 'prod';
  via: Via;
  zones: number;
  perAzNat: boolean;
}
const scenarios: Scenario[] = [];
for (const zones of [2, 3, 6]) {
  scenarios.push({ label: `nat, single NAT (staging), ${zones} zones`, stack: 'staging', via: 'nat', zones, perAzNat: false });
  scenarios.push({ label: `nat, NAT per zone (prod), ${zones} zones`, stack: 'prod', via: 'nat', zones, perAzNat: true });
  for (const via of ['vpn-gateway', 'transit-gateway', 'peering'] as const)
    scenarios.push({ label: `${via}, ${zones} zones`, stack: 'prod', via, zones, perAzNat: true });
}

/** What a database table's route to the source must point at, for the table of zone index i. */
function expectedTarget(s: Scenario, zones: string[], i: number): Record<string, string> {
  switch (s.via) {
    case 'nat':
      return { natGatewayId: mockId('aws:ec2/natGateway:NatGateway', `nat-${zones[s.perAzNat ? i : 0]}`) };
    case 'vpn-gateway':
      return { gatewayId: IDS['vpn-gateway'].vpnGatewayId };
    case 'transit-gateway':
      return { transitGatewayId: IDS['transit-gateway'].transitGatewayId };
    case 'peering':
      return { vpcPeeringConnectionId: IDS.peering.peeringConnectionId };
  }
}

describe('RDS reaches the legacy source, and nothing else', () => {
  const runs = new Map<string, StackRun>();
  before(async () => {
    for (const s of scenarios) {
      runs.set(
        s.label,
        await runStack({
          stack: s.stack,
          zones: s.zones,
          config: {
            availabilityZoneCount: s.zones,
            sourceNetwork: { cidrs: CIDRS, port: PORT, via: s.via, ...IDS[s.via] },
            // The forward path alone; the way back in is test/infra/reverse-path.test.ts's.
            reversePath: { enabled: false },
          },
        }),
      );
    }
  });

  for (const s of scenarios) {
    describe(s.label, () => {
      it('the database security group may send only TCP to the source CIDRs on the source port', () => {
        const run = runs.get(s.label)!;
        const sgId = run.outputs.database.securityGroupId;
        const sg = run.one('aws:ec2/securityGroup:SecurityGroup', 'database-postgres');
        assert.deepEqual(sg.inputs.egress ?? [], [], 'no inline egress (the provider then revokes the default allow-all)');
        const egress = run.ofType(EGRESS);
        assert.equal(egress.length, CIDRS.length, 'one egress rule per source CIDR, none anywhere else');
        for (const rule of egress) {
          assert.equal(rule.inputs.securityGroupId, sgId);
          assert.equal(rule.inputs.ipProtocol, 'tcp');
          assert.equal(rule.inputs.fromPort, PORT);
          assert.equal(rule.inputs.toPort, PORT);
          assert.equal(rule.inputs.cidrIpv6, undefined);
          assert.equal(rule.inputs.referencedSecurityGroupId, undefined);
          assert.equal(rule.inputs.prefixListId, undefined);
        }
        assert.deepEqual(egress.map((r) => r.inputs.cidrIpv4).sort(), [...CIDRS].sort());
        assert.equal(run.ofType('aws:ec2/securityGroupRule:SecurityGroupRule').length, 0, 'no legacy rule type bypassing the check');
      });

      it('the reverse stays shut: no ingress rule admits the source, ingress is still 5432 only', () => {
        const run = runs.get(s.label)!;
        for (const rule of run.ofType(INGRESS)) {
          assert.ok(!CIDRS.includes(rule.inputs.cidrIpv4), `${rule.name} admits the source`);
          assert.equal(rule.inputs.fromPort, 5432);
          assert.equal(rule.inputs.toPort, 5432);
        }
        assert.equal(run.one('aws:rds/instance:Instance', 'database-postgres').inputs.publiclyAccessible, false);
      });

      it('every database subnet has its own table holding exactly one route per source CIDR, to the right target', () => {
        const run = runs.get(s.label)!;
        const zones: string[] = run.outputs.network.availabilityZones;
        assert.equal(zones.length, s.zones);
        const tables = run.ofType(TABLE).filter((t) => t.name.startsWith('network-database'));
        assert.deepEqual(tables.map((t) => t.name).sort(), zones.map((z) => `network-database-${z}`).sort());
        zones.forEach((zone, i) => {
          const table = run.one(TABLE, `network-database-${zone}`);
          assert.deepEqual(
            table.inputs.routes,
            CIDRS.map((cidrBlock) => ({ cidrBlock, ...expectedTarget(s, zones, i) })),
            `${table.name} routes`,
          );
          assert.equal(table.inputs.propagatingVgws, undefined, 'no propagated routes');
          const association = run.one(ASSOCIATION, `network-database-${zone}`);
          assert.equal(association.inputs.subnetId, mockId('aws:ec2/subnet:Subnet', `database-${zone}`));
          assert.equal(association.inputs.routeTableId, mockId(TABLE, `database-${zone}`));
        });
        assert.deepEqual(
          new Set(run.outputs.network.databaseSubnetIds),
          new Set(zones.map((z) => mockId('aws:ec2/subnet:Subnet', `database-${z}`))),
        );
      });

      it('no other table gains a path to the source, and nothing adds routes outside the tables', () => {
        const run = runs.get(s.label)!;
        for (const table of run.ofType(TABLE).filter((t) => !t.name.startsWith('network-database'))) {
          for (const route of table.inputs.routes ?? []) {
            assert.ok(!CIDRS.includes(route.cidrBlock), `${table.name} routes the source`);
            assert.equal(route.transitGatewayId ?? route.vpcPeeringConnectionId, undefined, `${table.name} uses a private link`);
            assert.ok(route.gatewayId === undefined || route.gatewayId === 'igw-id', `${table.name} routes through ${route.gatewayId}`);
          }
          assert.equal(table.inputs.propagatingVgws, undefined);
        }
        assert.equal(run.ofType('aws:ec2/route:Route').length, 0);
        assert.equal(run.ofType('aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation').length, 0);
      });

      it('attaches the VGW or the TGW to this VPC when it is the path, and creates nothing for nat or peering', () => {
        const run = runs.get(s.label)!;
        const vgw = run.ofType(VGW_ATTACHMENT);
        const tgw = run.ofType(TGW_ATTACHMENT);
        assert.equal(vgw.length, s.via === 'vpn-gateway' ? 1 : 0);
        assert.equal(tgw.length, s.via === 'transit-gateway' ? 1 : 0);
        if (s.via === 'vpn-gateway')
          assert.deepEqual({ ...vgw[0]!.inputs }, { vpcId: run.outputs.network.vpcId, vpnGatewayId: IDS['vpn-gateway'].vpnGatewayId });
        if (s.via === 'transit-gateway') {
          assert.equal(tgw[0]!.inputs.vpcId, run.outputs.network.vpcId);
          assert.equal(tgw[0]!.inputs.transitGatewayId, IDS['transit-gateway'].transitGatewayId);
          assert.deepEqual(
            tgw[0]!.inputs.subnetIds,
            run.outputs.network.databaseSubnetIds,
            'one ENI per database subnet, in the tier it serves',
          );
        }
        assert.equal(run.ofType('aws:ec2/vpcPeeringConnection:VpcPeeringConnection').length, 0);
        assert.equal(run.ofType('aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter').length, 0);
      });

      it(`exports ${s.via === 'nat' ? "the NAT gateways' Elastic IPs" : 'no NAT IPs'} as network.natPublicIps, in the contract`, () => {
        const run = runs.get(s.label)!;
        const eips = run.ofType('aws:ec2/eip:Eip');
        assert.equal(eips.length, s.perAzNat ? s.zones : 1);
        const expected = s.via === 'nat' ? eips.map((e) => `203.0.113.${'abcdefgh'.indexOf(e.name.slice(-1)) + 1}`) : [];
        assert.deepEqual(run.outputs.network.natPublicIps, expected);
        const parsed = stackOutputsSchema.strict().safeParse(run.outputs);
        assert.ok(parsed.success, parsed.success ? '' : JSON.stringify(parsed.error.issues));
      });
    });
  }

  it('the real stack configs: a route and an egress rule per configured CIDR, the NAT IPs exported', async () => {
    for (const [stack, nats] of [
      ['staging', 1],
      ['prod', 3],
    ] as const) {
      const run = await runStack({ stack });
      const configured = stackConfig(stack)['cutover:sourceNetwork'] as { cidrs: string[]; port: number };
      const fromDatabase = run.ofType(EGRESS).filter((r) => r.inputs.securityGroupId === run.outputs.database.securityGroupId);
      assert.deepEqual(fromDatabase.map((r) => r.inputs.cidrIpv4).sort(), [...configured.cidrs].sort());
      assert.ok(fromDatabase.every((r) => r.inputs.fromPort === configured.port && r.inputs.toPort === configured.port));
      for (const table of run.ofType(TABLE).filter((t) => t.name.startsWith('network-database-'))) {
        assert.deepEqual(
          table.inputs.routes.map((r: { cidrBlock: string }) => r.cidrBlock),
          configured.cidrs,
        );
      }
      assert.equal(run.outputs.network.natPublicIps.length, nats);
    }
  });
});
