/**
 * The one place stack config is read. Every key is typed, defaulted and validated here, and a bad
 * value stops `pulumi up`/`preview` before any resource is registered, with the full key name
 * (`cutover:availabilityZoneCount`) in the message so the operator knows which line of
 * Pulumi.<stack>.yaml to fix. The README's config table mirrors this file.
 */
import * as pulumi from '@pulumi/pulumi';
import { z } from 'zod';
import { MAX_AZS, overlapsV4, parseV4 } from './cidr.ts';
import { recordValueSchema } from './contract.ts';

export const SIZES = ['small', 'medium', 'large'] as const;
export type Size = (typeof SIZES)[number];

interface NodeGroupScale {
  min: number;
  desired: number;
  max: number;
}

/** What `size` picks when the specific key is not set. */
const SIZE_PRESETS: Record<
  Size,
  {
    systemInstanceType: string;
    systemNodes: NodeGroupScale;
    spotInstanceTypes: string[];
    spotNodes: NodeGroupScale;
    dbInstanceClass: string;
    dbAllocatedStorageGb: number;
  }
> = {
  small: {
    systemInstanceType: 't3.large',
    systemNodes: { min: 1, desired: 2, max: 3 },
    spotInstanceTypes: ['t3.large', 't3a.large', 'm5.large', 'm6i.large'],
    spotNodes: { min: 0, desired: 1, max: 4 },
    dbInstanceClass: 'db.t4g.medium',
    dbAllocatedStorageGb: 50,
  },
  medium: {
    systemInstanceType: 'm6i.large',
    systemNodes: { min: 2, desired: 2, max: 4 },
    spotInstanceTypes: ['m6i.xlarge', 'm6a.xlarge', 'm5.xlarge', 'm5a.xlarge'],
    spotNodes: { min: 1, desired: 2, max: 10 },
    dbInstanceClass: 'db.r6g.large',
    dbAllocatedStorageGb: 200,
  },
  large: {
    systemInstanceType: 'm6i.xlarge',
    systemNodes: { min: 3, desired: 3, max: 6 },
    spotInstanceTypes: ['m6i.2xlarge', 'm6a.2xlarge', 'm5.2xlarge', 'm7i.2xlarge'],
    spotNodes: { min: 2, desired: 4, max: 20 },
    dbInstanceClass: 'db.r6g.2xlarge',
    dbAllocatedStorageGb: 500,
  },
};

export const ALL_CLUSTER_LOG_TYPES = ['api', 'audit', 'authenticator', 'controllerManager', 'scheduler'] as const;

const ACCESS_POLICIES = {
  'cluster-admin': 'AmazonEKSClusterAdminPolicy',
  admin: 'AmazonEKSAdminPolicy',
  edit: 'AmazonEKSEditPolicy',
  view: 'AmazonEKSViewPolicy',
} as const;

const accessEntrySchema = z.object({
  principalArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:(role|user)\/.+/, 'must be an IAM role or user ARN'),
  access: z.enum(Object.keys(ACCESS_POLICIES) as [keyof typeof ACCESS_POLICIES, ...(keyof typeof ACCESS_POLICIES)[]]),
  /** Limits the policy to these namespaces; cluster-wide when absent. */
  namespaces: z.array(z.string().min(1)).min(1).optional(),
});
export type AccessEntryConfig = z.infer<typeof accessEntrySchema> & { policyArn: string };

const scaleSchema = z
  .object({ min: z.number().int().min(0), desired: z.number().int().min(0), max: z.number().int().min(1) })
  .refine((s) => s.min <= s.desired && s.desired <= s.max, 'needs min <= desired <= max');

const recordSchema = z.object({
  /** Fully qualified record name, inside the zone. */
  name: z.string().min(1),
  type: z.enum(['A', 'AAAA', 'CNAME']),
  legacy: recordValueSchema,
  cutover: recordValueSchema,
  cutoverType: z.enum(['A', 'AAAA', 'CNAME']).optional(),
});
const dnsSchema = z.object({
  zoneName: z.string().min(1),
  privateZone: z.boolean().default(false),
  ttl: z.number().int().positive().default(300),
  cutoverTtl: z.number().int().positive().default(60),
  app: recordSchema,
  webhooks: recordSchema,
});
export type DnsConfig = z.infer<typeof dnsSchema>;
export type RecordConfig = z.infer<typeof recordSchema>;

