/**
 * ARNs of the stack's resources, for IAM hints in errors and for the least-privilege policy. The
 * partition and account come from the database ARN the stack exports, so GovCloud and China work.
 */
import type { StackOutputs } from '../../infra/contract.ts';

export interface Account {
  partition: string;
  region: string;
  accountId: string;
}

export function stackAccount(outputs: StackOutputs): Account {
  const [prefix, partition, service, region, accountId] = outputs.database.arn.split(':');
  if (prefix !== 'arn' || service !== 'rds' || !partition || !accountId) {
    throw new Error(`outputs.database.arn '${outputs.database.arn}' is not an RDS ARN (arn:<partition>:rds:<region>:<account>:db:<id>)`);
  }
  return { partition, region: region || outputs.region, accountId };
}

export function dbInstanceArn(outputs: StackOutputs, identifier: string): string {
  const { partition, region, accountId } = stackAccount(outputs);
  return `arn:${partition}:rds:${region}:${accountId}:db:${identifier}`;
}

export function parameterGroupArn(outputs: StackOutputs, name: string): string {
  const { partition, region, accountId } = stackAccount(outputs);
  return `arn:${partition}:rds:${region}:${accountId}:pg:${name}`;
}

/** Parameter names start with `/`; the ARN has no second slash (`…:parameter/app/x`). */
export function parameterArn(outputs: StackOutputs, name: string): string {
  const { partition, region, accountId } = stackAccount(outputs);
  return `arn:${partition}:ssm:${region}:${accountId}:parameter/${name.replace(/^\//, '')}`;
}

export function hostedZoneArn(outputs: Pick<StackOutputs, 'database'>, hostedZoneId: string): string {
  const partition = outputs.database.arn.split(':')[1] || 'aws';
  return `arn:${partition}:route53:::hostedzone/${hostedZoneId.replace(/^\/?hostedzone\//, '')}`;
}

export function route53ChangeArn(outputs: Pick<StackOutputs, 'database'>, changeId: string): string {
  const partition = outputs.database.arn.split(':')[1] || 'aws';
  return `arn:${partition}:route53:::change/${changeId.replace(/^\/?change\//, '')}`;
}
