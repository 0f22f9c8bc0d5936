/**
 * The stack-outputs contract: what `pulumi stack output --json --show-secrets` returns for this
 * program, and what the migrate CLI reads. Both halves import this file and nothing else from each
 * other, so a field renamed here breaks the compile of whichever half forgot.
 *
 * This module must stay free of @pulumi imports: the CLI loads it without the Pulumi SDK.
 */
import { z } from 'zod';

/**
 * Where a secret value lives, never the value itself: `ssm:/name` (SecureString, decrypted on read),
 * `env:NAME` or `file:/absolute/path`. The real stack points at Parameter Store; the local rehearsal
 * points at files it writes with mode 0600.
 */
export const secretRefSchema = z
  .string()
  .regex(/^(ssm:\/.+|env:[A-Za-z_][A-Za-z0-9_]*|file:\/.+)$/, 'must be ssm:/<parameter>, env:<VAR> or file:/<path>');
export type SecretRef = z.infer<typeof secretRefSchema>;

const nonEmpty = z.string().min(1);

/**
 * What the stack first writes into the parameters only operators can fill (the legacy source URL,
 * the app role's password on RDS); `ignoreChanges` then keeps whatever they put there. A secret
 * that still reads as one of these was never set, which the CLI can report before anything changes
 * instead of writing it into a connection URL.
 */
export const UNSET_PARAMETER_VALUES = {
  sourceUrl: 'postgresql://source-url-not-set.invalid:5432/set-it-with-aws-ssm-put-parameter',
  appPassword: 'app-password-not-set--set-it-with-aws-ssm-put-parameter',
} as const;

/** One DNS record value: plain values (A/AAAA/CNAME/TXT) or a Route53 alias. */
export const recordValueSchema = z.union([
  z.object({ values: z.array(nonEmpty).min(1) }),
  z.object({
    alias: z.object({ dnsName: nonEmpty, hostedZoneId: nonEmpty, evaluateTargetHealth: z.boolean().default(false) }),
  }),
]);
export type RecordValue = z.infer<typeof recordValueSchema>;

/** A record the cutover moves: what it points at before (legacy) and after (cutover). */
export const movableRecordSchema = z.object({
  name: nonEmpty,
  type: z.enum(['A', 'AAAA', 'CNAME']),
  ttl: z.number().int().positive(),
  /** TTL to lower the record to the day before, so the switch propagates fast. */
  cutoverTtl: z.number().int().positive(),
  legacy: recordValueSchema,
  cutover: recordValueSchema,
  /** Record type once switched (an alias to a load balancer is an A record even if legacy was a CNAME). */
  cutoverType: z.enum(['A', 'AAAA', 'CNAME']),
});
export type MovableRecord = z.infer<typeof movableRecordSchema>;

export const replicaSpecSchema = z.object({
  /** Deterministic: `<db identifier>-replica-<n>`, so a later `pulumi up` can adopt what the CLI created. */
  identifier: nonEmpty,
  instanceClass: nonEmpty,
  availabilityZone: nonEmpty.optional(),
  performanceInsights: z.boolean(),
});
export type ReplicaSpec = z.infer<typeof replicaSpecSchema>;

