/** Parameter Store requests the swap step makes. Values travel as Secret and are revealed only into a request. */
import {
  GetParameterCommand,
  LabelParameterVersionCommand,
  type ParameterType,
  PutParameterCommand,
  paginateGetParameterHistory,
} from '@aws-sdk/client-ssm';
import { Secret } from '../core/secret.ts';
import { type StepContext, StepError } from '../core/step.ts';
import { parameterArn } from './arns.ts';
import { callAws, isAwsError } from './call.ts';
import { awsClient } from './clients.ts';

export const PRE_CUTOVER_LABEL = 'pre-cutover';

export interface ParameterVersions {
  current: { version: number; labels: string[] };
  /** Version number carrying each label (a label is on at most one version). */
  labelled: Map<string, number>;
}

/** The versions and labels of a parameter, or null when it does not exist. Values are not decrypted. */
export async function parameterVersions(ctx: StepContext, name: string): Promise<ParameterVersions | null> {
  const ssm = await awsClient(ctx, 'ssm');
  let current: ParameterVersions['current'] | null = null;
  const labelled = new Map<string, number>();
  try {
    await callAws('ssm:GetParameterHistory', parameterArn(ctx.outputs, name), async () => {
      for await (const page of paginateGetParameterHistory({ client: ssm, pageSize: 50 }, { Name: name, WithDecryption: false })) {
        for (const entry of page.Parameters ?? []) {
          const version = entry.Version ?? 0;
          const labels = entry.Labels ?? [];
          for (const label of labels) labelled.set(label, version);
          if (!current || version > current.version) current = { version, labels };
        }
      }
    });
  } catch (error) {
    if (isAwsError(error, 'ParameterNotFound')) return null;
    throw error;
  }
  return current ? { current, labelled } : null;
}

export async function labelVersion(ctx: StepContext, name: string, version: number, label: string): Promise<void> {
  const ssm = await awsClient(ctx, 'ssm');
  const out = await callAws('ssm:LabelParameterVersion', parameterArn(ctx.outputs, name), () =>
    ssm.send(new LabelParameterVersionCommand({ Name: name, ParameterVersion: version, Labels: [label] })),
  );
  // SSM reports a rejected label in the response, not as an error.
  if (out.InvalidLabels && out.InvalidLabels.length > 0) {
    throw new StepError(`Parameter Store rejected label '${label}' on ${name} version ${version}`, [
      {
        severity: 'error',
        object: `parameter ${name}`,
        message: `label '${label}' is invalid`,
        fix: 'labels are letters, digits, . - _, up to 100 characters, not starting with a digit, aws or ssm',
      },
    ]);
  }
}

/** Writes a new version; returns its number. */
export async function putParameter(ctx: StepContext, name: string, value: Secret, type: ParameterType = 'SecureString'): Promise<number> {
  const ssm = await awsClient(ctx, 'ssm');
  const out = await callAws('ssm:PutParameter', parameterArn(ctx.outputs, name), () =>
    ssm.send(
      new PutParameterCommand({
        Name: name,
        Value: value.reveal(),
        Type: type,
        ...(type === 'SecureString' ? { KeyId: ctx.outputs.kms.keyArn } : {}),
        Overwrite: true,
      }),
    ),
  );
  return out.Version ?? 0;
}

/** A version's value (decrypted) and type; `selector` is a version number or a label. */
export async function readParameter(
  ctx: StepContext,
  name: string,
  selector?: string | number,
): Promise<{ value: Secret; type: ParameterType; version: number }> {
  const ssm = await awsClient(ctx, 'ssm');
  const out = await callAws('ssm:GetParameter', parameterArn(ctx.outputs, name), () =>
    ssm.send(new GetParameterCommand({ Name: selector === undefined ? name : `${name}:${selector}`, WithDecryption: true })),
  );
  const value = new Secret(out.Parameter?.Value ?? '');
  return { value, type: out.Parameter?.Type ?? 'SecureString', version: out.Parameter?.Version ?? 0 };
}
