/**
 * EKS through `@pulumi/eks` (a multi-language component: it creates the control plane, its IAM and
 * the OIDC provider in the eks provider plugin, not in this process). Node groups are EKS-managed:
 * an on-demand group for system workloads and a spot group spread over several instance types.
 */
import * as aws from '@pulumi/aws';
import * as eks from '@pulumi/eks';
import * as pulumi from '@pulumi/pulumi';
import { children } from './children.ts';
import type { AccessEntryConfig, StackConfig } from './config.ts';
import { assumedByService } from './iam.ts';
import { tagsFor } from './tags.ts';

export interface ClusterArgs {
  prefix: string;
  config: StackConfig['cluster'];
  vpcId: pulumi.Input<string>;
  publicSubnetIds: pulumi.Input<string>[];
  privateSubnetIds: pulumi.Input<string>[];
  kmsKeyArn: pulumi.Input<string>;
  tags: Record<string, string>;
}

const NODE_POLICIES = [
  'arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy',
  'arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy',
  'arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly',
  // Session Manager instead of SSH keys on the nodes.
  'arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore',
];

export class Cluster extends pulumi.ComponentResource {
  readonly name: pulumi.Output<string>;
  /** Secret: a kubeconfig (JSON text) that authenticates through `aws eks get-token`. */
  readonly kubeconfig: pulumi.Output<string>;
  /** The EKS-created cluster security group, which managed node groups (and so pods) use. */
  readonly nodeSecurityGroupId: pulumi.Output<string>;
  readonly oidcProviderArn: pulumi.Output<string>;
  /** Issuer host and path without `https://`, the prefix of IRSA trust-policy condition keys. */
  readonly oidcIssuer: pulumi.Output<string>;

  constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cutover:infra:Cluster', name, {}, opts);
    const child = children(this, name);
    const { config } = args;
    const publicEndpoint = config.publicAccessCidrs.length > 0;

    const cluster = new eks.Cluster(
      child.name('eks'),
      {
        name: args.prefix,
        version: config.kubernetesVersion,
        vpcId: args.vpcId,
        publicSubnetIds: args.publicSubnetIds,
        privateSubnetIds: args.privateSubnetIds,
        nodeAssociatePublicIpAddress: false,
        // Managed node groups below; with no default group the component's own node security group
        // is unused, and skipping it makes nodeSecurityGroupId the EKS cluster security group that
        // managed nodes actually carry (the one RDS must admit).
        skipDefaultNodeGroup: true,
        skipDefaultSecurityGroups: true,
        authenticationMode: eks.AuthenticationMode.Api,
        accessEntries: accessEntries(config.accessEntries),
        createOidcProvider: true,
        enabledClusterLogTypes: config.logTypes,
        endpointPrivateAccess: true,
        endpointPublicAccess: publicEndpoint,
        ...(publicEndpoint ? { publicAccessCidrs: config.publicAccessCidrs } : {}),
        encryptionConfigKeyArn: args.kmsKeyArn,
        tags: tagsFor(args.tags, args.prefix),
      },
      child.opts('eks'),
    );

    const nodeRole = new aws.iam.Role(
      child.name('nodes'),
      {
        assumeRolePolicy: assumedByService('ec2.amazonaws.com'),
        tags: tagsFor(args.tags, `${args.prefix}-nodes`),
      },
      child.opts('nodes'),
    );
    const attachments = NODE_POLICIES.map((policyArn) => {
      const attachment = `nodes-${policyArn.split('/').pop()}`;
      return new aws.iam.RolePolicyAttachment(child.name(attachment), { role: nodeRole.name, policyArn }, child.opts(attachment));
    });

    const nodeGroup = (
      groupName: string,
      group: {
        capacityType: 'ON_DEMAND' | 'SPOT';
        instanceTypes: string[];
        scale: { min: number; desired: number; max: number };
        labels: Record<string, string>;
      },
    ) =>
      new eks.ManagedNodeGroup(
        child.name(groupName),
        {
          cluster,
          nodeRole,
          // A prefix, not a fixed name: changing instance types replaces the group, and the new one
          // must come up (create-before-delete) while the old one still exists.
          nodeGroupNamePrefix: `${args.prefix}-${groupName}-`,
          subnetIds: args.privateSubnetIds,
          capacityType: group.capacityType,
          instanceTypes: group.instanceTypes,
          scalingConfig: { minSize: group.scale.min, desiredSize: group.scale.desired, maxSize: group.scale.max },
          // The cluster autoscaler owns desiredSize once nodes are running.
          ignoreScalingChanges: true,
          labels: group.labels,
          // IMDSv2 only: session-token metadata requests, so an SSRF in a pod cannot read the node
          // role's credentials with a plain GET.
          enableIMDSv2: true,
          tags: tagsFor(args.tags, `${args.prefix}-${groupName}`),
        },
        child.opts(groupName, { dependsOn: attachments }),
      );

    nodeGroup('system', {
      capacityType: 'ON_DEMAND',
      instanceTypes: [config.systemInstanceType],
      scale: config.systemNodes,
      labels: { 'node-role': 'system' },
    });
    nodeGroup('spot', {
      capacityType: 'SPOT',
      instanceTypes: config.spotInstanceTypes,
      scale: config.spotNodes,
      labels: { 'node-role': 'workload', lifecycle: 'spot' },
    });

    this.name = cluster.eksCluster.name;
    this.kubeconfig = pulumi.secret(cluster.kubeconfigJson);
    this.nodeSecurityGroupId = cluster.nodeSecurityGroupId;
    this.oidcProviderArn = cluster.oidcProviderArn;
    this.oidcIssuer = cluster.oidcIssuer;
    this.registerOutputs({ name: this.name, nodeSecurityGroupId: this.nodeSecurityGroupId, oidcProviderArn: this.oidcProviderArn });
  }
}

function accessEntries(entries: AccessEntryConfig[]): Record<string, eks.types.input.AccessEntryArgs> {
  return Object.fromEntries(
    entries.map((entry) => [
      // Keyed by the principal's own name: stable when entries are reordered in config.
      entry.principalArn.split('/').pop()!,
      {
        principalArn: entry.principalArn,
        accessPolicies: {
          [entry.access]: {
            policyArn: entry.policyArn,
            accessScope: entry.namespaces ? { type: 'namespace', namespaces: entry.namespaces } : { type: 'cluster' },
          },
        },
      },
    ]),
  );
}
