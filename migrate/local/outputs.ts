/**
 * Stack outputs for a cutover between two local servers (the rehearsal, the tests, the bench):
 * the same contract as a real stack, with AWS identifiers that say they are local and secrets kept
 * in 0600 files beside the servers.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StackOutputs } from '../../infra/contract.ts';
import type { PostgresServer } from './postgres-server.ts';

export interface LocalOutputsOptions {
  /** Where the secret files are written. */
  dir: string;
  source: PostgresServer;
  target: PostgresServer;
  database: string;
  /** PgBouncer admin console URL, when a local PgBouncer fronts the app. */
  pgbouncer?: { port: number; adminUrl: string };
  webhooks?: StackOutputs['webhooks'];
}

function secretFile(dir: string, name: string, value: string): string {
  const path = join(dir, name);
  writeFileSync(path, value, { mode: 0o600 });
  return `file:${path}`;
}

export function localOutputs(options: LocalOutputsOptions): StackOutputs {
  const { dir, source, target, database } = options;
  const local = (what: string) => `local-${what}`;
  const record = (name: string) => ({
    name: `${name}.rehearsal.test`,
    type: 'A' as const,
    ttl: 300,
    cutoverTtl: 60,
    legacy: { values: ['127.0.0.1'] },
    cutover: { values: ['127.0.0.2'] },
    cutoverType: 'A' as const,
  });
  return {
    project: 'cutover',
    environment: 'rehearsal',
    region: 'local',
    tags: { environment: 'rehearsal', project: 'cutover', 'managed-by': 'migrate-rehearse' },
    network: {
      vpcId: local('vpc'),
      vpcCidr: '10.0.0.0/16',
      vpcIpv6Cidr: '',
      availabilityZones: [local('az-a')],
      publicSubnetIds: [local('subnet-public-a')],
      privateSubnetIds: [local('subnet-private-a')],
      databaseSubnetIds: [local('subnet-db-a')],
      natPublicIps: [],
    },
    cluster: {
      name: local('cluster'),
      kubeconfig: 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n',
      nodeSecurityGroupId: local('sg-nodes'),
      oidcProviderArn: 'arn:aws:iam::000000000000:oidc-provider/local',
    },
    kms: { keyArn: 'arn:aws:kms:local:000000000000:key/local' },
    database: {
      identifier: 'rehearsal-target',
      arn: 'arn:aws:rds:local:000000000000:db:rehearsal-target',
      endpoint: target.host,
      port: target.port,
      name: database,
      masterUsername: target.user,
      masterPasswordRef: secretFile(dir, 'target.password', target.password),
      sslMode: 'disable',
      engineVersion: String(target.major),
      instanceClass: 'local',
      parameterGroupName: local('pg'),
      subnetGroupName: local('subnets'),
      securityGroupId: local('sg-db'),
      replicas: [{ identifier: 'rehearsal-target-replica-1', instanceClass: 'local', performanceInsights: false }],
    },
    source: { urlRef: secretFile(dir, 'source.url', source.url(database)) },
    parameters: {
      prefix: '/cutover/rehearsal',
      writerUrl: '/cutover/rehearsal/database/writer-url',
      readerUrls: '/cutover/rehearsal/database/reader-urls',
      sourceUrl: '/cutover/rehearsal/database/source-url',
      masterPassword: '/cutover/rehearsal/database/master-password',
    },
    dns: {
      hostedZoneId: 'ZLOCALREHEARSAL',
      zoneName: 'rehearsal.test',
      privateZone: true,
      records: { app: record('app'), webhooks: record('webhooks') },
    },
    pgbouncer: {
      namespace: 'pgbouncer',
      deployment: 'pgbouncer',
      service: 'pgbouncer',
      port: options.pgbouncer?.port ?? 6432,
      ...(options.pgbouncer ? { adminUrlRef: secretFile(dir, 'pgbouncer-admin.url', options.pgbouncer.adminUrl) } : {}),
    },
    app: { namespaces: ['app'] },
    ...(options.webhooks ? { webhooks: options.webhooks } : {}),
  };
}
