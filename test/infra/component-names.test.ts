/**
 * Children are named after their component, so a component can be used twice in a stack; each
 * renamed child carries an alias to its old bare name, so a stack created before the rename keeps
 * its resources (no delete and recreate of the RDS instance, the cluster, the VPC...), with the same
 * physical names and the same outputs.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { ACCOUNT, type Registered, runStack, type StackRun } from './harness.ts';

const COMPONENT = /^cutover:infra:/;
const runs: Record<string, StackRun> = {};

before(async () => {
  runs.staging = await runStack({ stack: 'staging' });
  runs.prod = await runStack({ stack: 'prod' });
  // The children only some configs have: managed replicas, a VPN gateway attachment, no custom domain.
  runs.variants = await runStack({
    stack: 'prod',
    config: {
      dbReplicaCount: 1,
      dbCutoverReplicaCount: 2,
      webhookRecorder: { enabled: true, customDomain: false },
      sourceNetwork: { cidrs: ['10.9.0.0/16'], via: 'vpn-gateway', vpnGatewayId: 'vgw-0123456789abcdef0' },
    },
  });
});

const childrenOf = (run: StackRun) => run.resources.filter((r) => COMPONENT.test(r.parent.split('::')[2] ?? ''));
const componentName = (child: Registered) => child.parent.split('::').pop()!;

describe('two instances of every component in one stack', () => {
  it('register no URN twice', async () => {
    const run = await runStack({
      stack: 'prod',
      config: { dbReplicaCount: 1, dbCutoverReplicaCount: 2 },
      async program() {
        const { loadConfig } = await import('../../infra/config.ts');
        const { StackKey } = await import('../../infra/encryption.ts');
        const { Network } = await import('../../infra/network.ts');
        const { Cluster } = await import('../../infra/cluster.ts');
        const { Database } = await import('../../infra/database.ts');
        const { Secrets } = await import('../../infra/secrets.ts');
        const { Dns } = await import('../../infra/dns.ts');
        const { CutoverWorkloads } = await import('../../infra/cutover-workloads.ts');
        const { WebhookRecorder } = await import('../../infra/webhook-recorder.ts');
        const { ReversePath } = await import('../../infra/reverse-path.ts');
        const { parameterNames } = await import('../../infra/naming.ts');
        const config = loadConfig();
        const zones = ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'];
        const tags = { environment: 'prod' };
        if (!config.webhookRecorder.enabled) throw new Error('prod enables the webhook recorder');
        for (const name of ['blue', 'green']) {
          const prefix = `cutover-${name}`;
          const names = parameterNames(`/cutover/${name}`);
          new StackKey(name, { prefix, production: true, tags });
          new Network(name, { prefix, region: config.region, zones, ...config.network, source: config.sourceNetwork, tags });
          new Cluster(name, {
            prefix,
            config: config.cluster,
            vpcId: 'vpc',
            publicSubnetIds: ['a'],
            privateSubnetIds: ['b'],
            kmsKeyArn: 'key',
            tags,
          });
          new Database(name, {
            identifier: `${prefix}-postgres`,
            config: config.database,
            production: true,
            vpcId: 'vpc',
            subnetIds: ['c'],
            clientSecurityGroupId: 'sg',
            source: config.sourceNetwork,
            kmsKeyArn: 'key',
            zones,
            tags,
          });
          new Secrets(name, { names, kmsKeyArn: 'key', writerUrl: 'w', readerUrls: 'r', masterPassword: 'p', tags });
          new Dns(name, { config: config.dns });
          new CutoverWorkloads(name, {
            prefix,
            region: config.region,
            kubeconfig: '{}',
            oidcProviderArn: 'oidc',
            oidcIssuer: 'issuer',
            appNamespaces: config.appNamespaces,
            pgbouncer: config.pgbouncer,
            writerUrlParameterName: names.writerUrl,
            writerUrlParameterArn: 'arn',
            kmsKeyArn: 'key',
            tags,
          });
          new WebhookRecorder(name, { prefix, region: config.region, kmsKeyArn: 'key', zoneId: 'zone', ...config.webhookRecorder, tags });
          new ReversePath(name, {
            prefix,
            via: config.sourceNetwork.via,
            allowedCidrs: config.sourceNetwork.cidrs,
            vpcId: 'vpc',
            zones,
            publicSubnetIds: ['a', 'b', 'c'],
            database: { address: 'db.example', port: 5432, securityGroupId: 'sg-db' },
            tags,
          });
        }
        return {};
      },
    });
    const components = run.resources.filter((r) => COMPONENT.test(r.type));
    assert.equal(components.length, 18);
    assert.ok(run.resources.length > 150, `${run.resources.length} resources`);
    const seen = new Set<string>();
    const duplicates = run.resources.map((r) => r.urn).filter((urn) => seen.size === seen.add(urn).size);
    assert.deepEqual(duplicates, []);
  });
});

describe('renamed children', () => {
  for (const label of ['staging', 'prod', 'variants']) {
    it(`${label}: every child of a component is <component>-<old name>, aliased to the old name`, () => {
      const children = childrenOf(runs[label]!);
      assert.ok(children.length > 80, `${children.length} children`);
      for (const child of children) {
        assert.equal(child.aliases.length, 1, `${child.type} ${child.name} has one alias`);
        assert.equal(child.name, `${componentName(child)}-${child.aliases[0]}`, `${child.type} ${child.name}`);
      }
      // Two children claiming one old resource would make the engine refuse the update.
      const old = children.map((c) => `${c.parent} ${c.type} ${c.aliases[0]}`);
      assert.equal(new Set(old).size, old.length);
      // Only the components themselves sit at the top; their names are unchanged.
      assert.deepEqual(
        runs[label]!.resources.filter((r) => !r.parent)
          .map((r) => r.name)
          .sort(),
        ['cluster', 'cutover', 'database', 'dns', 'key', 'network', 'reverse-path', 'secrets', 'webhooks'],
      );
    });
  }

  it('the resources a replacement would destroy keep theirs: writer, cluster, VPC, password, key, records, provider', () => {
    const run = runs.prod!;
    const aliasOf = (type: string, name: string) => run.one(type, name).aliases;
    assert.deepEqual(aliasOf('aws:rds/instance:Instance', 'database-postgres'), ['postgres']);
    assert.deepEqual(aliasOf('random:index/randomPassword:RandomPassword', 'database-master'), ['master']);
    assert.deepEqual(aliasOf('eks:index:Cluster', 'cluster-eks'), ['eks']);
    assert.deepEqual(aliasOf('aws:ec2/vpc:Vpc', 'network-vpc'), ['vpc']);
    assert.deepEqual(aliasOf('aws:kms/key:Key', 'key-stack'), ['stack']);
    assert.deepEqual(aliasOf('aws:route53/record:Record', 'dns-app'), ['app']);
    assert.deepEqual(aliasOf('pulumi:providers:kubernetes', 'cutover-eks'), ['eks']);
    assert.equal(run.one('aws:rds/instance:Instance', 'database-postgres').protect, true, 'protect kept alongside the alias');
  });
});

/** Each resource's physical names: `<type> <logical name> <field>=<value>`. */
function physicalNames(run: StackRun): string[] {
  const rows: string[] = [];
  for (const r of run.resources) {
    const fields: [string, unknown][] = [
      'name',
      'namePrefix',
      'identifier',
      'finalSnapshotIdentifier',
      'nodeGroupNamePrefix',
      'domainName',
      'stageName',
    ].map((f) => [f, r.inputs[f]]);
    fields.push(['metadata.name', r.inputs.metadata?.name]);
    for (const [field, value] of fields) if (typeof value === 'string') rows.push(`${r.type} ${r.name} ${field}=${value}`);
  }
  return rows.sort();
}

