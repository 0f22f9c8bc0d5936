/**
 * The stack: config → components → outputs. `pulumi stack output --json` of this module is the
 * contract in contract.ts, which the migrate CLI reads; each export is one of its top-level fields.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { Cluster } from './cluster.ts';
import { loadConfig } from './config.ts';
import type { StackOutputs } from './contract.ts';
import { CutoverWorkloads } from './cutover-workloads.ts';
import { Database } from './database.ts';
import { Dns } from './dns.ts';
import { StackKey } from './encryption.ts';
import { databaseIdentifier, parameterNames, stackPrefix } from './naming.ts';
import { Network } from './network.ts';
import { ReversePath } from './reverse-path.ts';
import { Secrets } from './secrets.ts';
import { baseTags } from './tags.ts';
import { WebhookRecorder } from './webhook-recorder.ts';
import { chooseZones } from './zones.ts';

const config = loadConfig();
const prefix = stackPrefix(config.project, config.environment);
const stackTags = baseTags(config);
const names = parameterNames(config.parameterPrefix);
const available = await aws.getAvailabilityZones({
  state: 'available',
  filters: [{ name: 'opt-in-status', values: ['opt-in-not-required'] }],
});
const zones = chooseZones(
  available.names,
  { count: config.network.availabilityZoneCount, pinned: config.network.availabilityZones },
  config.project,
);

const key = new StackKey('key', { prefix, production: config.production, tags: stackTags });
const net = new Network('network', {
  prefix,
  region: config.region,
  zones,
  ...config.network,
  source: config.sourceNetwork,
  tags: stackTags,
});
const eks = new Cluster('cluster', {
  prefix,
  config: config.cluster,
  vpcId: net.vpcId,
  publicSubnetIds: net.publicSubnetIds,
  privateSubnetIds: net.privateSubnetIds,
  kmsKeyArn: key.arn,
  tags: stackTags,
});
const db = new Database('database', {
  identifier: databaseIdentifier(config.project, config.environment),
  config: config.database,
  production: config.production,
  vpcId: net.vpcId,
  subnetIds: net.databaseSubnetIds,
  clientSecurityGroupId: eks.nodeSecurityGroupId,
  source: config.sourceNetwork,
  kmsKeyArn: key.arn,
  zones,
  tags: stackTags,
});
const reverse = config.reversePath.enabled
  ? new ReversePath(
      'reverse-path',
      {
        prefix,
        via: config.sourceNetwork.via,
        allowedCidrs: config.reversePath.allowedCidrs,
        vpcId: net.vpcId,
        zones,
        publicSubnetIds: net.publicSubnetIds,
        database: { address: db.address, port: db.port, securityGroupId: db.securityGroupId },
        tags: stackTags,
      },
      // An internet-facing load balancer cannot be created before the VPC's internet gateway is attached.
      { dependsOn: [net] },
    )
  : undefined;
const url = (host: pulumi.Input<string>) =>
  pulumi.interpolate`postgresql://${config.database.masterUsername}:${db.masterPassword.apply(encodeURIComponent)}@${host}:${db.port}/${config.database.name}?sslmode=verify-full`;
const secrets = new Secrets('secrets', {
  names,
  kmsKeyArn: key.arn,
  writerUrl: url(db.address),
  readerUrls: pulumi.all((db.replicaAddresses.length ? db.replicaAddresses : [db.address]).map(url)).apply((urls) => urls.join(',')),
  masterPassword: db.masterPassword,
  tags: stackTags,
});
const dnsRecords = new Dns('dns', { config: config.dns });
const workloads = new CutoverWorkloads('cutover', {
  prefix,
  region: config.region,
  kubeconfig: eks.kubeconfig,
  oidcProviderArn: eks.oidcProviderArn,
  oidcIssuer: eks.oidcIssuer,
  appNamespaces: config.appNamespaces,
  pgbouncer: config.pgbouncer,
  writerUrlParameterName: names.writerUrl,
  writerUrlParameterArn: secrets.writerUrlArn,
  kmsKeyArn: key.arn,
  tags: stackTags,
});
const recorderConfig = config.webhookRecorder;
const recorder = recorderConfig.enabled
  ? new WebhookRecorder('webhooks', {
      prefix,
      region: config.region,
      kmsKeyArn: key.arn,
      zoneId: dnsRecords.zoneId,
      ...recorderConfig,
      tags: stackTags,
    })
  : undefined;

/** The contract with any part allowed to be an Output: a field missing or mistyped here fails the compile. */
type Lifted<T> =
  | pulumi.Input<T>
  | (T extends readonly (infer E)[] ? Lifted<E>[] : T extends object ? { [K in keyof T]: Lifted<T[K]> } : never);
const outputs: { [K in keyof StackOutputs]: Lifted<StackOutputs[K]> } = {
  project: config.project,
  environment: config.environment,
  region: config.region,
  tags: stackTags,
  network: {
    vpcId: net.vpcId,
    vpcCidr: net.vpcCidr,
    vpcIpv6Cidr: net.vpcIpv6Cidr,
    availabilityZones: zones,
    publicSubnetIds: net.publicSubnetIds,
    privateSubnetIds: net.privateSubnetIds,
    databaseSubnetIds: net.databaseSubnetIds,
    natPublicIps: net.natPublicIps,
  },
  cluster: {
    name: eks.name,
    kubeconfig: eks.kubeconfig,
    nodeSecurityGroupId: eks.nodeSecurityGroupId,
    oidcProviderArn: eks.oidcProviderArn,
  },
  kms: { keyArn: key.arn },
  database: {
    identifier: db.identifier,
    arn: db.arn,
    endpoint: db.address,
    port: db.port,
    name: config.database.name,
    masterUsername: config.database.masterUsername,
    masterPasswordRef: `ssm:${names.masterPassword}`,
    sslMode: 'verify-full',
    engineVersion: config.database.engineVersion,
    instanceClass: config.database.instanceClass,
    parameterGroupName: db.parameterGroupName,
    subnetGroupName: db.subnetGroupName,
    securityGroupId: db.securityGroupId,
    replicas: db.cutoverReplicas,
  },
  reversePath: reverse?.output,
  source: { urlRef: `ssm:${names.sourceUrl}` },
  parameters: names,
  dns: { hostedZoneId: dnsRecords.zoneId, zoneName: config.dns.zoneName, privateZone: config.dns.privateZone, records: dnsRecords.records },
  pgbouncer: { namespace: workloads.namespace, deployment: workloads.deployment, service: workloads.service, port: workloads.port },
  app: { namespaces: config.appNamespaces },
  webhooks: recorder && {
    recorderUrl: recorder.recorderUrl,
    recorderTarget: recorder.recorderTarget,
    recorderTargetType: recorder.recorderTargetType,
    queueUrl: recorder.queueUrl,
    queueArn: recorder.queueArn,
    deadLetterQueueUrl: recorder.deadLetterQueueUrl,
    deadLetterQueueArn: recorder.deadLetterQueueArn,
    retentionSeconds: recorder.retentionSeconds,
  },
};

export const {
  project,
  environment,
  region,
  tags,
  network,
  cluster,
  kms,
  database,
  reversePath,
  source,
  parameters,
  dns,
  pgbouncer,
  app,
  webhooks,
} = outputs;
