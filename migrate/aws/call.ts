/**
 * One place that knows how AWS errors look. Retries are the SDK's job (see clients.ts); here a
 * permission error becomes a StepError that names the IAM action and resource the operator must
 * grant, because "AccessDenied" alone sends people hunting through CloudTrail on D-day.
 */
import { redact } from '../core/secret.ts';
import { StepError } from '../core/step.ts';

const PERMISSION_ERRORS = new Set(['AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'AuthorizationError']);

/** The error code the SDK reports (`name` for modelled errors, `Code` for some unmodelled ones). */
export function awsErrorName(error: unknown): string {
  if (!error || typeof error !== 'object') return '';
  const { name, Code, code } = error as { name?: unknown; Code?: unknown; code?: unknown };
  return String((typeof Code === 'string' && Code) || (typeof code === 'string' && code) || name || '');
}

export function isAwsError(error: unknown, ...names: string[]): boolean {
  return names.includes(awsErrorName(error));
}

export function isPermissionError(error: unknown): boolean {
  return PERMISSION_ERRORS.has(awsErrorName(error));
}

/**
 * Runs one AWS request. `action` is the IAM action it needs (`rds:CreateDBInstanceReadReplica`) and
 * `resource` the ARN it acts on, so a denial can say exactly what to grant.
 */
export async function callAws<T>(action: string, resource: string, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    // Some services echo request values (a parameter's new value) in validation errors.
    if (error instanceof Error) error.message = redact(error.message);
    if (!isPermissionError(error)) throw error;
    const detail = error instanceof Error ? error.message : String(error);
    throw new StepError(`permission denied: ${action} on ${resource} (${awsErrorName(error)}: ${detail})`, [
      {
        severity: 'error',
        object: `IAM action ${action}`,
        message: `the identity running the CLI may not call ${action} on ${resource}`,
        fix: `grant ${action} on ${resource} to that identity (\`migrate iam-policy --stack <stack>\` prints the whole least-privilege policy), or run with credentials that have it`,
      },
    ]);
  }
}
