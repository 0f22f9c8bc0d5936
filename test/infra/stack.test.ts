/**
 * Policy-style invariants of the whole program under mocks, for the real staging and prod configs:
 * RDS, the eks.Cluster inputs, Parameter Store, DNS, PgBouncer, tags and the outputs contract.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { stackOutputsSchema, UNSET_PARAMETER_VALUES } from '../../infra/contract.ts';
import { PLANTED_PASSWORD, type Registered, runStack, type StackRun, stackConfig } from './harness.ts';

const RDS = 'aws:rds/instance:Instance';
const SSM = 'aws:ssm/parameter:Parameter';
const runs: Record<'staging' | 'prod', StackRun> = {} as never;

before(async () => {
  runs.staging = await runStack({ stack: 'staging' });
  runs.prod = await runStack({ stack: 'prod' });
});

describe('RDS PostgreSQL', () => {
  const writer = (run: StackRun) => run.one(RDS, 'database-postgres');

  for (const stack of ['staging', 'prod'] as const) {
    it(`${stack}: private, encrypted with the stack key, gp3 with autoscaling, IAM auth, pinned CA`, () => {
      const db = writer(runs[stack]).inputs;
      assert.equal(db.publiclyAccessible, false);
      assert.equal(db.storageEncrypted, true);
      assert.equal(db.kmsKeyId, runs[stack].outputs.kms.keyArn);
      assert.equal(db.storageType, 'gp3');
      assert.ok(db.maxAllocatedStorage > db.allocatedStorage);
      assert.equal(db.iamDatabaseAuthenticationEnabled, true);
      assert.equal(db.caCertIdentifier, 'rds-ca-rsa2048-g1');
      assert.equal(db.engine, 'postgres');
      assert.equal(db.engineVersion, stackConfig(stack)['cutover:dbEngineVersion']);
    });

    it(`${stack}: parameter group of the engine's family with logical replication (pending-reboot), TLS only and replication headroom`, () => {
      const group = runs[stack].one('aws:rds/parameterGroup:ParameterGroup');
      assert.equal(group.inputs.family, 'postgres16');
      assert.ok(group.inputs.namePrefix, 'a name prefix, so a replacement can be created before the old group is deleted');
      assert.equal(group.inputs.name, undefined);
      const param = (name: string) =>
        (group.inputs.parameters as { name: string; value: string; applyMethod: string }[]).find((p) => p.name === name);
      assert.deepEqual(param('rds.logical_replication'), { name: 'rds.logical_replication', value: '1', applyMethod: 'pending-reboot' });
      assert.equal(param('rds.force_ssl')?.value, '1');
      for (const [name, minimum] of [
        ['max_replication_slots', 10],
        ['max_wal_senders', 10],
        ['max_logical_replication_workers', 4],
        ['max_worker_processes', 8],
      ] as const) {
        assert.ok(Number(param(name)?.value) >= minimum, `${name} >= ${minimum}`);
      }
      assert.ok(Number(param('max_worker_processes')!.value) > Number(param('max_logical_replication_workers')!.value));
      assert.equal(writer(runs[stack]).inputs.parameterGroupName, runs[stack].outputs.database.parameterGroupName);
    });

    it(`${stack}: security group admits 5432 only from the node security group, the configured migration CIDRs and the reverse path's load balancer`, () => {
      const run = runs[stack];
      const sgId = run.outputs.database.securityGroupId;
      assert.deepEqual(writer(run).inputs.vpcSecurityGroupIds, [sgId]);
      const sg = run.one('aws:ec2/securityGroup:SecurityGroup', 'database-postgres');
      assert.deepEqual(sg.inputs.ingress ?? [], [], 'no inline ingress');
      const rules = run
        .ofType('aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule')
        .filter((r) => r.inputs.securityGroupId === sgId);
      assert.ok(rules.some((r) => r.inputs.referencedSecurityGroupId === run.outputs.cluster.nodeSecurityGroupId));
      for (const rule of rules) {
        assert.equal(rule.inputs.fromPort, 5432);
        assert.equal(rule.inputs.toPort, 5432);
        assert.equal(rule.inputs.ipProtocol, 'tcp');
        const fromNodes = rule.inputs.referencedSecurityGroupId === run.outputs.cluster.nodeSecurityGroupId;
        const fromMigration = (stackConfig(stack)['cutover:dbMigrationCidrs'] as string[]).includes(rule.inputs.cidrIpv4);
        // Both stacks reach the source through NAT and enable the reverse path: its load balancer
        // (test/infra/reverse-path.test.ts holds that group to the allow-list).
        const fromReverseNlb =
          rule.name === 'reverse-path-postgres-from-nlb' &&
          rule.inputs.referencedSecurityGroupId === run.one('aws:ec2/securityGroup:SecurityGroup', 'reverse-path-nlb').id;
        assert.ok(fromNodes || fromMigration || fromReverseNlb, `${rule.name} admits something else`);
        assert.equal(rule.inputs.cidrIpv6, undefined);
      }
      assert.equal(run.ofType('aws:ec2/securityGroupRule:SecurityGroupRule').length, 0, 'no legacy rules bypassing the check');
      assert.deepEqual(run.one('aws:rds/subnetGroup:SubnetGroup').inputs.subnetIds, run.outputs.network.databaseSubnetIds);
    });
  }

  it('prod: Multi-AZ, deletion protection, protect, final snapshot, 14+ days of backups, Performance Insights, enhanced monitoring', () => {
    const db = writer(runs.prod);
    assert.equal(db.inputs.multiAz, true);
    assert.equal(db.inputs.deletionProtection, true);
    assert.equal(db.protect, true);
    assert.equal(db.inputs.skipFinalSnapshot, false);
    assert.ok(db.inputs.finalSnapshotIdentifier);
    assert.ok(db.inputs.backupRetentionPeriod >= 14);
    assert.equal(db.inputs.performanceInsightsEnabled, true);
    assert.equal(db.inputs.performanceInsightsKmsKeyId, runs.prod.outputs.kms.keyArn);
    assert.ok(db.inputs.monitoringInterval > 0);
    assert.ok(db.inputs.monitoringRoleArn);
  });

  it('staging: none of the prod protections, short backups', () => {
    const db = writer(runs.staging);
    assert.equal(db.inputs.multiAz, false);
    assert.equal(db.inputs.deletionProtection, false);
    assert.equal(db.protect, false);
    assert.equal(db.inputs.skipFinalSnapshot, true);
    assert.ok(db.inputs.backupRetentionPeriod >= 1 && db.inputs.backupRetentionPeriod < 14);
    assert.equal(db.inputs.performanceInsightsEnabled, false);
    assert.equal(db.inputs.monitoringInterval, 0);
  });

  it('keeps the master password a secret: secret input, never in outputs', () => {
    for (const run of Object.values(runs)) {
      assert.ok(writer(run).secretInputs.includes('password'));
      assert.equal(writer(run).inputs.password, PLANTED_PASSWORD, 'the random password is what RDS gets');
      assert.ok(!JSON.stringify(run.outputs).includes(PLANTED_PASSWORD), 'planted password leaked into outputs');
      assert.match(run.outputs.database.masterPasswordRef, /^ssm:\/cutover\/(staging|prod)\/database\/master-password$/);
    }
  });

  it('creates no replicas while migrating and names the D-day replicas <db identifier>-replica-<n>', () => {
    for (const [stack, count] of [
      ['staging', 1],
      ['prod', 2],
    ] as const) {
      const run = runs[stack];
      assert.equal(run.ofType(RDS).length, 1, 'only the writer');
      const id = run.outputs.database.identifier;
      assert.deepEqual(
        run.outputs.database.replicas.map((r: { identifier: string }) => r.identifier),
        Array.from({ length: count }, (_, i) => `${id}-replica-${i + 1}`),
      );
      for (const replica of run.outputs.database.replicas)
        assert.ok(run.outputs.network.availabilityZones.includes(replica.availabilityZone));
    }
  });
});

describe('replicas managed by the stack', () => {
  it('adopts CLI-created replicas under the same identifiers when dbAdoptReplicas is set', async () => {
    const run = await runStack({ stack: 'prod', config: { dbReplicaCount: 2, dbCutoverReplicaCount: 3, dbAdoptReplicas: true } });
    const replicas = run.ofType(RDS).filter((r) => r.name.startsWith('database-replica-'));
    assert.deepEqual(
      replicas.map((r) => r.inputs.identifier),
      ['cutover-prod-postgres-replica-1', 'cutover-prod-postgres-replica-2'],
    );
    for (const replica of replicas) {
      assert.equal(replica.importId, replica.inputs.identifier);
      assert.equal(replica.inputs.replicateSourceDb, 'cutover-prod-postgres');
      assert.equal(replica.inputs.publiclyAccessible, false);
      assert.equal(replica.inputs.storageEncrypted, true);
    }
    assert.deepEqual(
      run.outputs.database.replicas.map((r: { identifier: string }) => r.identifier),
      ['cutover-prod-postgres-replica-3'],
    );
    assert.equal(run.one(SSM, 'secrets-reader-urls').inputs.value.split(',').length, 2, 'reader URLs point at the managed replicas');
  });
});

describe('eks.Cluster inputs', () => {
  const cluster = (run: StackRun) => run.one('eks:index:Cluster').inputs;
  const groups = (run: StackRun) => run.ofType('eks:index:ManagedNodeGroup');

  it('uses API authentication with the configured access entries, an OIDC provider, and no default node group', () => {
    for (const stack of ['staging', 'prod'] as const) {
      const inputs = cluster(runs[stack]);
      assert.equal(inputs.authenticationMode, 'API');
      assert.equal(inputs.createOidcProvider, true);
      assert.equal(inputs.skipDefaultNodeGroup, true);
      assert.equal(inputs.version, '1.33');
      const configured = stackConfig(stack)['cutover:clusterAccessEntries'] as { principalArn: string }[];
      const entries = Object.values(inputs.accessEntries) as {
        principalArn: string;
        accessPolicies: Record<string, { policyArn: string }>;
      }[];
      assert.deepEqual(entries.map((e) => e.principalArn).sort(), configured.map((e) => e.principalArn).sort());
      for (const entry of entries)
        for (const policy of Object.values(entry.accessPolicies))
          assert.match(policy.policyArn, /^arn:aws:eks::aws:cluster-access-policy\/AmazonEKS\w+Policy$/);
      assert.equal(inputs.roleMappings, undefined, 'no aws-auth ConfigMap mappings');
      assert.equal(inputs.encryptionConfigKeyArn, runs[stack].outputs.kms.keyArn);
    }
  });

  it('keeps the API endpoint private plus public only for the configured CIDRs', () => {
    for (const stack of ['staging', 'prod'] as const) {
      const inputs = cluster(runs[stack]);
      assert.equal(inputs.endpointPrivateAccess, true);
      assert.equal(inputs.endpointPublicAccess, true);
      assert.deepEqual(inputs.publicAccessCidrs, stackConfig(stack)['cutover:clusterPublicAccessCidrs']);
      assert.ok(!(inputs.publicAccessCidrs as string[]).includes('0.0.0.0/0'));
    }
  });

  it('turns the public endpoint off when no CIDRs are configured', async () => {
    const run = await runStack({ stack: 'staging', config: { clusterPublicAccessCidrs: [] } });
    assert.equal(cluster(run).endpointPublicAccess, false);
    assert.equal(cluster(run).publicAccessCidrs, undefined);
  });

  it('logs audit and api in staging, every type in prod', () => {
    assert.deepEqual([...cluster(runs.staging).enabledClusterLogTypes].sort(), ['api', 'audit']);
    assert.deepEqual([...cluster(runs.prod).enabledClusterLogTypes].sort(), [
      'api',
      'audit',
      'authenticator',
      'controllerManager',
      'scheduler',
    ]);
  });

  it('runs an on-demand system group and a spot group over several instance types, IMDSv2 required, in private subnets', () => {
    for (const stack of ['staging', 'prod'] as const) {
      const run = runs[stack];
      const byCapacity = Object.fromEntries(groups(run).map((g) => [g.inputs.capacityType, g.inputs]));
      assert.deepEqual(Object.keys(byCapacity).sort(), ['ON_DEMAND', 'SPOT']);
      assert.equal(byCapacity.ON_DEMAND.labels['node-role'], 'system');
      assert.ok(byCapacity.SPOT.instanceTypes.length >= 2, 'a spot mix');
      const configuredMix = stackConfig(stack)['cutover:spotInstanceTypes'];
      if (configuredMix) assert.deepEqual(byCapacity.SPOT.instanceTypes, configuredMix);
      for (const group of groups(run)) {
        assert.equal(group.inputs.enableIMDSv2, true, `${group.name} requires IMDSv2`);
        assert.deepEqual(group.inputs.subnetIds, run.outputs.network.privateSubnetIds);
        assert.ok(group.inputs.nodeGroupNamePrefix && !group.inputs.nodeGroupName);
      }
    }
  });
});

describe('Parameter Store', () => {
  for (const stack of ['staging', 'prod'] as const) {
    it(`${stack}: SecureString under the stack key; values the cutover or operators own are never reverted by pulumi up`, () => {
      const run = runs[stack];
      const params = run.ofType(SSM);
      const names = run.outputs.parameters;
      assert.deepEqual(
        params.map((p) => p.inputs.name).sort(),
        [names.appPassword, names.masterPassword, names.readerUrls, names.sourceUrl, names.writerUrl].sort(),
      );
      assert.equal(names.appPassword, `/cutover/${stack}/database/app-password`);
      for (const p of params) {
        assert.equal(p.inputs.type, 'SecureString');
        assert.equal(p.inputs.keyId, run.outputs.kms.keyArn);
        assert.ok(p.secretInputs.includes('value'), `${p.inputs.name} value is a Pulumi secret`);
      }
      const byName = (name: string) => params.find((p) => p.inputs.name === name)!;
      for (const owned of [names.writerUrl, names.readerUrls, names.sourceUrl, names.appPassword])
        assert.deepEqual(byName(owned).ignoreChanges, ['value'], owned);
      assert.equal(
        byName(names.appPassword).inputs.value,
        UNSET_PARAMETER_VALUES.appPassword,
        'operators set it; the marker says they have not yet',
      );
      assert.deepEqual(byName(names.masterPassword).ignoreChanges, []);
      assert.equal(byName(names.masterPassword).inputs.value, PLANTED_PASSWORD);
      const writerUrl = new URL(byName(names.writerUrl).inputs.value);
      assert.equal(writerUrl.hostname, run.outputs.database.endpoint);
      assert.equal(writerUrl.searchParams.get('sslmode'), 'verify-full');
      assert.doesNotMatch(byName(names.sourceUrl).inputs.value, /@/, 'the placeholder holds no credentials');
      assert.equal(run.outputs.source.urlRef, `ssm:${names.sourceUrl}`);
    });
  }
});

describe('Route53', () => {
  it('looks the zone up and manages the app and webhook records with legacy values, the config TTL, and ignoreChanges on what the CLI moves', () => {
    for (const stack of ['staging', 'prod'] as const) {
      const run = runs[stack];
      const dns = stackConfig(stack)['cutover:dns'] as {
        zoneName: string;
        ttl: number;
        app: { name: string; legacy: { values: string[] } };
        webhooks: { name: string; legacy: { values: string[] } };
      };
      assert.ok(run.invokes.some((i) => i.token === 'aws:route53/getZone:getZone' && i.inputs.name === dns.zoneName));
      assert.equal(run.ofType('aws:route53/zone:Zone').length, 0, 'the zone is looked up, not created');
      for (const which of ['app', 'webhooks'] as const) {
        const record = run.one('aws:route53/record:Record', `dns-${which}`);
        assert.equal(record.inputs.name, dns[which].name);
        assert.equal(record.inputs.zoneId, run.outputs.dns.hostedZoneId);
        assert.equal(record.inputs.ttl, dns.ttl);
        assert.deepEqual(record.inputs.records, dns[which].legacy.values);
        assert.deepEqual([...record.ignoreChanges].sort(), ['aliases', 'records', 'ttl']);
        assert.equal(record.inputs.allowOverwrite, true, 'the record predates the stack: taken over');
        assert.equal(record.retainOnDelete, true, 'pulumi destroy must leave the live record (legacy or switched) in the zone');
        assert.deepEqual(run.outputs.dns.records[which].legacy, dns[which].legacy);
      }
    }
  });
});

describe('PgBouncer on the cluster', () => {
  it('reads the writer URL from Parameter Store through a least-privilege IRSA role and renders its config at pod start', () => {
    const run = runs.prod;
    const provider = run.one('pulumi:providers:kubernetes');
    assert.ok(provider.inputs.kubeconfig.includes('cutover-prod'), 'built from the cluster kubeconfig');
    const deployment = run.one('kubernetes:apps/v1:Deployment', 'cutover-pgbouncer').inputs;
    assert.equal(deployment.metadata.namespace, run.outputs.pgbouncer.namespace);
    assert.equal(deployment.metadata.name, run.outputs.pgbouncer.deployment);
    const pod = deployment.spec.template.spec;
    const init = pod.initContainers[0];
    assert.ok(
      init.env.some(
        (e: { name: string; value: string }) => e.name === 'WRITER_URL_PARAMETER' && e.value === run.outputs.parameters.writerUrl,
      ),
    );
    assert.ok(pod.volumes.some((v: { emptyDir?: { medium?: string } }) => v.emptyDir?.medium === 'Memory'));
    assert.equal(pod.serviceAccountName, 'pgbouncer');
    const sa = run.one('kubernetes:core/v1:ServiceAccount', 'cutover-pgbouncer').inputs;
    const role = run.one('aws:iam/role:Role', 'cutover-pgbouncer');
    assert.equal(sa.metadata.annotations['eks.amazonaws.com/role-arn'], `arn:aws:mock:eu-west-1:111122223333:pgbouncer`);
    const trust = JSON.parse(role.inputs.assumeRolePolicy);
    assert.equal(
      trust.Statement[0].Condition.StringEquals['oidc.eks.eu-west-1.amazonaws.com/id/MOCK:sub'],
      'system:serviceaccount:pgbouncer:pgbouncer',
    );
    const policy = JSON.parse(run.one('aws:iam/rolePolicy:RolePolicy', 'cutover-pgbouncer').inputs.policy);
    assert.deepEqual(
      policy.Statement.map((s: { Action: string }) => s.Action),
      ['ssm:GetParameter', 'kms:Decrypt'],
    );
    assert.equal(policy.Statement[0].Resource, 'arn:aws:mock:eu-west-1:111122223333:writer-url', 'only the writer URL parameter');
    const service = run.one('kubernetes:core/v1:Service', 'cutover-pgbouncer').inputs;
    assert.equal(service.spec.ports[0].port, run.outputs.pgbouncer.port);
    for (const ns of run.outputs.app.namespaces)
      assert.ok(run.ofType('kubernetes:core/v1:Namespace').some((n) => n.inputs.metadata.name === ns));
  });
});

describe('tags', () => {
  const require = createRequire(import.meta.url);
  /** A type is taggable when its SDK class passes a `tags` input to the provider. */
  const taggable = new Map<string, boolean>();
  function isTaggable(type: string): boolean {
    if (!taggable.has(type)) {
      const [pkg, module, name] = type.split(':') as [string, string, string];
      if (pkg === 'pulumi' || pkg === 'cutover' || pkg === 'kubernetes') taggable.set(type, false);
      else {
        const root = dirname(require.resolve(`@pulumi/${pkg}/package.json`));
        const file = join(
          root,
          module.split('/')[0] === 'index' ? '' : module.split('/')[0]!,
          `${name[0]!.toLowerCase()}${name.slice(1)}.js`,
        );
        assert.ok(existsSync(file), `no SDK source for ${type} at ${file}`);
        taggable.set(type, readFileSync(file, 'utf8').includes('resourceInputs["tags"]'));
      }
    }
    return taggable.get(type)!;
  }

  for (const stack of ['staging', 'prod'] as const) {
    it(`${stack}: every taggable resource carries environment, project and managed-by`, () => {
      const run = runs[stack];
      const tagged = run.resources.filter((r: Registered) => isTaggable(r.type));
      assert.ok(tagged.length > 40, `detection found ${tagged.length} taggable resources`);
      for (const type of ['aws:ec2/subnet:Subnet', 'aws:rds/instance:Instance', 'eks:index:Cluster', 'aws:ssm/parameter:Parameter'])
        assert.ok(isTaggable(type), type);
      const untagged = tagged.filter(
        (r) => r.inputs.tags?.environment !== stack || r.inputs.tags?.project !== 'cutover' || r.inputs.tags?.['managed-by'] !== 'pulumi',
      );
      assert.deepEqual(
        untagged.map((r) => `${r.type} ${r.name}`),
        [],
      );
    });
  }
});

describe('outputs', () => {
  for (const stack of ['staging', 'prod'] as const) {
    it(`${stack}: complete, of the contract's type, kubeconfig secret`, () => {
      const run = runs[stack];
      const parsed = stackOutputsSchema.strict().safeParse(run.outputs);
      assert.ok(parsed.success, parsed.success ? '' : JSON.stringify(parsed.error.issues, null, 1));
      for (const key of Object.keys(stackOutputsSchema.shape)) assert.ok(key in run.outputs, `export ${key} missing`);
      assert.ok(run.secretOutputs.has('cluster'), 'cluster (kubeconfig) is a secret output');
      assert.equal(run.outputs.database.sslMode, 'verify-full');
      assert.equal(run.outputs.pgbouncer.adminUrlRef, undefined);
      assert.equal(run.outputs.environment, stack);
      assert.equal(run.outputs.region, 'eu-west-1');
    });
  }
});