export const stackOutputsSchema = z.object({
  project: nonEmpty,
  environment: nonEmpty,
  region: nonEmpty,
  tags: z.record(z.string(), z.string()),
  network: z.object({
    vpcId: nonEmpty,
    vpcCidr: nonEmpty,
    vpcIpv6Cidr: z.string(),
    availabilityZones: z.array(nonEmpty).min(1),
    publicSubnetIds: z.array(nonEmpty).min(1),
    privateSubnetIds: z.array(nonEmpty).min(1),
    databaseSubnetIds: z.array(nonEmpty).min(1),
    /** Public IPs RDS's outbound connections come from (the NAT gateways' Elastic IPs): the legacy firewall must allow-list them. Empty when the source is reached over a private link. */
    natPublicIps: z.array(nonEmpty).default([]),
  }),
  cluster: z.object({
    name: nonEmpty,
    /** Secret output: a kubeconfig document (YAML or JSON text). */
    kubeconfig: nonEmpty,
    nodeSecurityGroupId: nonEmpty,
    oidcProviderArn: nonEmpty,
  }),
  kms: z.object({ keyArn: nonEmpty }),
  database: z.object({
    identifier: nonEmpty,
    arn: nonEmpty,
    /** Hostname of the writer endpoint (no port). */
    endpoint: nonEmpty,
    port: z.number().int().positive(),
    name: nonEmpty,
    masterUsername: nonEmpty,
    masterPasswordRef: secretRefSchema,
    sslMode: z.enum(['disable', 'require', 'verify-full']),
    engineVersion: nonEmpty,
    instanceClass: nonEmpty,
    parameterGroupName: nonEmpty,
    subnetGroupName: nonEmpty,
    securityGroupId: nonEmpty,
    /** Replicas the CLI creates on D-day (the stack keeps its own replica count at 0 while migrating). */
    replicas: z.array(replicaSpecSchema),
  }),
  /**
   * How the legacy server reaches RDS after the switch, for reverse replication: the legacy side's
   * subscription connects here as the master user, so every write the app makes on RDS also lands
   * on the legacy server and rollback loses nothing. Its libpq conninfo is
   * `host=<host> [hostaddr=<hostaddr>] port=<port> sslmode=<sslMode> [sslrootcert=<RDS CA bundle on
   * the legacy server>] user=<database.masterUsername> password=… dbname=<database.name>`
   * (migrate/postgres/subscription-reach.ts `reverseConninfo`). Absent: the stack has no reverse
   * path (config `cutover:reversePath.enabled` is false, e.g. after the cutover), and the
   * reverse-replication steps refuse before anything is frozen. `postgres.reverse-reach` proves the
   * path from the legacy server itself.
   */
  reversePath: z
    .object({
      /**
       * private-link: the forward path's VPN gateway, transit gateway or peering; RDS's security group
       * admits the legacy server's private addresses. load-balancer: the source is reached over NAT,
       * so an internet-facing NLB on static Elastic IPs, admitting only the allow-listed addresses,
       * passes TCP through to RDS (TLS is end to end, between libpq and RDS). local: the rehearsal.
       */
      via: z.enum(['private-link', 'load-balancer', 'local']),
      /**
       * The name the server certificate is verified against (the RDS endpoint); also the address
       * dialled when there is no hostaddr. Keep it in the conninfo even with hostaddr: verify-full
       * checks the certificate against it.
       */
      host: nonEmpty,
      /**
       * The address dialled instead of resolving host (load-balancer: the NLB's static IP in the first
       * zone, which the legacy firewall must let out): libpq's hostaddr. Absent otherwise.
       */
      hostaddr: z.string().optional(),
      /** The port dialled: the NLB's listener (the database port) or RDS's own. */
      port: z.number().int().positive(),
      /**
       * libpq sslmode of the legacy side's connection: verify-full on a real stack (RDS refuses
       * sessions without TLS, rds.force_ssl=1), which needs the RDS CA bundle on the legacy server.
       */
      sslMode: z.enum(['disable', 'require', 'verify-ca', 'verify-full']),
      /**
       * load-balancer only: the NLB's target group, left empty by the stack because RDS's private
       * address moves on failover and reboot; `rds.register-reverse-target` registers the current one.
       */
      targetGroupArn: z.string().optional(),
    })
    .optional(),
  /** The legacy (self-managed) PostgreSQL the cutover moves away from. */
  source: z.object({
    urlRef: secretRefSchema,
    /** The source URL as the target reaches it (e.g. through a VPN); defaults to urlRef. */
    subscriptionUrlRef: secretRefSchema.optional(),
  }),
  /** Parameter Store names (not values). */
  parameters: z.object({
    prefix: nonEmpty,
    writerUrl: nonEmpty,
    readerUrls: nonEmpty,
    sourceUrl: nonEmpty,
    masterPassword: nonEmpty,
    appPassword: nonEmpty,
  }),
  dns: z.object({
    hostedZoneId: nonEmpty,
    zoneName: nonEmpty,
    privateZone: z.boolean(),
    records: z.object({ app: movableRecordSchema, webhooks: movableRecordSchema }),
  }),
  pgbouncer: z.object({
    namespace: nonEmpty,
    deployment: nonEmpty,
    service: nonEmpty,
    port: z.number().int().positive(),
    /** Admin console (`pgbouncer` database) when the operator can reach it; absent means restart-only. */
    adminUrlRef: secretRefSchema.optional(),
  }),
  app: z.object({ namespaces: z.array(nonEmpty).min(1) }),
  /** Present when the webhook recorder is enabled in config. */
  webhooks: z
    .object({
      recorderUrl: nonEmpty,
      /** What the webhook record points at while recording (the recorder's custom domain target). */
      recorderTarget: recordValueSchema,
      recorderTargetType: z.enum(['A', 'AAAA', 'CNAME']),
      queueUrl: nonEmpty,
      queueArn: nonEmpty,
      deadLetterQueueUrl: nonEmpty,
      deadLetterQueueArn: nonEmpty,
      retentionSeconds: z.number().int().positive(),
    })
    .optional(),
});

export type StackOutputs = z.infer<typeof stackOutputsSchema>;
