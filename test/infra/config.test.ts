/** A bad stack config value stops the program before any resource, with the key in the message. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runStack } from './harness.ts';

const cases: { label: string; stack: 'staging' | 'prod'; config: Record<string, unknown>; zones?: number; error: RegExp }[] = [
  {
    label: 'AZ count 0',
    stack: 'staging',
    config: { availabilityZoneCount: 0 },
    error: /cutover:availabilityZoneCount: must be at least 1/,
  },
  {
    label: 'more AZs than the region has',
    stack: 'prod',
    zones: 2,
    config: {},
    error: /cutover:availabilityZoneCount: is 3 but the region has only 2/,
  },
  {
    label: 'unknown environment size',
    stack: 'staging',
    config: { size: 'huge' },
    error: /cutover:size: must be one of small, medium, large \(got "huge"\)/,
  },
  { label: 'missing environment', stack: 'staging', config: { environment: undefined }, error: /cutover:environment: is required/ },
  {
    label: 'prod with short backups',
    stack: 'prod',
    config: { dbBackupRetentionDays: 7 },
    error: /cutover:dbBackupRetentionDays: is 7; production stacks keep at least 14 days/,
  },
  {
    label: 'cluster API open to the internet',
    stack: 'staging',
    config: { clusterPublicAccessCidrs: ['0.0.0.0/0'] },
    error: /cutover:clusterPublicAccessCidrs: must not contain 0.0.0.0\/0/,
  },
  {
    label: 'a VPC block with host bits',
    stack: 'staging',
    config: { vpcCidr: '10.40.0.1/16' },
    error: /cutover:vpcCidr: must be an IPv4 CIDR block/,
  },
  {
    label: 'a record outside the zone',
    stack: 'staging',
    config: {
      dns: {
        zoneName: 'example.org',
        app: { name: 'app.example.com', type: 'A', legacy: { values: ['1.2.3.4'] }, cutover: { values: ['5.6.7.8'] } },
        webhooks: { name: 'hooks.example.org', type: 'A', legacy: { values: ['1.2.3.4'] }, cutover: { values: ['5.6.7.8'] } },
      },
    },
    error: /cutover:dns: app.name app.example.com is not inside zone example.org/,
  },
  {
    label: 'a spot "mix" of one type',
    stack: 'staging',
    config: { spotInstanceTypes: ['m5.large'] },
    error: /cutover:spotInstanceTypes: needs at least 2 types/,
  },
  {
    label: 'fewer D-day replicas than managed ones',
    stack: 'staging',
    config: { dbReplicaCount: 2, dbCutoverReplicaCount: 1 },
    error: /cutover:dbCutoverReplicaCount: \(1\) is below dbReplicaCount \(2\)/,
  },
  {
    label: 'a number that is not one',
    stack: 'staging',
    config: { dbAllocatedStorageGb: 'lots' },
    error: /cutover:dbAllocatedStorageGb: 'lots' is not a valid value/,
  },
  {
    label: 'a list that is not one',
    stack: 'staging',
    config: { dbMigrationCidrs: '10.200.0.0/24' },
    error: /cutover:dbMigrationCidrs: '10.200.0.0\/24' is not a valid list\/object/,
  },
  {
    label: 'an object that is not one',
    stack: 'staging',
    config: { dns: 'staging.example.com' },
    error: /cutover:dns: 'staging.example.com' is not a valid list\/object/,
  },
  {
    label: 'no sourceNetwork',
    stack: 'staging',
    config: { sourceNetwork: undefined },
    error: /cutover:sourceNetwork: is required: how RDS reaches the legacy source/,
  },
  {
    label: 'an unknown source path',
    stack: 'prod',
    config: { sourceNetwork: { cidrs: ['198.51.100.30/32'], via: 'internet' } },
    error: /cutover:sourceNetwork: via must be one of nat, vpn-gateway, transit-gateway, peering/,
  },
  {
    label: 'a VPN path without the VGW id',
    stack: 'prod',
    config: { sourceNetwork: { cidrs: ['10.9.0.0/16'], via: 'vpn-gateway' } },
    error: /cutover:sourceNetwork: is required with this via: the virtual private gateway id \(vgw-\.\.\.\) at vpnGatewayId/,
  },
  {
    label: 'a TGW id that is not one',
    stack: 'prod',
    config: { sourceNetwork: { cidrs: ['10.9.0.0/16'], via: 'transit-gateway', transitGatewayId: 'vgw-0123456789abcdef0' } },
    error: /cutover:sourceNetwork: must be a transit gateway id like tgw-0123456789abcdef0 at transitGatewayId/,
  },
  {
    label: 'a peering path without its connection id',
    stack: 'prod',
    config: { sourceNetwork: { cidrs: ['10.9.0.0/16'], via: 'peering' } },
    error: /cutover:sourceNetwork: is required with this via: the VPC peering connection id \(pcx-\.\.\.\) at peeringConnectionId/,
  },
  {
    label: 'an id the path does not use',
    stack: 'prod',
    config: { sourceNetwork: { cidrs: ['198.51.100.30/32'], via: 'nat', vpnGatewayId: 'vgw-0123456789abcdef0' } },
    error: /cutover:sourceNetwork: .*vpnGatewayId/,
  },
  {
    label: 'the whole internet as the source',
    stack: 'staging',
    config: { sourceNetwork: { cidrs: ['0.0.0.0/0'], via: 'nat' } },
    error: /cutover:sourceNetwork: must be a specific network \(\/8 or longer\), never the whole internet at cidrs\.0/,
  },
  {
    label: 'a source CIDR with host bits',
    stack: 'staging',
    config: { sourceNetwork: { cidrs: ['198.51.100.30/24'], via: 'nat' } },
    error: /cutover:sourceNetwork: must be an IPv4 CIDR block with no host bits set at cidrs\.0/,
  },
  {
    label: 'no source CIDR',
    stack: 'staging',
    config: { sourceNetwork: { cidrs: [], via: 'nat' } },
    error: /cutover:sourceNetwork: needs at least one CIDR at cidrs/,
  },
  {
    label: 'a source port out of range',
    stack: 'staging',
    config: { sourceNetwork: { cidrs: ['198.51.100.30/32'], port: 70000, via: 'nat' } },
    error: /cutover:sourceNetwork: .* at port/,
  },
  {
    label: 'a source inside the VPC',
    stack: 'staging',
    config: { sourceNetwork: { cidrs: ['10.40.8.0/24'], via: 'peering', peeringConnectionId: 'pcx-0123456789abcdef0' } },
    error: /cutover:sourceNetwork: cidrs: 10.40.8.0\/24 overlaps vpcCidr 10.40.0.0\/16/,
  },
];

describe('stack config validation', () => {
  for (const c of cases) {
    it(`rejects ${c.label}, naming the key`, async () => {
      await assert.rejects(runStack({ stack: c.stack, zones: c.zones, config: c.config }), (error: Error) => {
        assert.match(error.message, c.error);
        assert.match(error.message, /Fix it in Pulumi\.(staging|prod)\.yaml/);
        return true;
      });
    });
  }
});
