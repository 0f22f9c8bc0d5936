/**
 * Parameter Store entries the app and the cutover share, all SecureString under the stack key.
 * Values the cutover rewrites on D-day (writer/reader URLs) and the one operators own (source URL)
 * are created once and then left alone: `ignoreChanges: ['value']`, so a later `pulumi up` never
 * puts back what the cutover or an operator wrote.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import type { ParameterNames } from './naming.ts';
import { tagsFor } from './tags.ts';

export interface SecretsArgs {
  names: ParameterNames;
  kmsKeyArn: pulumi.Input<string>;
  /** Secret inputs: each holds the master password. */
  writerUrl: pulumi.Input<string>;
  readerUrls: pulumi.Input<string>;
  masterPassword: pulumi.Input<string>;
  tags: Record<string, string>;
}

/** A syntactically valid URL that cannot resolve, so a forgotten source URL fails loudly, naming itself. */
export const SOURCE_URL_PLACEHOLDER = 'postgresql://source-url-not-set.invalid:5432/set-it-with-aws-ssm-put-parameter';

export class Secrets extends pulumi.ComponentResource {
  readonly writerUrlArn: pulumi.Output<string>;

  constructor(name: string, args: SecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cutover:infra:Secrets', name, {}, opts);
    const parameter = (logicalName: string, parameterName: string, description: string, value: pulumi.Input<string>, ownedElsewhere: boolean) =>
      new aws.ssm.Parameter(logicalName, {
        name: parameterName,
        type: 'SecureString',
        keyId: args.kmsKeyArn,
        description,
        value: pulumi.secret(value),
        tags: tagsFor(args.tags, parameterName),
      }, { parent: this, ...(ownedElsewhere ? { ignoreChanges: ['value'] } : {}) });

    const writer = parameter('writer-url', args.names.writerUrl, 'App writer connection URL (the cutover repoints it; pulumi sets it only on create)', args.writerUrl, true);
    parameter('reader-urls', args.names.readerUrls, 'App reader URLs, comma-separated (the cutover repoints them; pulumi sets them only on create)', args.readerUrls, true);
    parameter('source-url', args.names.sourceUrl, 'Legacy source PostgreSQL URL, set by operators (pulumi creates a placeholder)', SOURCE_URL_PLACEHOLDER, true);
    parameter('master-password', args.names.masterPassword, 'RDS master password (owned by pulumi)', args.masterPassword, false);

    this.writerUrlArn = writer.arn;
    this.registerOutputs({ writerUrlArn: this.writerUrlArn });
  }
}
