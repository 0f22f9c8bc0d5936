/**
 * The database tier's one way out: to the legacy PostgreSQL, by the path config names. Routes are
 * static and list exactly the source's CIDRs; nothing here propagates routes from a gateway, because
 * a propagated 0.0.0.0/0 (or anything the far side advertises) would be a way out nobody reviewed.
 */
import * as aws from '@pulumi/aws';
import type * as pulumi from '@pulumi/pulumi';
import type { SourceNetworkConfig } from './config.ts';

type RouteTarget = Pick<aws.types.input.ec2.RouteTableRoute, 'natGatewayId' | 'gatewayId' | 'transitGatewayId' | 'vpcPeeringConnectionId'>;

export interface SourcePath {
  /** The route target for a database subnet whose zone leaves through `nat` (used only for `via: nat`). */
  target(nat: pulumi.Input<string>): RouteTarget;
  /** What must exist before a route can point at the target. */
  dependsOn: pulumi.Resource[];
}

export interface SourcePathArgs {
  vpcId: pulumi.Input<string>;
  databaseSubnetIds: pulumi.Input<string>[];
  tags: Record<string, string>;
}

/**
 * Creates what a route to the source needs besides the route itself. A VGW or a TGW only carries a
 * VPC's traffic once attached to it, and both attachments belong to the VPC's owner, i.e. here. A
 * peering connection must already be active: which side requests and which accepts depends on the
 * accounts, so it is made outside the stack (README).
 */
export function sourcePath(
  name: string,
  opts: pulumi.CustomResourceOptions,
  source: SourceNetworkConfig,
  args: SourcePathArgs,
): SourcePath {
  switch (source.via) {
    case 'nat':
      return { target: (nat) => ({ natGatewayId: nat }), dependsOn: [] };
    case 'vpn-gateway': {
      const attachment = new aws.ec2.VpnGatewayAttachment(name, { vpcId: args.vpcId, vpnGatewayId: source.vpnGatewayId }, opts);
      return { target: () => ({ gatewayId: source.vpnGatewayId }), dependsOn: [attachment] };
    }
    case 'transit-gateway': {
      // One ENI per database subnet: the TGW returns the source's replies into the zone they left from.
      const attachment = new aws.ec2transitgateway.VpcAttachment(
        name,
        {
          transitGatewayId: source.transitGatewayId,
          vpcId: args.vpcId,
          subnetIds: args.databaseSubnetIds,
          tags: args.tags,
        },
        opts,
      );
      return { target: () => ({ transitGatewayId: source.transitGatewayId }), dependsOn: [attachment] };
    }
    case 'peering':
      return { target: () => ({ vpcPeeringConnectionId: source.peeringConnectionId }), dependsOn: [] };
  }
}

/** One IPv4 route per source CIDR, all to the same target. */
export function sourceRoutes(source: SourceNetworkConfig, target: RouteTarget): aws.types.input.ec2.RouteTableRoute[] {
  return source.cidrs.map((cidrBlock) => ({ cidrBlock, ...target }));
}
