/**
 * Parameter Store entries the app and the cutover share, all SecureString under the stack key.
 * Values the cutover rewrites on D-day (writer/reader URLs) and the ones operators own (source URL,
 * app password) are created once and then left alone: `ignoreChanges: ['value']`, so a later
 * `pulumi up` never puts back what the cutover or an operator wrote.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { children } from './children.ts';
import { UNSET_PARAMETER_VALUES } from './contract.ts';
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
export const SOURCE_URL_PLACEHOLDER = UNSET_PARAMETER_VALUES.sourceUrl;

export class Secrets extends pulumi.ComponentResource {
  readonly writerUrlArn: pulumi.Output<string>;

  constructor(name: string, args: SecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cutover:infra:Secrets', name, {}, opts);
    const child = children(this, name);
    const parameter = (
      logicalName: string,
      parameterName: string,
      description: string,
      value: pulumi.Input<string>,
      ownedElsewhere: boolean,
    ) =>
      new aws.ssm.Parameter(
        child.name(logicalName),
        {
          name: parameterName,
          type: 'SecureString',
          keyId: args.kmsKeyArn,
          description,
          value: pulumi.secret(value),
          tags: tagsFor(args.tags, parameterName),
        },
        child.opts(logicalName, ownedElsewhere ? { ignoreChanges: ['value'] } : {}),
      );

    const writer = parameter(
      'writer-url',
      args.names.writerUrl,
      'App writer connection URL (the cutover repoints it; pulumi sets it only on create)',
      args.writerUrl,
      true,
    );
    parameter(
      'reader-urls',
      args.names.readerUrls,
      'App reader URLs, comma-separated (the cutover repoints them; pulumi sets them only on create)',
      args.readerUrls,
      true,
    );
    parameter(
      'source-url',
      args.names.sourceUrl,
      'Legacy source PostgreSQL URL, set by operators (pulumi creates a placeholder)',
      SOURCE_URL_PLACEHOLDER,
      true,
    );
    // The app role's password on RDS: the role is created on the target by operators (roles are not
    // part of a schema copy), so its password is theirs to choose. A marker rather than a generated
    // password: a value nobody set on the role would pass every check and fail only when the app
    // logs in with it after swap-secrets, inside the write window; the marker says "not set".
    parameter(
      'app-password',
      args.names.appPassword,
      'App role password on RDS, set by operators (pulumi creates a marker); d-day writes it into the app URLs',
      UNSET_PARAMETER_VALUES.appPassword,
      true,
    );
    parameter('master-password', args.names.masterPassword, 'RDS master password (owned by pulumi)', args.masterPassword, false);

    this.writerUrlArn = writer.arn;
    this.registerOutputs({ writerUrlArn: this.writerUrlArn });
  }
}
