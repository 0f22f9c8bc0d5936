/**
 * RDS PostgreSQL, the cutover's target: private, encrypted under the stack key, ready for logical
 * replication from the legacy server, with the D-day read replicas named in advance.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import { type Children, children } from './children.ts';
import type { StackConfig } from './config.ts';
import type { ReplicaSpec } from './contract.ts';
import { assumedByService } from './iam.ts';
import { parameterGroupFamily, replicaIdentifier } from './naming.ts';
import { tagsFor } from './tags.ts';

export interface DatabaseArgs {
  identifier: string;
  config: StackConfig['database'];
  production: boolean;
  vpcId: pulumi.Input<string>;
  subnetIds: pulumi.Input<string>[];
  /** Only this security group (the EKS nodes') may reach 5432, plus config's migration CIDRs (and reverse-path.ts's rules while enabled). */
  clientSecurityGroupId: pulumi.Input<string>;
  /** The legacy source: the only place RDS may connect to (its subscription's workers). */
  source: { cidrs: string[]; port: number };
  kmsKeyArn: pulumi.Input<string>;
  zones: string[];
  tags: Record<string, string>;
}

const PORT = 5432;

/**
 * Logical replication from the legacy server needs a slot and a WAL sender per subscription, plus
 * one apply worker each; the same pools serve read replicas and table-sync workers during the copy.
 * Sized for several parallel subscriptions with room for the D-day replicas.
 */
const REPLICATION_PARAMETERS = [
  // Static: RDS applies it at the next reboot (the CLI's preflight checks it is live).
  { name: 'rds.logical_replication', value: '1', applyMethod: 'pending-reboot' },
  { name: 'rds.force_ssl', value: '1', applyMethod: 'immediate' },
  { name: 'max_replication_slots', value: '20', applyMethod: 'pending-reboot' },
  { name: 'max_wal_senders', value: '25', applyMethod: 'pending-reboot' },
  { name: 'max_logical_replication_workers', value: '10', applyMethod: 'pending-reboot' },
  { name: 'max_worker_processes', value: '24', applyMethod: 'pending-reboot' },
];

export class Database extends pulumi.ComponentResource {
  readonly identifier: pulumi.Output<string>;
  readonly arn: pulumi.Output<string>;
  readonly address: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;
  readonly parameterGroupName: pulumi.Output<string>;
  readonly subnetGroupName: pulumi.Output<string>;
  readonly securityGroupId: pulumi.Output<string>;
  /** Secret. */
  readonly masterPassword: pulumi.Output<string>;
  /** Hostnames of the replicas this stack manages (none while migrating). */
  readonly replicaAddresses: pulumi.Output<string>[];
  /** The replicas the CLI creates on D-day. */
  readonly cutoverReplicas: ReplicaSpec[];

  constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cutover:infra:Database', name, {}, opts);
    const child = children(this, name);
    const { config, production, identifier } = args;
    const tags = (resource: string) => tagsFor(args.tags, resource);

    // A name prefix with Pulumi's default create-before-delete: a family change (major upgrade)
    // replaces the group by first creating the new one, moving the instance onto it, and only then
    // deleting the old one, which by then is no longer in use. Value changes are in-place updates
    // and never touch the instance beyond "pending-reboot".
    const parameterGroup = new aws.rds.ParameterGroup(
      child.name('postgres'),
      {
        namePrefix: `${identifier}-`,
        family: parameterGroupFamily(config.engineVersion),
        description: `${identifier}: logical replication, TLS only`,
        parameters: REPLICATION_PARAMETERS,
        tags: tags(`${identifier}-params`),
      },
      child.opts('postgres'),
    );

    const subnetGroup = new aws.rds.SubnetGroup(
      child.name('postgres'),
      {
        name: identifier,
        subnetIds: args.subnetIds,
        tags: tags(`${identifier}-subnets`),
      },
      child.opts('postgres'),
    );

    const securityGroup = new aws.ec2.SecurityGroup(
      child.name('postgres'),
      {
        vpcId: args.vpcId,
        description: `${identifier}: PostgreSQL from the EKS nodes and the migration networks only`,
        // No inline egress: the provider then revokes AWS's default allow-all, and the one rule below
        // is all the group may send.
        tags: tags(`${identifier}-postgres`),
      },
      child.opts('postgres'),
    );
    new aws.vpc.SecurityGroupIngressRule(
      child.name('postgres-from-nodes'),
      {
        securityGroupId: securityGroup.id,
        referencedSecurityGroupId: args.clientSecurityGroupId,
        ipProtocol: 'tcp',
        fromPort: PORT,
        toPort: PORT,
        description: 'EKS nodes and pods',
        tags: tags(`${identifier}-from-nodes`),
      },
      child.opts('postgres-from-nodes'),
    );
    const cidrName = (cidr: string) => cidr.replace(/[./]/g, '-');
    config.migrationCidrs.forEach((cidr) => {
      new aws.vpc.SecurityGroupIngressRule(
        child.name(`postgres-from-${cidrName(cidr)}`),
        {
          securityGroupId: securityGroup.id,
          cidrIpv4: cidr,
          ipProtocol: 'tcp',
          fromPort: PORT,
          toPort: PORT,
          description: 'migration network path (legacy server / VPN)',
          tags: tags(`${identifier}-from-migration`),
        },
        child.opts(`postgres-from-${cidrName(cidr)}`),
      );
    });

