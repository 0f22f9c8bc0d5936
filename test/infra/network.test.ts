/**
 * Network invariants for AZ lookups of 2, 3 and 6 zones and both stack configs: three subnets per
 * zone used, IPv6 on each, NAT per environment, blocks that only append as zones are added; the
 * database tier's routes are in source-network.test.ts.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { runStack, type StackRun } from './harness.ts';

const SUBNET = 'aws:ec2/subnet:Subnet';
const NAT = 'aws:ec2/natGateway:NatGateway';

const scenarios = [
  { label: 'staging, region with 2 zones', stack: 'staging', zones: 2, expectedAzs: 2, nats: 1 },
  { label: 'staging, region with 3 zones', stack: 'staging', zones: 3, expectedAzs: 3, nats: 1 },
  { label: 'staging, region with 6 zones (default count 3)', stack: 'staging', zones: 6, expectedAzs: 3, nats: 1 },
  { label: 'prod, region with 3 zones', stack: 'prod', zones: 3, expectedAzs: 3, nats: 3 },
  {
    label: 'prod, region with 6 zones, availabilityZoneCount 6',
    stack: 'prod',
    zones: 6,
    expectedAzs: 6,
    nats: 6,
    config: { availabilityZoneCount: 6 },
  },
] as const;

describe('network', () => {
  const runs = new Map<string, StackRun>();
  before(async () => {
    for (const s of scenarios)
      runs.set(s.label, await runStack({ stack: s.stack, zones: s.zones, config: 'config' in s ? s.config : undefined }));
  });

  for (const s of scenarios) {
    describe(s.label, () => {
      it(`has ${s.expectedAzs} zones x 3 subnets, each in its own tier and zone`, () => {
        const run = runs.get(s.label)!;
        const subnets = run.ofType(SUBNET);
        assert.equal(subnets.length, s.expectedAzs * 3);
        assert.equal(run.outputs.network.availabilityZones.length, s.expectedAzs);
        for (const tier of ['public', 'private', 'database']) {
          const zones = subnets.filter((x) => x.inputs.tags.tier === tier).map((x) => x.inputs.availabilityZone);
          assert.deepEqual([...zones].sort(), [...run.outputs.network.availabilityZones].sort(), `${tier} subnets cover every zone once`);
        }
        assert.equal(run.outputs.network.publicSubnetIds.length, s.expectedAzs);
        assert.equal(run.outputs.network.databaseSubnetIds.length, s.expectedAzs);
      });

      it('gives every subnet a distinct IPv6 /64 inside the VPC block and addresses on launch', () => {
        const run = runs.get(s.label)!;
        const subnets = run.ofType(SUBNET);
        const v6 = subnets.map((x) => x.inputs.ipv6CidrBlock as string);
        for (const block of v6) assert.match(block, /^2a05:d018:abc:de[0-9a-f]{2}::\/64$/);
        assert.equal(new Set(v6).size, v6.length);
        assert.ok(subnets.every((x) => x.inputs.assignIpv6AddressOnCreation === true));
        assert.equal(run.one('aws:ec2/vpc:Vpc').inputs.assignGeneratedIpv6CidrBlock, true);
        assert.equal(new Set(subnets.map((x) => x.inputs.cidrBlock)).size, subnets.length, 'distinct IPv4 blocks');
      });

      it(`has ${s.nats} NAT gateway(s), each private route table defaulting through one, IPv6 through the egress-only gateway`, () => {
        const run = runs.get(s.label)!;
        assert.equal(run.ofType(NAT).length, s.nats);
        const privateTables = run.ofType('aws:ec2/routeTable:RouteTable').filter((t) => t.name.startsWith('network-private-'));
        assert.equal(privateTables.length, s.expectedAzs);
        const natIds = new Set(run.ofType(NAT).map((n) => n.id));
        for (const table of privateTables) {
          const routes = table.inputs.routes as Record<string, string>[];
          assert.ok(
            natIds.has(routes.find((r) => r.cidrBlock === '0.0.0.0/0')!.natGatewayId!),
            `${table.name} IPv4 default route via a NAT`,
          );
          assert.equal(routes.find((r) => r.ipv6CidrBlock === '::/0')?.egressOnlyGatewayId, 'eigw-id');
        }
        assert.equal(run.ofType('aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway').length, 1);
      });
    });
  }

  it("keeps the first zones' subnet blocks when more zones are added (append, never re-lay)", () => {
    const three = runs.get('prod, region with 3 zones')!.ofType(SUBNET);
    const six = runs.get('prod, region with 6 zones, availabilityZoneCount 6')!.ofType(SUBNET);
    for (const subnet of three) {
      const same = six.find((x) => x.name === subnet.name);
      assert.ok(same, `${subnet.name} still exists with 6 zones`);
      assert.equal(same.inputs.cidrBlock, subnet.inputs.cidrBlock);
      assert.equal(same.inputs.ipv6CidrBlock, subnet.inputs.ipv6CidrBlock);
    }
  });

  it('tags subnets for public and internal load balancers', () => {
    const subnets = runs.get('prod, region with 3 zones')!.ofType(SUBNET);
    for (const subnet of subnets) {
      const tags = subnet.inputs.tags;
      assert.equal(tags['kubernetes.io/role/elb'], tags.tier === 'public' ? '1' : undefined, subnet.name);
      assert.equal(tags['kubernetes.io/role/internal-elb'], tags.tier === 'private' ? '1' : undefined, subnet.name);
    }
  });

  it('logs VPC flows in prod only and routes S3 through a gateway endpoint in both', () => {
    const staging = runs.get('staging, region with 3 zones')!;
    const prod = runs.get('prod, region with 3 zones')!;
    assert.equal(staging.ofType('aws:ec2/flowLog:FlowLog').length, 0);
    const flowLog = prod.one('aws:ec2/flowLog:FlowLog');
    assert.equal(flowLog.inputs.trafficType, 'ALL');
    for (const run of [staging, prod]) {
      const endpoint = run.one('aws:ec2/vpcEndpoint:VpcEndpoint');
      assert.equal(endpoint.inputs.serviceName, 'com.amazonaws.eu-west-1.s3');
      assert.equal(endpoint.inputs.vpcEndpointType, 'Gateway');
      assert.equal(
        endpoint.inputs.routeTableIds.length,
        run.outputs.network.availabilityZones.length * 2,
        'every private and every database table',
      );
    }
  });

  it('gives the database tier no default route, only the legacy source (source-network.test.ts)', () => {
    for (const run of runs.values()) {
      const tables = run.ofType('aws:ec2/routeTable:RouteTable').filter((t) => t.name.startsWith('network-database-'));
      assert.equal(tables.length, run.outputs.network.availabilityZones.length);
      for (const table of tables) {
        for (const route of table.inputs.routes) {
          assert.ok(route.cidrBlock && !route.ipv6CidrBlock && route.cidrBlock !== '0.0.0.0/0', `${table.name}: ${JSON.stringify(route)}`);
        }
      }
    }
  });
});
