/**
 * Dual-stack VPC: per AZ a public, a private (nodes) and a database subnet, each with an IPv4 block
 * and an IPv6 /64 derived from the AZ's index (cidr.ts), so a later AZ only appends. The database
 * tier's only way out is a route to the legacy source's CIDRs (source-routes.ts).
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { type Children, children } from './children.ts';
import { ipv4SubnetBlocks, ipv6SubnetBlocks } from './cidr.ts';
import type { SourceNetworkConfig } from './config.ts';
import { assumedByService, policyDocument } from './iam.ts';
import { sourcePath, sourceRoutes } from './source-routes.ts';
import { tagsFor } from './tags.ts';

export interface NetworkArgs {
  prefix: string;
  region: string;
  vpcCidr: string;
  /** Zone names in AZ-index order (zones.ts). */
  zones: string[];
  natGateways: 'single' | 'per-az';
  flowLogs: boolean;
  flowLogRetentionDays: number;
  /** How the database subnets reach the legacy source. */
  source: SourceNetworkConfig;
  tags: Record<string, string>;
}

export class Network extends pulumi.ComponentResource {
  readonly vpcId: pulumi.Output<string>;
  readonly vpcCidr: pulumi.Output<string>;
  readonly vpcIpv6Cidr: pulumi.Output<string>;
  readonly publicSubnetIds: pulumi.Output<string>[];
  readonly privateSubnetIds: pulumi.Output<string>[];
  readonly databaseSubnetIds: pulumi.Output<string>[];
  /** The NAT gateways' Elastic IPs when the source is reached through them, else empty. */
  readonly natPublicIps: pulumi.Output<string>[];

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cutover:infra:Network', name, {}, opts);
    const child = children(this, name);
    const tags = (resource: string, extra?: Record<string, string>) => tagsFor(args.tags, `${args.prefix}-${resource}`, extra);

    const vpc = new aws.ec2.Vpc(
      child.name('vpc'),
      {
        cidrBlock: args.vpcCidr,
        assignGeneratedIpv6CidrBlock: true,
        enableDnsSupport: true,
        enableDnsHostnames: true,
        tags: tags('vpc'),
      },
      child.opts('vpc'),
    );
    const igw = new aws.ec2.InternetGateway(child.name('igw'), { vpcId: vpc.id, tags: tags('igw') }, child.opts('igw'));
    // Private subnets reach the IPv6 internet without being reachable from it.
    const eigw = new aws.ec2.EgressOnlyInternetGateway(child.name('eigw'), { vpcId: vpc.id, tags: tags('eigw') }, child.opts('eigw'));

    const publicRoutes = new aws.ec2.RouteTable(
      child.name('public'),
      {
        vpcId: vpc.id,
        routes: [
          { cidrBlock: '0.0.0.0/0', gatewayId: igw.id },
          { ipv6CidrBlock: '::/0', gatewayId: igw.id },
        ],
        tags: tags('public'),
      },
      child.opts('public'),
    );

    const subnet = (tier: 'public' | 'private' | 'database', zone: string, index: number, extra: Record<string, string>) =>
      new aws.ec2.Subnet(
        child.name(`${tier}-${zone}`),
        {
          vpcId: vpc.id,
          availabilityZone: zone,
          cidrBlock: ipv4SubnetBlocks(args.vpcCidr, index)[tier],
          ipv6CidrBlock: vpc.ipv6CidrBlock.apply((block) => ipv6SubnetBlocks(block, index)[tier]),
          assignIpv6AddressOnCreation: true,
          mapPublicIpOnLaunch: false,
          tags: tags(`${tier}-${zone}`, { tier, ...extra }),
        },
        child.opts(`${tier}-${zone}`),
      );

    const publicSubnets = args.zones.map((zone, i) => subnet('public', zone, i, { 'kubernetes.io/role/elb': '1' }));
    const privateSubnets = args.zones.map((zone, i) => subnet('private', zone, i, { 'kubernetes.io/role/internal-elb': '1' }));
    const databaseSubnets = args.zones.map((zone, i) => subnet('database', zone, i, {}));

    publicSubnets.forEach((s, i) => {
      new aws.ec2.RouteTableAssociation(
        child.name(`public-${args.zones[i]}`),
        { subnetId: s.id, routeTableId: publicRoutes.id },
        child.opts(`public-${args.zones[i]}`),
      );
    });

