/**
 * The pods of a deployment, found as the ReplicaSet controller finds them: by the deployment's
 * selector. All or nothing: a pod that exists but is not running and ready (a rollout or a crash
 * in progress) is an error, because it may start serving clients that a step did not reach.
 */
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { type StepContext, StepError } from '../core/step.ts';
import { appsApi, kubeConfigFor, kubeError } from './client.ts';
import type { KubeconfigChoice } from './config.ts';

export interface PodRef {
  namespace: string;
  name: string;
}

function coreApi(ctx: Pick<StepContext, 'outputs' | 'resource'>, choice: KubeconfigChoice): Promise<CoreV1Api> {
  return ctx.resource(`kube-core:${choice.kubeconfig}:${choice.context ?? ''}`, async () =>
    (await kubeConfigFor(ctx, choice)).makeApiClient(CoreV1Api),
  );
}

const isReady = (pod: V1Pod) =>
  pod.status?.phase === 'Running' &&
  !pod.metadata?.deletionTimestamp &&
  (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/** Every pod of `namespace/deployment`, by name; throws when one of them is not running and ready. */
export async function deploymentPods(
  ctx: Pick<StepContext, 'outputs' | 'resource'>,
  target: { namespace: string; deployment: string },
  choice: KubeconfigChoice,
): Promise<PodRef[]> {
  const label = `deployment ${target.namespace}/${target.deployment}`;
  let selector: string;
  try {
    const deployment = await (await appsApi(ctx, choice)).readNamespacedDeployment({
      namespace: target.namespace,
      name: target.deployment,
    });
    const labels = deployment.spec?.selector?.matchLabels ?? {};
    selector = Object.entries(labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    if (!selector) throw new Error('its selector has no matchLabels');
  } catch (error) {
    throw kubeError(`read ${label}`, label, error, { verb: 'get', resource: 'deployments.apps', namespace: target.namespace });
  }
  let pods: V1Pod[];
  try {
    pods = (await (await coreApi(ctx, choice)).listNamespacedPod({ namespace: target.namespace, labelSelector: selector })).items;
  } catch (error) {
    throw kubeError(`list the pods of ${label}`, label, error, { verb: 'list', resource: 'pods', namespace: target.namespace });
  }
  const notReady = pods.filter((pod) => !isReady(pod));
  if (pods.length === 0 || notReady.length > 0) {
    const detail =
      pods.length === 0
        ? 'it has no pods'
        : `${notReady.map((p) => `${p.metadata?.name} (${p.metadata?.deletionTimestamp ? 'terminating' : (p.status?.phase ?? 'unknown')}, not ready)`).join(', ')}`;
    throw new StepError(`Unable to reach every pod of ${label}: ${detail}`, [
      {
        severity: 'error',
        object: label,
        message: detail,
        fix: `wait until the rollout is complete (kubectl rollout status -n ${target.namespace} deployment/${target.deployment}), then re-run`,
      },
    ]);
  }
  return pods.map((pod) => ({ namespace: target.namespace, name: pod.metadata!.name! })).sort((a, b) => a.name.localeCompare(b.name));
}