const recorderSchema = z.object({
  enabled: z.boolean().default(false),
  /**
   * Serve the recorder under the webhook record's own name (ACM certificate + API Gateway custom
   * domain), so pointing that record at the recorder keeps TLS and Host valid for the senders.
   */
  customDomain: z.boolean().default(true),
  /** Content types the recorder accepts (one mapping template each); others get 415 and the sender retries. */
  contentTypes: z
    .array(z.string().regex(/^[\w.+-]+\/[\w.+-]+$/, 'must be a media type like application/json'))
    .min(1)
    .optional(),
  /**
   * Receives before SQS itself moves a message to the dead-letter queue. High on purpose: every
   * dry-run sample and every resumed replay counts as a receive, and webhooks.replay dead-letters
   * failures itself, with the reason; redrive is only the backstop.
   */
  maxReceiveCount: z.number().int().min(1).max(1000).default(100),
  visibilityTimeoutSeconds: z.number().int().min(0).max(43200).default(120),
});

const cidrSchema = z.string().refine(
  (c) => {
    try {
      parseV4(c);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'must be an IPv4 CIDR block with no host bits set', abort: true },
);

export const SOURCE_VIAS = ['nat', 'vpn-gateway', 'transit-gateway', 'peering'] as const;

/**
 * How RDS, the logical-replication subscriber, reaches the legacy PostgreSQL: its apply and sync
 * workers connect out to these CIDRs and port. Each `via` carries only the id it needs, and a
 * stray id is refused (strict), so a half-edited config cannot leave a second path configured.
 */
const sourceBase = {
  /** The legacy server's addresses as seen from the VPC (public IPs for nat, private ones otherwise). */
  cidrs: z
    .array(cidrSchema.refine((c) => parseV4(c).prefix >= 8, 'must be a specific network (/8 or longer), never the whole internet'))
    .min(1, 'needs at least one CIDR'),
  port: z.number().int().min(1).max(65535).default(5432),
};
const awsId = (prefix: string, what: string) =>
  z
    .string({ message: `is required with this via: the ${what} id (${prefix}-...)` })
    .regex(new RegExp(`^${prefix}-[0-9a-f]{8,17}$`), `must be a ${what} id like ${prefix}-0123456789abcdef0`);
const sourceNetworkSchema = z.discriminatedUnion(
  'via',
  [
    z.strictObject({ ...sourceBase, via: z.literal('nat') }),
    z.strictObject({ ...sourceBase, via: z.literal('vpn-gateway'), vpnGatewayId: awsId('vgw', 'virtual private gateway') }),
    z.strictObject({ ...sourceBase, via: z.literal('transit-gateway'), transitGatewayId: awsId('tgw', 'transit gateway') }),
    z.strictObject({ ...sourceBase, via: z.literal('peering'), peeringConnectionId: awsId('pcx', 'VPC peering connection') }),
  ],
  { message: `via must be one of ${SOURCE_VIAS.join(', ')}` },
);
export type SourceNetworkConfig = z.infer<typeof sourceNetworkSchema>;

/**
 * The legacy server's way back in to RDS, for reverse replication after the switch (reverse-path.ts).
 * Only while the cutover needs it: `enabled: false` and `pulumi up` remove it. `allowedCidrs` are the
 * addresses the legacy server connects from (public ones for via nat, private ones over a link);
 * the source CIDRs when absent, since those are the legacy server's own addresses.
 */
const reversePathSchema = z.strictObject({
  enabled: z.boolean({ message: 'is required: true while the cutover needs the legacy server to reach RDS, false to remove the path' }),
  allowedCidrs: z
    .array(
      cidrSchema.refine(
        (c) => parseV4(c).prefix >= 16,
        'must be a narrow network (/16 or longer): the legacy servers, never a wide range of the internet',
      ),
    )
    .min(1, 'needs at least one CIDR (leave it out to use sourceNetwork.cidrs)')
    .optional(),
});
export type ReversePathConfig = { enabled: false } | { enabled: true; allowedCidrs: string[] };

export const DEFAULT_RECORDER_CONTENT_TYPES = [
  'application/json',
  'application/x-www-form-urlencoded',
  'text/plain',
  'application/xml',
  'text/xml',
  'application/octet-stream',
];

export interface StackConfig {
  project: string;
  environment: string;
  region: string;
  production: boolean;
  size: Size;
  network: {
    vpcCidr: string;
    /** Absent: up to 3, fewer where the region has fewer (see zones.ts). */
    availabilityZoneCount?: number;
    /** Pinned AZ names; when absent the program takes the first `availabilityZoneCount` available. */
    availabilityZones?: string[];
    natGateways: 'single' | 'per-az';
    flowLogs: boolean;
    flowLogRetentionDays: number;
  };
  cluster: {
    kubernetesVersion: string;
    publicAccessCidrs: string[];
    accessEntries: AccessEntryConfig[];
    logTypes: string[];
    systemInstanceType: string;
    systemNodes: NodeGroupScale;
    spotInstanceTypes: string[];
    spotNodes: NodeGroupScale;
  };
  database: {
    engineVersion: string;
    instanceClass: string;
    allocatedStorageGb: number;
    maxAllocatedStorageGb: number;
    name: string;
    masterUsername: string;
    backupRetentionDays: number;
    caCertIdentifier: string;
    migrationCidrs: string[];
    replicaCount: number;
    cutoverReplicaCount: number;
    replicaInstanceClass: string;
    adoptReplicas: boolean;
  };
  parameterPrefix: string;
  sourceNetwork: SourceNetworkConfig;
  reversePath: ReversePathConfig;
  dns: DnsConfig;
  appNamespaces: string[];
  pgbouncer: { namespace: string; image: string; replicas: number; awsCliImage: string };
  webhookRecorder:
    | { enabled: false }
    | {
        enabled: true;
        /** The webhook record's name when the recorder has a custom domain. */
        customDomain?: string;
        contentTypes: string[];
        maxReceiveCount: number;
        visibilityTimeoutSeconds: number;
      };
}

/** Raised for any invalid stack config value; the message starts with the full key. */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    problem: string,
  ) {
    super(`Stack config ${key}: ${problem}. Fix it in Pulumi.${pulumi.getStack()}.yaml (pulumi config set ${key} ...).`);
  }
}

