/**
 * The stack's customer-managed KMS key: RDS storage and Performance Insights, the SecureString
 * parameters, the webhook queues and EKS secrets are all encrypted under it, so one key policy and
 * one CloudTrail trail answer "who can read this stack's data".
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { children } from './children.ts';
import { tagsFor } from './tags.ts';

export interface StackKeyArgs {
  prefix: string;
  production: boolean;
  tags: Record<string, string>;
}

export class StackKey extends pulumi.ComponentResource {
  readonly arn: pulumi.Output<string>;
  readonly keyId: pulumi.Output<string>;

  constructor(name: string, args: StackKeyArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cutover:infra:StackKey', name, {}, opts);
    const child = children(this, name);
    const key = new aws.kms.Key(
      child.name('stack'),
      {
        description: `${args.prefix}: RDS, Parameter Store, SQS and EKS secrets`,
        enableKeyRotation: true,
        // Deleting the key makes every snapshot and parameter under it unreadable: wait the maximum.
        deletionWindowInDays: 30,
        tags: tagsFor(args.tags, `${args.prefix}-stack`),
      },
      child.opts('stack', { protect: args.production }),
    );
    new aws.kms.Alias(child.name('stack'), { name: `alias/${args.prefix}`, targetKeyId: key.keyId }, child.opts('stack'));
    this.arn = key.arn;
    this.keyId = key.keyId;
    this.registerOutputs({ arn: this.arn });
  }
}
