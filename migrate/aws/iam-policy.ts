/**
 * The least-privilege IAM policy the migrate CLI needs against one stack: every AWS call the CLI
 * makes, scoped to the stack's own resources. test/aws/iam-policy.test.ts scans the CLI source for
 * every command it sends and fails when one is missing here, or when this grants something unused.
 *
 * Kubernetes access is not IAM: the EKS token is a presigned sts:GetCallerIdentity, and what the
 * identity may do in the cluster is decided by its EKS access entry / aws-auth mapping.
 */
import type { StackOutputs } from '../../infra/contract.ts';
import { dbInstanceArn, hostedZoneArn, parameterArn, parameterGroupArn, stackAccount } from './arns.ts';
import { fqdn } from './record-sets.ts';

export interface PolicyStatement {
  Sid: string;
  Effect: 'Allow';
  Action: string[];
  Resource: string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}
export interface PolicyDocument {
  Version: '2012-10-17';
  Statement: PolicyStatement[];
}

/** SDK package → IAM service prefix, for every client the CLI uses. */
export const IAM_PREFIX: Record<string, string> = {
  '@aws-sdk/client-elastic-load-balancing-v2': 'elasticloadbalancing',
  '@aws-sdk/client-rds': 'rds',
  '@aws-sdk/client-route-53': 'route53',
  '@aws-sdk/client-ssm': 'ssm',
  '@aws-sdk/client-sqs': 'sqs',
  '@aws-sdk/client-sts': 'sts',
};

/**
 * Permissions no command names but AWS checks on the caller: tags given at create time
 * (rds:AddTagsToResource) and the KMS operations RDS and Parameter Store perform with the
 * caller's identity on the stack key.
 */
export const IMPLIED_ACTIONS = [
  'rds:AddTagsToResource',
  'kms:Decrypt',
  'kms:Encrypt',
  'kms:GenerateDataKey',
  'kms:DescribeKey',
  'kms:CreateGrant',
];

/** Every `ssm:/…` secret reference in the outputs: the CLI reads (and decrypts) them. */
function secretParameters(outputs: StackOutputs): string[] {
  const refs = [
    outputs.database.masterPasswordRef,
    outputs.source.urlRef,
    outputs.source.subscriptionUrlRef,
    outputs.pgbouncer.adminUrlRef,
  ];
  return refs.filter((ref): ref is string => !!ref && ref.startsWith('ssm:')).map((ref) => ref.slice(4));
}

export function cliIamPolicy(outputs: StackOutputs): PolicyDocument {
  const { partition, region } = stackAccount(outputs);
  const replicas = outputs.database.replicas.map((r) => dbInstanceArn(outputs, r.identifier));
  const zone = hostedZoneArn(outputs, outputs.dns.hostedZoneId);
  const prefixArn = `${parameterArn(outputs, outputs.parameters.prefix)}/*`;
  const records = Object.values(outputs.dns.records).map((r) => fqdn(r.name).slice(0, -1));
  const statements: PolicyStatement[] = [
    // Describe with a db-instance-id filter is authorised against db:*; it returns metadata only.
    { Sid: 'DescribeDatabases', Effect: 'Allow', Action: ['rds:DescribeDBInstances'], Resource: [dbInstanceArn(outputs, '*')] },
    {
      Sid: 'CreateReadReplicas',
      Effect: 'Allow',
      Action: ['rds:CreateDBInstanceReadReplica', 'rds:AddTagsToResource'],
      Resource: [outputs.database.arn, ...replicas, parameterGroupArn(outputs, outputs.database.parameterGroupName)],
    },
    // Undo deletes replicas only; the writer is not in this list.
    ...(replicas.length > 0
      ? [{ Sid: 'DeleteReadReplicas', Effect: 'Allow' as const, Action: ['rds:DeleteDBInstance'], Resource: replicas }]
      : []),
    {
      Sid: 'StackParameters',
      Effect: 'Allow',
      Action: ['ssm:GetParameter', 'ssm:GetParameterHistory', 'ssm:PutParameter', 'ssm:LabelParameterVersion'],
      Resource: [prefixArn],
    },
    ...(secretParameters(outputs).some((name) => !name.startsWith(`${outputs.parameters.prefix}/`))
      ? [
          {
            Sid: 'SecretReferences',
            Effect: 'Allow' as const,
            Action: ['ssm:GetParameter'],
            Resource: secretParameters(outputs).map((n) => parameterArn(outputs, n)),
          },
        ]
      : []),
    {
      Sid: 'StackKeyThroughServices',
      Effect: 'Allow',
      Action: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey', 'kms:CreateGrant'],
      Resource: [outputs.kms.keyArn],
      // SQS too when the webhook queues are encrypted with the stack key.
      Condition: {
        StringEquals: { 'kms:ViaService': ['ssm', 'rds', ...(outputs.webhooks ? ['sqs'] : [])].map((s) => `${s}.${region}.amazonaws.com`) },
      },
    },
    { Sid: 'ReadZone', Effect: 'Allow', Action: ['route53:GetHostedZone', 'route53:ListResourceRecordSets'], Resource: [zone] },
    {
      Sid: 'ChangeMovableRecords',
      Effect: 'Allow',
      Action: ['route53:ChangeResourceRecordSets'],
      Resource: [zone],
      Condition: {
        'ForAllValues:StringEquals': {
          'route53:ChangeResourceRecordSetsNormalizedRecordNames': records,
          'route53:ChangeResourceRecordSetsRecordTypes': ['A', 'AAAA', 'CNAME'],
        },
      },
    },
    { Sid: 'WatchChanges', Effect: 'Allow', Action: ['route53:GetChange'], Resource: [`arn:${partition}:route53:::change/*`] },
    // The presigned GetCallerIdentity inside the EKS token; STS does not scope it to resources.
    { Sid: 'EksTokenIdentity', Effect: 'Allow', Action: ['sts:GetCallerIdentity'], Resource: ['*'] },
  ];
  // The reverse path's load balancer: the CLI keeps its target group on RDS's current address.
  // Registration is scoped to that one target group; ELBv2's Describe* calls support no
  // resource-level permissions, so reading target health can only be granted on '*' (read-only).
  const reverse = outputs.reversePath;
  if (reverse?.via === 'load-balancer' && reverse.targetGroupArn) {
    statements.push(
      {
        Sid: 'ReverseTargetRegistration',
        Effect: 'Allow',
        Action: ['elasticloadbalancing:RegisterTargets', 'elasticloadbalancing:DeregisterTargets'],
        Resource: [reverse.targetGroupArn],
      },
      { Sid: 'ReverseTargetHealth', Effect: 'Allow', Action: ['elasticloadbalancing:DescribeTargetHealth'], Resource: ['*'] },
    );
  }
  if (outputs.webhooks) {
    statements.push({
      Sid: 'WebhookQueues',
      Effect: 'Allow',
      Action: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:SendMessage', 'sqs:GetQueueAttributes'],
      Resource: [outputs.webhooks.queueArn, outputs.webhooks.deadLetterQueueArn],
    });
  }
  return { Version: '2012-10-17', Statement: statements };
}