    // One NAT per AZ survives an AZ outage and avoids cross-AZ data charges; a single one is cheaper.
    const natZones = args.natGateways === 'per-az' ? args.zones : args.zones.slice(0, 1);
    const eips = natZones.map(
      (zone) => new aws.ec2.Eip(child.name(`nat-${zone}`), { domain: 'vpc', tags: tags(`nat-${zone}`) }, child.opts(`nat-${zone}`)),
    );
    const nats = natZones.map(
      (zone, i) =>
        new aws.ec2.NatGateway(
          child.name(`nat-${zone}`),
          { allocationId: eips[i]!.id, subnetId: publicSubnets[i]!.id, tags: tags(`nat-${zone}`) },
          child.opts(`nat-${zone}`, { dependsOn: [igw] }),
        ),
    );
    const natFor = (zoneIndex: number) => nats[args.natGateways === 'per-az' ? zoneIndex : 0]!;
    const privateRouteTables = privateSubnets.map((s, i) => {
      const zone = args.zones[i]!;
      const nat = natFor(i);
      const table = new aws.ec2.RouteTable(
        child.name(`private-${zone}`),
        {
          vpcId: vpc.id,
          routes: [
            { cidrBlock: '0.0.0.0/0', natGatewayId: nat.id },
            { ipv6CidrBlock: '::/0', egressOnlyGatewayId: eigw.id },
          ],
          tags: tags(`private-${zone}`),
        },
        child.opts(`private-${zone}`),
      );
      new aws.ec2.RouteTableAssociation(
        child.name(`private-${zone}`),
        { subnetId: s.id, routeTableId: table.id },
        child.opts(`private-${zone}`),
      );
      return table;
    });

    // RDS is the logical-replication subscriber: its workers connect out to the legacy source, and
    // nowhere else. One table per zone, like the private tier, so with a NAT per zone each zone
    // leaves through its own; the routes are inline, so the table is authoritative and a route
    // added by hand is removed by the next `pulumi up`.
    const path = sourcePath(child.name('source'), child.opts('source'), args.source, {
      vpcId: vpc.id,
      databaseSubnetIds: databaseSubnets.map((s) => s.id),
      tags: tags('source'),
    });
    const databaseRouteTables = databaseSubnets.map((s, i) => {
      const zone = args.zones[i]!;
      const table = new aws.ec2.RouteTable(
        child.name(`database-${zone}`),
        {
          vpcId: vpc.id,
          routes: sourceRoutes(args.source, path.target(natFor(i).id)),
          tags: tags(`database-${zone}`),
        },
        child.opts(`database-${zone}`, { dependsOn: path.dependsOn }),
      );
      new aws.ec2.RouteTableAssociation(
        child.name(`database-${zone}`),
        { subnetId: s.id, routeTableId: table.id },
        child.opts(`database-${zone}`),
      );
      return table;
    });

    // Image pulls from ECR and backups to S3 stay off the NAT (cost) and off the internet.
    new aws.ec2.VpcEndpoint(
      child.name('s3'),
      {
        vpcId: vpc.id,
        serviceName: `com.amazonaws.${args.region}.s3`,
        vpcEndpointType: 'Gateway',
        routeTableIds: [...privateRouteTables, ...databaseRouteTables].map((t) => t.id),
        tags: tags('s3'),
      },
      child.opts('s3'),
    );

    if (args.flowLogs) this.flowLogs(child, vpc, args, tags);

    this.vpcId = vpc.id;
    this.vpcCidr = vpc.cidrBlock;
    this.vpcIpv6Cidr = vpc.ipv6CidrBlock;
    this.publicSubnetIds = publicSubnets.map((s) => s.id);
    this.privateSubnetIds = privateSubnets.map((s) => s.id);
    this.databaseSubnetIds = databaseSubnets.map((s) => s.id);
    this.natPublicIps = args.source.via === 'nat' ? eips.map((e) => e.publicIp) : [];
    this.registerOutputs({
      vpcId: this.vpcId,
      publicSubnetIds: this.publicSubnetIds,
      privateSubnetIds: this.privateSubnetIds,
      databaseSubnetIds: this.databaseSubnetIds,
    });
  }

  private flowLogs(child: Children, vpc: aws.ec2.Vpc, args: NetworkArgs, tags: (resource: string) => Record<string, string>): void {
    const group = new aws.cloudwatch.LogGroup(
      child.name('flow-logs'),
      {
        name: `/vpc/${args.prefix}/flow-logs`,
        retentionInDays: args.flowLogRetentionDays,
        tags: tags('flow-logs'),
      },
      child.opts('flow-logs'),
    );
    const role = new aws.iam.Role(
      child.name('flow-logs'),
      {
        assumeRolePolicy: assumedByService('vpc-flow-logs.amazonaws.com'),
        tags: tags('flow-logs'),
      },
      child.opts('flow-logs'),
    );
    new aws.iam.RolePolicy(
      child.name('flow-logs'),
      {
        role: role.id,
        policy: group.arn.apply((arn) =>
          policyDocument([
            {
              Effect: 'Allow',
              Action: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogGroups', 'logs:DescribeLogStreams'],
              Resource: [arn, `${arn}:*`],
            },
          ]),
        ),
      },
      child.opts('flow-logs'),
    );
    new aws.ec2.FlowLog(
      child.name('vpc'),
      {
        vpcId: vpc.id,
        trafficType: 'ALL',
        logDestinationType: 'cloud-watch-logs',
        logDestination: group.arn,
        iamRoleArn: role.arn,
        tags: tags('flow-logs'),
      },
      child.opts('vpc'),
    );
  }
}
