/**
 * The legacy server's way in to RDS, for reverse replication once the app writes to RDS: the
 * legacy side's subscription connects to RDS, so every write made after the switch also lands on the
 * legacy server and a rollback loses nothing. RDS stays private either way; the path depends on how
 * the stack already reaches the source (config `sourceNetwork.via`):
 *
 * - over a private link (VPN gateway, transit gateway, peering) the link already carries the
 *   source's packets both ways: RDS's security group admits the legacy server's private addresses
 *   on the database port, and the legacy side dials the RDS endpoint itself;
 * - over the internet (nat) there is no way in at all, so this builds one, as narrow as it can be:
 *   an internet-facing Network Load Balancer on static Elastic IPs, whose own security group admits
 *   only the allow-list, passing TCP through to RDS (PostgreSQL negotiates TLS inside its own
 *   protocol, and RDS refuses any session without it: rds.force_ssl=1 in database.ts). The legacy
 *   side dials the load balancer's address (libpq hostaddr) and verifies RDS's certificate against
 *   the endpoint name (host, sslmode=verify-full). RDS's private address moves on failover and
 *   reboot, so the target group is left empty here: the CLI registers RDS's current address
 *   (rds.register-reverse-target) and re-registers it when it moves.
 *
 * Created only while config `reversePath.enabled` is true; disabled, `pulumi up` removes all of it.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { children } from './children.ts';
import type { SourceNetworkConfig } from './config.ts';
import type { StackOutputs } from './contract.ts';
import { tagsFor } from './tags.ts';

type ReverseOutput = NonNullable<StackOutputs['reversePath']>;

export interface ReversePathArgs {
  prefix: string;
  /** The forward path; nat means the source is reached over the internet. */
  via: SourceNetworkConfig['via'];
  /** The only addresses allowed in: the legacy server's (public for nat, private over a link). */
  allowedCidrs: string[];
  vpcId: pulumi.Input<string>;
  /** Zone names in AZ-index order, and the public subnet of each, in the same order. */
  zones: string[];
  publicSubnetIds: pulumi.Input<string>[];
  database: {
    /** The RDS endpoint name: what the legacy side verifies the certificate against. */
    address: pulumi.Input<string>;
    port: pulumi.Input<number>;
    securityGroupId: pulumi.Input<string>;
  };
  tags: Record<string, string>;
}

const cidrName = (cidr: string) => cidr.replace(/[./]/g, '-');

export class ReversePath extends pulumi.ComponentResource {
  /** The contract's `reversePath` output. */
  readonly output: pulumi.Output<ReverseOutput>;

