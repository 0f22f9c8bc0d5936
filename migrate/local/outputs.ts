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
  return serverOutputs({
    environment: 'rehearsal',
    target: {
      host: target.host,
      port: target.port,
      user: target.user,
      database,
      sslMode: 'disable',
      version: String(target.major),
      passwordRef: secretFile(dir, 'target.password', target.password),
    },
    sourceUrlRef: secretFile(dir, 'source.url', source.url(database)),
    ...(options.pgbouncer
      ? { pgbouncer: { port: options.pgbouncer.port, adminUrlRef: secretFile(dir, 'pgbouncer-admin.url', options.pgbouncer.adminUrl) } }
      : {}),
    webhooks: options.webhooks,
  });
}

export interface ServerOutputsOptions {
  /** The stack name the CLI files journals under. */
  environment: string;
  target: {
    host: string;
    port: number;
    user: string;
    database: string;
    sslMode: 'disable' | 'require' | 'verify-full';
    version: string;
    passwordRef: string;
  };
  sourceUrlRef: string;
  pgbouncer?: { port: number; adminUrlRef?: string };
  webhooks?: StackOutputs['webhooks'];
}

/**
 * The outputs contract for two PostgreSQL servers and nothing else: AWS and Kubernetes identifiers
 * say they are local, and secrets stay references (the rehearsal's 0600 files, or `migrate outputs`'
 * env:/file: references).
 */
export function serverOutputs(options: ServerOutputsOptions): StackOutputs {
  const { environment, target } = options;
  const local = (what: string) => `local-${what}`;
  const record = (name: string) => ({
    name: `${name}.${environment}.test`,
    type: 'A' as const,
    ttl: 300,
    cutoverTtl: 60,
    legacy: { values: ['127.0.0.1'] },
    cutover: { values: ['127.0.0.2'] },
    cutoverType: 'A' as const,
  });
  return {
    project: 'cutover',
    environment,
    region: 'local',
    tags: { environment, project: 'cutover', 'managed-by': 'migrate-rehearse' },
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
      identifier: `${environment}-target`,
      arn: `arn:aws:rds:local:000000000000:db:${environment}-target`,
      endpoint: target.host,
      port: target.port,
      name: target.database,
      masterUsername: target.user,
      masterPasswordRef: target.passwordRef,
      sslMode: target.sslMode,
      engineVersion: target.version,
      instanceClass: 'local',
      parameterGroupName: local('pg'),
      subnetGroupName: local('subnets'),
      securityGroupId: local('sg-db'),
      replicas: [{ identifier: `${environment}-target-replica-1`, instanceClass: 'local', performanceInsights: false }],
    },
    // Both servers are on this machine: the source's subscription dials the target directly.
    reversePath: { via: 'local', host: target.host, port: target.port, sslMode: target.sslMode },
    source: { urlRef: options.sourceUrlRef },
    parameters: {
      prefix: `/cutover/${environment}`,
      writerUrl: `/cutover/${environment}/database/writer-url`,
      readerUrls: `/cutover/${environment}/database/reader-urls`,
      sourceUrl: `/cutover/${environment}/database/source-url`,
      masterPassword: `/cutover/${environment}/database/master-password`,
      appPassword: `/cutover/${environment}/database/app-password`,
    },
    dns: {
      hostedZoneId: 'ZLOCALREHEARSAL',
      zoneName: `${environment}.test`,
      privateZone: true,
      records: { app: record('app'), webhooks: record('webhooks') },
    },
    pgbouncer: {
      namespace: 'pgbouncer',
      deployment: 'pgbouncer',
      service: 'pgbouncer',
      port: options.pgbouncer?.port ?? 6432,
      ...(options.pgbouncer?.adminUrlRef ? { adminUrlRef: options.pgbouncer.adminUrlRef } : {}),
    },
    app: { namespaces: ['app'] },
    ...(options.webhooks ? { webhooks: options.webhooks } : {}),
  };
}
