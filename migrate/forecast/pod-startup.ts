/**
 * How long the app's pods take from creation to Ready, read from Kubernetes: each pod's
 * `metadata.creationTimestamp` to its Ready condition's `lastTransitionTime`, the median over the
 * app namespaces' pods that are Ready. A pod that reports neither is left out; none at all is
 * "unknown", never a guess. (A Ready condition that flipped later, a pod that went unready and back,
 * overstates its start-up: the median keeps one such pod from moving the figure.)
 */
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import type { StepContext } from '../core/step.ts';
import { kubeConfigFor, kubeError } from '../kube/client.ts';
import type { KubeconfigChoice } from '../kube/config.ts';

export function startupSeconds(pod: V1Pod): number | null {
  const created = pod.metadata?.creationTimestamp;
  const ready = (pod.status?.conditions ?? []).find((c) => c.type === 'Ready' && c.status === 'True');
  if (!created || !ready?.lastTransitionTime) return null;
  const seconds = (new Date(ready.lastTransitionTime).getTime() - new Date(created).getTime()) / 1000;
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export type PodStartup = { medianSeconds: number | null; pods: number; namespaces: string[] };

export async function podStartup(
  ctx: Pick<StepContext, 'outputs' | 'resource'>,
  choice: KubeconfigChoice,
  namespaces: string[] = ctx.outputs.app.namespaces,
): Promise<PodStartup> {
  const api = await ctx.resource(`kube-core-forecast:${choice.kubeconfig}:${choice.context ?? ''}`, async () =>
    (await kubeConfigFor(ctx, choice)).makeApiClient(CoreV1Api),
  );
  const seconds: number[] = [];
  for (const namespace of namespaces) {
    let pods: V1Pod[];
    try {
      pods = (await api.listNamespacedPod({ namespace })).items;
    } catch (error) {
      throw kubeError(`list the pods in namespace ${namespace}`, `namespace ${namespace}`, error, {
        verb: 'list',
        resource: 'pods',
        namespace,
      });
    }
    for (const pod of pods) {
      const s = startupSeconds(pod);
      if (s !== null) seconds.push(s);
    }
  }
  return { medianSeconds: median(seconds), pods: seconds.length, namespaces };
}