/** The names the program chose before children were renamed (the Pulumi.<stack>.yaml values). */
function expectedNames(env: string, zone: string, production: boolean): string[] {
  const db = `cutover-${env}-postgres`;
  const queue = `cutover-${env}-webhooks`;
  const hooks = `hooks.${zone}`;
  return [
    `aws:kms/alias:Alias key-stack name=alias/cutover-${env}`,
    ...(production ? [`aws:cloudwatch/logGroup:LogGroup network-flow-logs name=/vpc/cutover-${env}/flow-logs`] : []),
    `eks:index:Cluster cluster-eks name=cutover-${env}`,
    `eks:index:ManagedNodeGroup cluster-system nodeGroupNamePrefix=cutover-${env}-system-`,
    `eks:index:ManagedNodeGroup cluster-spot nodeGroupNamePrefix=cutover-${env}-spot-`,
    `aws:rds/parameterGroup:ParameterGroup database-postgres namePrefix=${db}-`,
    `aws:rds/subnetGroup:SubnetGroup database-postgres name=${db}`,
    `aws:rds/instance:Instance database-postgres identifier=${db}`,
    ...(production ? [`aws:rds/instance:Instance database-postgres finalSnapshotIdentifier=${db}-final`] : []),
    ...['writer-url', 'reader-urls', 'source-url', 'app-password', 'master-password'].map(
      (p) => `aws:ssm/parameter:Parameter secrets-${p} name=/cutover/${env}/database/${p}`,
    ),
    `aws:route53/record:Record dns-app name=app.${zone}`,
    `aws:route53/record:Record dns-webhooks name=${hooks}`,
    `kubernetes:core/v1:Namespace cutover-ns-app metadata.name=app`,
    `kubernetes:core/v1:Namespace cutover-ns-pgbouncer metadata.name=pgbouncer`,
    `kubernetes:core/v1:ServiceAccount cutover-pgbouncer metadata.name=pgbouncer`,
    `kubernetes:apps/v1:Deployment cutover-pgbouncer metadata.name=pgbouncer`,
    `kubernetes:core/v1:Service cutover-pgbouncer metadata.name=pgbouncer`,
    `aws:sqs/queue:Queue webhooks-webhooks-dlq name=${queue}-dlq.fifo`,
    `aws:sqs/queue:Queue webhooks-webhooks name=${queue}.fifo`,
    `aws:apigateway/restApi:RestApi webhooks-webhooks name=${queue}`,
    `aws:apigateway/stage:Stage webhooks-webhooks stageName=recorder`,
    `aws:acm/certificate:Certificate webhooks-webhooks domainName=${hooks}`,
    `aws:route53/record:Record webhooks-webhooks-certificate-validation name=_x1.${hooks}.`,
    `aws:apigateway/domainName:DomainName webhooks-webhooks domainName=${hooks}`,
    `aws:apigateway/basePathMapping:BasePathMapping webhooks-webhooks domainName=${hooks}`,
    `aws:apigateway/basePathMapping:BasePathMapping webhooks-webhooks stageName=recorder`,
  ].sort();
}

