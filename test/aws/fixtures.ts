/** Stack outputs with realistic AWS values, and a fake clock, for the AWS step tests. */
import { type StackOutputs, stackOutputsSchema } from '../../infra/contract.ts';

export const ACCOUNT = '123456789012';
export const REGION = 'eu-west-1';
export const KMS_KEY = `arn:aws:kms:${REGION}:${ACCOUNT}:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0`;
export const ZONE_ID = 'Z0123456789ABCDEFGHIJ';
export const ALB_ZONE_ID = 'Z32O12XQLNTSW2';

export function awsOutputs(overrides: Partial<StackOutputs> = {}): StackOutputs {
  return stackOutputsSchema.parse({
    project: 'billing',
    environment: 'production',
    region: REGION,
    tags: { project: 'billing', environment: 'production', 'managed-by': 'pulumi' },
    network: {
      vpcId: 'vpc-0a1b2c3d4e5f60718',
      vpcCidr: '10.40.0.0/16',
      vpcIpv6Cidr: '',
      availabilityZones: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
      publicSubnetIds: ['subnet-0aa00000000000001'],
      privateSubnetIds: ['subnet-0bb00000000000001'],
      databaseSubnetIds: ['subnet-0cc00000000000001', 'subnet-0cc00000000000002'],
    },
    cluster: {
      name: 'billing-production',
      kubeconfig: '{"apiVersion":"v1","kind":"Config"}',
      nodeSecurityGroupId: 'sg-0123456789abcdef0',
      oidcProviderArn: `arn:aws:iam::${ACCOUNT}:oidc-provider/oidc.eks.${REGION}.amazonaws.com/id/ABCDEF0123456789`,
    },
    kms: { keyArn: KMS_KEY },
    database: {
      identifier: 'billing-production',
      arn: `arn:aws:rds:${REGION}:${ACCOUNT}:db:billing-production`,
      endpoint: `billing-production.c1a2b3c4d5e6.${REGION}.rds.amazonaws.com`,
      port: 5432,
      name: 'billing',
      masterUsername: 'billing_admin',
      masterPasswordRef: 'ssm:/billing/production/database/master-password',
      sslMode: 'verify-full',
      engineVersion: '17.4',
      instanceClass: 'db.r6g.xlarge',
      parameterGroupName: 'billing-production-pg17',
      subnetGroupName: 'billing-production-db',
      securityGroupId: 'sg-0fedcba9876543210',
      replicas: [
        {
          identifier: 'billing-production-replica-1',
          instanceClass: 'db.r6g.large',
          availabilityZone: 'eu-west-1b',
          performanceInsights: true,
        },
        {
          identifier: 'billing-production-replica-2',
          instanceClass: 'db.r6g.large',
          availabilityZone: 'eu-west-1c',
          performanceInsights: false,
        },
      ],
    },
    source: { urlRef: 'ssm:/billing/production/database/source-url' },
    parameters: {
      prefix: '/billing/production',
      writerUrl: '/billing/production/database/writer-url',
      readerUrls: '/billing/production/database/reader-urls',
      sourceUrl: '/billing/production/database/source-url',
      masterPassword: '/billing/production/database/master-password',
      appPassword: '/billing/production/database/app-password',
    },
    dns: {
      hostedZoneId: ZONE_ID,
      zoneName: 'billing.example.com',
      privateZone: false,
      records: {
        app: {
          name: 'app.billing.example.com',
          type: 'CNAME',
          ttl: 3600,
          cutoverTtl: 60,
          legacy: { values: ['lb.legacy-dc.example.net'] },
          cutover: {
            alias: {
              dnsName: 'k8s-app-ingress-0123456789.eu-west-1.elb.amazonaws.com',
              hostedZoneId: ALB_ZONE_ID,
              evaluateTargetHealth: false,
            },
          },
          cutoverType: 'A',
        },
        webhooks: {
          name: 'webhooks.billing.example.com',
          type: 'A',
          ttl: 300,
          cutoverTtl: 60,
          legacy: { values: ['198.51.100.10'] },
          cutover: { values: ['203.0.113.20', '203.0.113.21'] },
          cutoverType: 'A',
        },
      },
    },
    pgbouncer: { namespace: 'pgbouncer', deployment: 'pgbouncer', service: 'pgbouncer', port: 6432 },
    app: { namespaces: ['billing'] },
    webhooks: {
      recorderUrl: 'https://recorder.billing.example.com',
      recorderTarget: { values: ['d-abc123.execute-api.eu-west-1.amazonaws.com'] },
      recorderTargetType: 'CNAME',
      queueUrl: `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/billing-production-webhooks`,
      queueArn: `arn:aws:sqs:${REGION}:${ACCOUNT}:billing-production-webhooks`,
      deadLetterQueueUrl: `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/billing-production-webhooks-dlq`,
      deadLetterQueueArn: `arn:aws:sqs:${REGION}:${ACCOUNT}:billing-production-webhooks-dlq`,
      retentionSeconds: 1_209_600,
    },
    ...overrides,
  });
}

/** A clock that only moves when the code under test sleeps. */
export function fakeClock(start = Date.UTC(2025, 5, 1, 22, 0, 0)) {
  let now = start;
  const sleeps: number[] = [];
  return {
    now: () => now,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
    sleeps,
    elapsedMs: () => now - start,
  };
}
