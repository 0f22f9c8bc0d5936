/**
 * The Kubernetes API client for a run, shared by every kube.* step that asks for the same
 * kubeconfig and context, and the translation of API failures into "Unable to …" errors that say
 * which object and which permission.
 */
import { ApiException, AppsV1Api, type KubeConfig } from '@kubernetes/client-node';
import { z } from 'zod';
import { type StepContext, StepError } from '../core/step.ts';
import { type KubeconfigChoice, loadKubeConfig } from './config.ts';

/** `with:` fields every kube step accepts. */
export const kubeAccessParams = {
  /** `stack`: outputs.cluster.kubeconfig; `user`: KUBECONFIG or ~/.kube/config. */
  kubeconfig: z.enum(['stack', 'user']).default('stack'),
  context: z.string().min(1).optional(),
};

/** The run's KubeConfig for this choice (API clients and port-forwards share its credentials). */
export function kubeConfigFor(ctx: Pick<StepContext, 'outputs' | 'resource'>, choice: KubeconfigChoice): Promise<KubeConfig> {
  return ctx.resource(`kubeconfig:${choice.kubeconfig}:${choice.context ?? ''}`, () =>
    loadKubeConfig(choice, { kubeconfig: ctx.outputs.cluster.kubeconfig, region: ctx.outputs.region }),
  );
}

export function appsApi(ctx: Pick<StepContext, 'outputs' | 'resource'>, choice: KubeconfigChoice): Promise<AppsV1Api> {
  return ctx.resource(`kube:${choice.kubeconfig}:${choice.context ?? ''}`, async () =>
    (await kubeConfigFor(ctx, choice)).makeApiClient(AppsV1Api),
  );
}

export function statusCode(error: unknown): number | undefined {
  return error instanceof ApiException ? error.code : undefined;
}

function serverMessage(error: ApiException<unknown>): string {
  let body = error.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      return (body as string) || error.message;
    }
  }
  const message = (body as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' ? message : error.message;
}

/**
 * "Unable to <what>: <cause>" with a finding on `object`. `verb` and `resource` name the RBAC
 * permission a 403 means is missing.
 */
export function kubeError(
  what: string,
  object: string,
  error: unknown,
  rbac?: { verb: string; resource: string; namespace: string },
): StepError {
  if (error instanceof StepError) return new StepError(`Unable to ${what}: ${error.message}`, error.findings);
  if (!(error instanceof ApiException)) {
    const message = error instanceof Error ? error.message : String(error);
    return new StepError(`Unable to ${what}: ${message}`, [
      {
        severity: 'error',
        object,
        message,
        fix: 'check that the API server in the kubeconfig is reachable from here (VPN, endpoint access) and the credentials are valid',
      },
    ]);
  }
  const message = `${error.code} ${serverMessage(error)}`;
  const fix =
    error.code === 401
      ? 'the API server rejected the credentials: for EKS, check the AWS identity (aws sts get-caller-identity) is mapped in the cluster (access entries / aws-auth)'
      : error.code === 403 && rbac
        ? `grant the Kubernetes identity '${rbac.verb}' on ${rbac.resource} in namespace ${rbac.namespace}`
        : error.code === 404
          ? `check the name and namespace (kubectl get ${object.split(' ')[0] ?? ''} -n <namespace>)`
          : undefined;
  return new StepError(`Unable to ${what}: ${message}`, [{ severity: 'error', object, message, ...(fix ? { fix } : {}) }]);
}