    // The subscription's apply and table-sync workers connect from RDS to the source. Replies to
    // the connections the nodes and migration networks open come back through the group's
    // connection tracking, so this rule is the only outbound traffic the group needs. The source
    // opening connections to RDS gets no rule here: only the reverse replication after the switch
    // does that, through reverse-path.ts, which adds its own ingress while config enables it.
    args.source.cidrs.forEach((cidr) => {
      new aws.vpc.SecurityGroupEgressRule(
        child.name(`postgres-to-source-${cidrName(cidr)}`),
        {
          securityGroupId: securityGroup.id,
          cidrIpv4: cidr,
          ipProtocol: 'tcp',
          fromPort: args.source.port,
          toPort: args.source.port,
          description: 'logical replication: the subscription connects to the legacy source',
          tags: tags(`${identifier}-to-source`),
        },
        child.opts(`postgres-to-source-${cidrName(cidr)}`),
      );
    });

    // Letters and digits only: the password is embedded in connection URLs and PgBouncer's auth file.
    const password = new random.RandomPassword(child.name('master'), { length: 40, special: false }, child.opts('master'));

    const monitoringRoleArn = production ? this.monitoringRole(child, identifier, tags).arn : undefined;
    const observability = {
      performanceInsightsEnabled: production,
      ...(production ? { performanceInsightsKmsKeyId: args.kmsKeyArn, performanceInsightsRetentionPeriod: 7 } : {}),
      monitoringInterval: production ? 30 : 0,
      ...(monitoringRoleArn ? { monitoringRoleArn } : {}),
    };

    const instance = new aws.rds.Instance(
      child.name('postgres'),
      {
        identifier,
        engine: 'postgres',
        engineVersion: config.engineVersion,
        // The version is pinned in config; RDS must not move it underneath the stack.
        autoMinorVersionUpgrade: false,
        allowMajorVersionUpgrade: true,
        instanceClass: config.instanceClass,
        allocatedStorage: config.allocatedStorageGb,
        maxAllocatedStorage: config.maxAllocatedStorageGb,
        storageType: 'gp3',
        storageEncrypted: true,
        kmsKeyId: args.kmsKeyArn,
        dbName: config.name,
        username: config.masterUsername,
        password: password.result,
        port: PORT,
        dbSubnetGroupName: subnetGroup.name,
        vpcSecurityGroupIds: [securityGroup.id],
        parameterGroupName: parameterGroup.name,
        publiclyAccessible: false,
        multiAz: production,
        deletionProtection: production,
        skipFinalSnapshot: !production,
        ...(production ? { finalSnapshotIdentifier: `${identifier}-final` } : {}),
        backupRetentionPeriod: config.backupRetentionDays,
        backupWindow: '02:00-03:00',
        maintenanceWindow: 'sun:03:30-sun:04:30',
        copyTagsToSnapshot: true,
        iamDatabaseAuthenticationEnabled: true,
        caCertIdentifier: config.caCertIdentifier,
        enabledCloudwatchLogsExports: ['postgresql', 'upgrade'],
        applyImmediately: !production,
        ...observability,
        tags: tags(identifier),
      },
      child.opts('postgres', { protect: production }),
    );

    const replicas = Array.from({ length: config.replicaCount }, (_, i) => {
      const id = replicaIdentifier(identifier, i + 1);
      return new aws.rds.Instance(
        child.name(`replica-${i + 1}`),
        {
          identifier: id,
          replicateSourceDb: instance.identifier,
          instanceClass: config.replicaInstanceClass,
          availabilityZone: replicaZone(args.zones, i + 1),
          storageEncrypted: true,
          kmsKeyId: args.kmsKeyArn,
          vpcSecurityGroupIds: [securityGroup.id],
          parameterGroupName: parameterGroup.name,
          publiclyAccessible: false,
          autoMinorVersionUpgrade: false,
          iamDatabaseAuthenticationEnabled: true,
          caCertIdentifier: config.caCertIdentifier,
          skipFinalSnapshot: true,
          ...observability,
          tags: tags(id),
          // dbAdoptReplicas: the CLI created this replica on D-day under the same identifier; take
          // it into the stack instead of failing on "already exists".
        },
        child.opts(`replica-${i + 1}`, config.adoptReplicas ? { import: id } : undefined),
      );
    });

    this.cutoverReplicas = [];
    for (let n = config.replicaCount + 1; n <= config.cutoverReplicaCount; n++) {
      this.cutoverReplicas.push({
        identifier: replicaIdentifier(identifier, n),
        instanceClass: config.replicaInstanceClass,
        availabilityZone: replicaZone(args.zones, n),
        performanceInsights: production,
      });
    }

    this.identifier = instance.identifier;
    this.arn = instance.arn;
    this.address = instance.address;
    this.port = instance.port;
    this.parameterGroupName = parameterGroup.name;
    this.subnetGroupName = subnetGroup.name;
    this.securityGroupId = securityGroup.id;
    this.masterPassword = password.result;
    this.replicaAddresses = replicas.map((r) => r.address);
    this.registerOutputs({ identifier: this.identifier, address: this.address, parameterGroupName: this.parameterGroupName });
  }

  private monitoringRole(child: Children, identifier: string, tags: (resource: string) => Record<string, string>): aws.iam.Role {
    const role = new aws.iam.Role(
      child.name('rds-monitoring'),
      {
        assumeRolePolicy: assumedByService('monitoring.rds.amazonaws.com'),
        tags: tags(`${identifier}-monitoring`),
      },
      child.opts('rds-monitoring'),
    );
    new aws.iam.RolePolicyAttachment(
      child.name('rds-monitoring'),
      {
        role: role.name,
        policyArn: 'arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole',
      },
      child.opts('rds-monitoring'),
    );
    return role;
  }
}

/** Replica n goes to the zone after the writer's preferred one, round-robin. */
function replicaZone(zones: string[], n: number): string {
  return zones[n % zones.length]!;
}