  constructor(name: string, args: ReversePathArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cutover:infra:ReversePath', name, {}, opts);
    const child = children(this, name);
    const tags = (resource: string) => tagsFor(args.tags, `${args.prefix}-${resource}`);
    const { database } = args;
    const ingress = (childName: string, rule: Omit<aws.vpc.SecurityGroupIngressRuleArgs, 'ipProtocol' | 'fromPort' | 'toPort'>) =>
      new aws.vpc.SecurityGroupIngressRule(
        child.name(childName),
        { ...rule, ipProtocol: 'tcp', fromPort: database.port, toPort: database.port },
        child.opts(childName),
      );

    if (args.via !== 'nat') {
      for (const cidr of args.allowedCidrs) {
        ingress(`postgres-from-${cidrName(cidr)}`, {
          securityGroupId: database.securityGroupId,
          cidrIpv4: cidr,
          description: 'reverse replication: the legacy server subscribes to RDS over the private link',
          tags: tags('reverse-from-source'),
        });
      }
      this.output = pulumi.output({
        via: 'private-link' as const,
        host: database.address,
        port: database.port,
        sslMode: 'verify-full' as const,
      });
      this.registerOutputs({ output: this.output });
      return;
    }

    const securityGroup = new aws.ec2.SecurityGroup(
      child.name('nlb'),
      {
        vpcId: args.vpcId,
        description: `${args.prefix}: reverse replication, the legacy server's allow-list to RDS only`,
        // No inline rules: the provider then revokes AWS's default allow-all egress, and the rules
        // below are everything the load balancer may receive and send.
        tags: tags('reverse-nlb'),
      },
      child.opts('nlb'),
    );
    for (const cidr of args.allowedCidrs) {
      ingress(`nlb-from-${cidrName(cidr)}`, {
        securityGroupId: securityGroup.id,
        cidrIpv4: cidr,
        description: 'reverse replication: the legacy server connects to the load balancer',
        tags: tags('reverse-nlb-from-source'),
      });
    }
    // Forwarded connections and health checks both go to RDS on the database port, nowhere else.
    new aws.vpc.SecurityGroupEgressRule(
      child.name('nlb-to-postgres'),
      {
        securityGroupId: securityGroup.id,
        referencedSecurityGroupId: database.securityGroupId,
        ipProtocol: 'tcp',
        fromPort: database.port,
        toPort: database.port,
        description: 'reverse replication and health checks: to RDS only',
        tags: tags('reverse-nlb-to-postgres'),
      },
      child.opts('nlb-to-postgres'),
    );
    // The target group does not preserve client addresses, so RDS sees the load balancer's own
    // addresses and admits it by its security group: never the internet directly.
    ingress('postgres-from-nlb', {
      securityGroupId: database.securityGroupId,
      referencedSecurityGroupId: securityGroup.id,
      description: 'reverse replication: the allow-listed load balancer in front of RDS',
      tags: tags('reverse-from-nlb'),
    });

    // Static addresses the legacy firewall can allow-list for egress and libpq can dial as hostaddr.
    const eips = args.zones.map(
      (zone) => new aws.ec2.Eip(child.name(`nlb-${zone}`), { domain: 'vpc', tags: tags(`reverse-nlb-${zone}`) }, child.opts(`nlb-${zone}`)),
    );
    const loadBalancer = new aws.lb.LoadBalancer(
      child.name('nlb'),
      {
        loadBalancerType: 'network',
        internal: false,
        ipAddressType: 'ipv4',
        securityGroups: [securityGroup.id],
        subnetMappings: args.zones.map((_, i) => ({ subnetId: args.publicSubnetIds[i]!, allocationId: eips[i]!.id })),
        // RDS is in one zone at a time: every zone's address must reach it, so the one the legacy
        // side dials keeps working whichever zone RDS fails over to.
        enableCrossZoneLoadBalancing: true,
        // It is removed by `pulumi up` once the cutover no longer needs it.
        enableDeletionProtection: false,
        tags: tags('reverse-nlb'),
      },
      child.opts('nlb'),
    );
    const targetGroup = new aws.lb.TargetGroup(
      child.name('postgres'),
      {
        targetType: 'ip',
        protocol: 'TCP',
        port: database.port,
        vpcId: args.vpcId,
        preserveClientIp: 'false',
        // The old address after a failover is dead anyway: drop it fast, and its connections with it.
        deregistrationDelay: 30,
        connectionTermination: true,
        healthCheck: { enabled: true, protocol: 'TCP', port: 'traffic-port', interval: 10, healthyThreshold: 2, unhealthyThreshold: 2 },
        tags: tags('reverse-postgres'),
      },
      child.opts('postgres'),
    );
    new aws.lb.Listener(
      child.name('postgres'),
      {
        loadBalancerArn: loadBalancer.arn,
        protocol: 'TCP',
        port: database.port,
        defaultActions: [{ type: 'forward', targetGroupArn: targetGroup.arn }],
        tags: tags('reverse-postgres'),
      },
      child.opts('postgres'),
    );

    this.output = pulumi.output({
      via: 'load-balancer' as const,
      host: database.address,
      hostaddr: eips[0]!.publicIp,
      port: database.port,
      sslMode: 'verify-full' as const,
      targetGroupArn: targetGroup.arn,
    });
    this.registerOutputs({ output: this.output });
  }
}
