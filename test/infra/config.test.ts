/** A bad stack config value stops the program before any resource, with the key in the message. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runStack } from './harness.ts';

const cases: { label: string; stack: 'staging' | 'prod'; config: Record<string, unknown>; zones?: number; error: RegExp }[] = [
  { label: 'AZ count 0', stack: 'staging', config: { availabilityZoneCount: 0 }, error: /cutover:availabilityZoneCount: must be at least 1/ },
  { label: 'more AZs than the region has', stack: 'prod', zones: 2, config: {}, error: /cutover:availabilityZoneCount: is 3 but the region has only 2/ },
  { label: 'unknown environment size', stack: 'staging', config: { size: 'huge' }, error: /cutover:size: must be one of small, medium, large \(got "huge"\)/ },
  { label: 'missing environment', stack: 'staging', config: { environment: undefined }, error: /cutover:environment: is required/ },
  { label: 'prod with short backups', stack: 'prod', config: { dbBackupRetentionDays: 7 }, error: /cutover:dbBackupRetentionDays: is 7; production stacks keep at least 14 days/ },
  { label: 'cluster API open to the internet', stack: 'staging', config: { clusterPublicAccessCidrs: ['0.0.0.0/0'] }, error: /cutover:clusterPublicAccessCidrs: must not contain 0.0.0.0\/0/ },
  { label: 'a VPC block with host bits', stack: 'staging', config: { vpcCidr: '10.40.0.1/16' }, error: /cutover:vpcCidr: must be an IPv4 CIDR block/ },
  { label: 'a record outside the zone', stack: 'staging', config: { dns: { zoneName: 'example.org', app: { name: 'app.example.com', type: 'A', legacy: { values: ['1.2.3.4'] }, cutover: { values: ['5.6.7.8'] } }, webhooks: { name: 'hooks.example.org', type: 'A', legacy: { values: ['1.2.3.4'] }, cutover: { values: ['5.6.7.8'] } } } }, error: /cutover:dns: app.name app.example.com is not inside zone example.org/ },
  { label: 'a spot "mix" of one type', stack: 'staging', config: { spotInstanceTypes: ['m5.large'] }, error: /cutover:spotInstanceTypes: needs at least 2 types/ },
  { label: 'fewer D-day replicas than managed ones', stack: 'staging', config: { dbReplicaCount: 2, dbCutoverReplicaCount: 1 }, error: /cutover:dbCutoverReplicaCount: \(1\) is below dbReplicaCount \(2\)/ },
  { label: 'a number that is not one', stack: 'staging', config: { dbAllocatedStorageGb: 'lots' }, error: /cutover:dbAllocatedStorageGb: 'lots' is not a valid value/ },
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