describe('an existing stack after the rename', () => {
  for (const [stack, zone, production] of [
    ['staging', 'staging.example.com', false],
    ['prod', 'example.com', true],
  ] as const) {
    it(`${stack}: the same physical names`, () => {
      assert.deepEqual(physicalNames(runs[stack]!), expectedNames(stack, zone, production));
    });

    it(`${stack}: the same outputs, ids and ARNs those of the resources it already has`, () => {
      const { outputs } = runs[stack]!;
      const arn = (name: string) => `arn:aws:mock:eu-west-1:${ACCOUNT}:${name}`;
      assert.equal(outputs.kms.keyArn, arn('stack'));
      assert.equal(outputs.network.vpcId, 'vpc-id');
      assert.deepEqual(
        outputs.network.publicSubnetIds,
        outputs.network.availabilityZones.map((z: string) => `subnet-public-${z}`),
      );
      assert.deepEqual(
        outputs.network.databaseSubnetIds,
        outputs.network.availabilityZones.map((z: string) => `subnet-database-${z}`),
      );
      assert.equal(outputs.cluster.name, `cutover-${stack}`);
      assert.equal(outputs.database.identifier, `cutover-${stack}-postgres`);
      assert.equal(outputs.database.arn, `arn:aws:rds:eu-west-1:${ACCOUNT}:db:cutover-${stack}-postgres`);
      assert.equal(outputs.database.endpoint, `cutover-${stack}-postgres.cmock.eu-west-1.rds.amazonaws.com`);
      assert.equal(outputs.database.parameterGroupName, `cutover-${stack}-postgres-20260101000000`);
      assert.equal(outputs.database.subnetGroupName, `cutover-${stack}-postgres`);
      assert.equal(outputs.database.securityGroupId, 'postgres-id');
      assert.equal(outputs.database.masterPasswordRef, `ssm:/cutover/${stack}/database/master-password`);
      assert.deepEqual(outputs.pgbouncer, { namespace: 'pgbouncer', deployment: 'pgbouncer', service: 'pgbouncer', port: 6432 });
      assert.deepEqual([outputs.dns.records.app.name, outputs.dns.records.webhooks.name], [`app.${zone}`, `hooks.${zone}`]);
      assert.equal(outputs.webhooks.queueUrl, `https://sqs.eu-west-1.amazonaws.com/${ACCOUNT}/cutover-${stack}-webhooks.fifo`);
      assert.equal(outputs.webhooks.recorderUrl, 'https://webhooks-id.execute-api.eu-west-1.amazonaws.com/recorder');
    });
  }
});