export function loadConfig(): StackConfig {
  const project = pulumi.getProject();
  const config = new pulumi.Config();
  const fullKey = (key: string) => `${project}:${key}`;

  /** A scalar: a string as written, a number or boolean as the YAML value's text. */
  function read<T extends z.ZodType>(key: string, schema: T): z.output<T> | undefined {
    const raw = config.get(key);
    if (raw === undefined) return undefined;
    let value: unknown = raw;
    if (schema instanceof z.ZodNumber || schema instanceof z.ZodBoolean) {
      try {
        value = JSON.parse(raw);
      } catch {
        throw new ConfigError(fullKey(key), `'${raw}' is not a valid value`);
      }
    }
    return validate(key, schema, value);
  }
  /** A list or an object, through the config API's own JSON reading. */
  function readObject<T extends z.ZodType>(key: string, schema: T): z.output<T> | undefined {
    let value: unknown;
    try {
      value = config.getObject<unknown>(key);
    } catch {
      throw new ConfigError(fullKey(key), `'${config.get(key)}' is not a valid list/object`);
    }
    return value === undefined ? undefined : validate(key, schema, value);
  }
  function validate<T extends z.ZodType>(key: string, schema: T, value: unknown): z.output<T> {
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
      throw new ConfigError(fullKey(key), `${issue?.message ?? 'is invalid'}${where} (got ${JSON.stringify(value)})`);
    }
    return parsed.data;
  }
  const check = (ok: boolean, key: string, problem: string) => {
    if (!ok) throw new ConfigError(fullKey(key), problem);
  };

  const environment = read('environment', z.string().regex(/^[a-z][a-z0-9-]{1,15}$/, 'must be 2-16 lower-case letters, digits or dashes'));
  if (environment === undefined) throw new ConfigError(fullKey('environment'), 'is required (e.g. staging or prod)');
  const region = new pulumi.Config('aws').get('region');
  if (!region) throw new ConfigError('aws:region', 'is required (e.g. eu-west-1)');

  const production = read('production', z.boolean()) ?? false;
  const size = read('size', z.enum(SIZES, { message: `must be one of ${SIZES.join(', ')}` })) ?? 'small';
  const preset = SIZE_PRESETS[size];

  const vpcCidr = read('vpcCidr', cidrSchema) ?? '10.0.0.0/16';
  const vpcPrefix = parseV4(vpcCidr).prefix;
  check(
    vpcPrefix >= 16 && vpcPrefix <= 20,
    'vpcCidr',
    `prefix /${vpcPrefix} is outside /16../20 (AWS allows /16 at most; the subnet layout needs /20 at least)`,
  );

  const availabilityZones = readObject(
    'availabilityZones',
    z
      .array(z.string().regex(/^[a-z]{2}-[a-z]+-\d[a-z]$/, 'must be AZ names like eu-west-1a'))
      .min(1)
      .max(MAX_AZS),
  );
  const availabilityZoneCount = read(
    'availabilityZoneCount',
    z.number().int().min(1, 'must be at least 1').max(MAX_AZS, `must be at most ${MAX_AZS}`),
  );
  if (availabilityZones && availabilityZoneCount !== undefined)
    check(
      availabilityZones.length === availabilityZoneCount,
      'availabilityZoneCount',
      `is ${availabilityZoneCount} but availabilityZones pins ${availabilityZones.length} zones`,
    );
  for (const az of availabilityZones ?? []) check(az.startsWith(region), 'availabilityZones', `${az} is not in region ${region}`);

  const natGateways = read('natGateways', z.enum(['single', 'per-az'])) ?? (production ? 'per-az' : 'single');

  const accessEntries = (readObject('clusterAccessEntries', z.array(accessEntrySchema)) ?? []).map((entry) => ({
    ...entry,
    policyArn: `arn:aws:eks::aws:cluster-access-policy/${ACCESS_POLICIES[entry.access]}`,
  }));

  const engineVersion = read('dbEngineVersion', z.string().regex(/^\d+(\.\d+)?$/, 'must be a PostgreSQL version like 16.8')) ?? '16.8';
  const instanceClass =
    read('dbInstanceClass', z.string().regex(/^db\./, 'must be an RDS class like db.r6g.large')) ?? preset.dbInstanceClass;
  const allocatedStorageGb = read('dbAllocatedStorageGb', z.number().int().min(20).max(65536)) ?? preset.dbAllocatedStorageGb;
  const maxAllocatedStorageGb = read('dbMaxAllocatedStorageGb', z.number().int().max(65536)) ?? allocatedStorageGb * 4;
  check(
    maxAllocatedStorageGb > allocatedStorageGb,
    'dbMaxAllocatedStorageGb',
    `must exceed dbAllocatedStorageGb (${allocatedStorageGb}) for storage autoscaling`,
  );
  const backupRetentionDays =
    read('dbBackupRetentionDays', z.number().int().min(1, 'must be at least 1 (read replicas need backups)').max(35)) ??
    (production ? 14 : 3);
  check(
    !production || backupRetentionDays >= 14,
    'dbBackupRetentionDays',
    `is ${backupRetentionDays}; production stacks keep at least 14 days`,
  );
  const replicaCount = read('dbReplicaCount', z.number().int().min(0).max(15)) ?? 0;
  const cutoverReplicaCount = read('dbCutoverReplicaCount', z.number().int().min(0).max(15)) ?? replicaCount;
  check(
    cutoverReplicaCount >= replicaCount,
    'dbCutoverReplicaCount',
    `(${cutoverReplicaCount}) is below dbReplicaCount (${replicaCount}); it is the total readers wanted after cutover`,
  );

  const sourceNetwork = readObject('sourceNetwork', sourceNetworkSchema);
  if (!sourceNetwork)
    throw new ConfigError(
      fullKey('sourceNetwork'),
      `is required: how RDS reaches the legacy source ({cidrs, port, via: ${SOURCE_VIAS.join(' | ')}})`,
    );
  for (const cidr of sourceNetwork.cidrs)
    check(!overlapsV4(cidr, vpcCidr), 'sourceNetwork', `cidrs: ${cidr} overlaps vpcCidr ${vpcCidr}; the source must be outside the VPC`);

  const reverse = readObject('reversePath', reversePathSchema) ?? { enabled: false };
  const allowedCidrs = reverse.allowedCidrs ?? sourceNetwork.cidrs;
  for (const cidr of allowedCidrs)
    check(
      !overlapsV4(cidr, vpcCidr),
      'reversePath',
      `allowedCidrs: ${cidr} overlaps vpcCidr ${vpcCidr}; list the legacy server's addresses, outside the VPC`,
    );
  const reversePath: ReversePathConfig = reverse.enabled ? { enabled: true, allowedCidrs } : { enabled: false };

  const dns = readObject('dns', dnsSchema);
  if (!dns) throw new ConfigError(fullKey('dns'), 'is required: the hosted zone and the app and webhook records');
  const zone = dns.zoneName.replace(/\.$/, '');
  for (const which of ['app', 'webhooks'] as const) {
    const name = dns[which].name.replace(/\.$/, '');
    check(name === zone || name.endsWith(`.${zone}`), 'dns', `${which}.name ${name} is not inside zone ${zone}`);
  }

  const recorder = readObject('webhookRecorder', recorderSchema) ?? recorderSchema.parse({});

  const numberOrDefault = (key: string, fallback: number, min: number) => read(key, z.number().int().min(min)) ?? fallback;
  const cidrList = (key: string) => readObject(key, z.array(cidrSchema)) ?? [];
  const publicAccessCidrs = cidrList('clusterPublicAccessCidrs');
  check(
    !publicAccessCidrs.includes('0.0.0.0/0'),
    'clusterPublicAccessCidrs',
    'must not contain 0.0.0.0/0; list the operator networks, or none for a private-only endpoint',
  );
  const migrationCidrs = cidrList('dbMigrationCidrs');
  check(
    !migrationCidrs.some((c) => parseV4(c).prefix < 8),
    'dbMigrationCidrs',
    'must be specific networks (/8 or longer), never the whole internet',
  );

  return {
    project,
    environment,
    region,
    production,
    size,
    network: {
      vpcCidr,
      availabilityZoneCount,
      availabilityZones,
      natGateways,
      flowLogs: read('flowLogs', z.boolean()) ?? production,
      flowLogRetentionDays: numberOrDefault('flowLogRetentionDays', production ? 365 : 30, 1),
    },
    cluster: {
      kubernetesVersion: read('kubernetesVersion', z.string().regex(/^1\.\d+$/, 'must be a Kubernetes minor like 1.33')) ?? '1.33',
      publicAccessCidrs,
      accessEntries,
      logTypes:
        readObject('clusterLogTypes', z.array(z.enum(ALL_CLUSTER_LOG_TYPES))) ??
        (production ? [...ALL_CLUSTER_LOG_TYPES] : ['api', 'audit']),
      systemInstanceType: read('systemInstanceType', z.string().min(1)) ?? preset.systemInstanceType,
      systemNodes: readObject('systemNodes', scaleSchema) ?? preset.systemNodes,
      spotInstanceTypes:
        readObject(
          'spotInstanceTypes',
          z.array(z.string().min(1)).min(2, 'needs at least 2 types so a spot shortage in one does not empty the group'),
        ) ?? preset.spotInstanceTypes,
      spotNodes: readObject('spotNodes', scaleSchema) ?? preset.spotNodes,
    },
    database: {
      engineVersion,
      instanceClass,
      allocatedStorageGb,
      maxAllocatedStorageGb,
      name: read('dbName', z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, 'must be a lower-case PostgreSQL identifier')) ?? 'app',
      masterUsername:
        read('dbMasterUsername', z.string().regex(/^[a-z][a-z0-9_]{0,15}$/, 'must be a lower-case identifier up to 16 characters')) ??
        'app_admin',
      backupRetentionDays,
      caCertIdentifier: read('dbCaCertIdentifier', z.string().min(1)) ?? 'rds-ca-rsa2048-g1',
      migrationCidrs,
      replicaCount,
      cutoverReplicaCount,
      replicaInstanceClass:
        read('dbReplicaInstanceClass', z.string().regex(/^db\./, 'must be an RDS class like db.r6g.large')) ?? instanceClass,
      adoptReplicas: read('dbAdoptReplicas', z.boolean()) ?? false,
    },
    sourceNetwork,
    reversePath,
    parameterPrefix:
      read('parameterPrefix', z.string().regex(/^(\/[A-Za-z0-9_.-]+)+$/, 'must look like /team/app/env')) ?? `/${project}/${environment}`,
    dns: { ...dns, zoneName: zone },
    appNamespaces: readObject(
      'appNamespaces',
      z.array(z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be Kubernetes namespace names')).min(1),
    ) ?? ['app'],
    pgbouncer: {
      namespace: read('pgbouncerNamespace', z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)) ?? 'pgbouncer',
      image: read('pgbouncerImage', z.string().min(1)) ?? 'edoburu/pgbouncer:v1.24.1-p1',
      awsCliImage: read('awsCliImage', z.string().min(1)) ?? 'public.ecr.aws/aws-cli/aws-cli:2.27.50',
      replicas: numberOrDefault('pgbouncerReplicas', production ? 2 : 1, 1),
    },
    webhookRecorder: recorder.enabled
      ? {
          enabled: true,
          customDomain: recorder.customDomain ? dns.webhooks.name.replace(/\.$/, '') : undefined,
          contentTypes: recorder.contentTypes ?? DEFAULT_RECORDER_CONTENT_TYPES,
          maxReceiveCount: recorder.maxReceiveCount,
          visibilityTimeoutSeconds: recorder.visibilityTimeoutSeconds,
        }
      : { enabled: false },
  };
}
