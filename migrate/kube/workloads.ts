/**
 * Deployments and StatefulSets as the scale steps see them: a key `namespace/kind/name` (kind in
 * lower case, e.g. `app/deployment/web`), the desired replica count and how many pods still run.
 */
import { type AppsV1Api, PatchStrategy, setHeaderOptions, type V1Deployment, type V1StatefulSet } from '@kubernetes/client-node';
import { kubeError } from './client.ts';

export type WorkloadKind = 'deployment' | 'statefulset';

export interface WorkloadRef {
  namespace: string;
  kind: WorkloadKind;
  name: string;
}

export interface WorkloadState extends WorkloadRef {
  key: string;
  /** spec.replicas (1 when unset, as the API defaults it). */
  desired: number;
  /** Pods that still exist (status.replicas). */
  running: number;
  ready: number;
}

const RESOURCE: Record<WorkloadKind, string> = { deployment: 'deployments', statefulset: 'statefulsets' };

export const workloadKey = (ref: WorkloadRef) => `${ref.namespace}/${ref.kind}/${ref.name}`;

export function parseWorkloadKey(key: string): WorkloadRef | undefined {
  const m = /^([^/]+)\/(deployment|statefulset)\/([^/]+)$/.exec(key);
  return m ? { namespace: m[1]!, kind: m[2] as WorkloadKind, name: m[3]! } : undefined;
}

function stateOf(kind: WorkloadKind, object: V1Deployment | V1StatefulSet): WorkloadState {
  const ref = { namespace: object.metadata?.namespace ?? '', kind, name: object.metadata?.name ?? '' };
  return {
    ...ref,
    key: workloadKey(ref),
    desired: object.spec?.replicas ?? 1,
    running: object.status?.replicas ?? 0,
    ready: object.status?.readyReplicas ?? 0,
  };
}

export async function listWorkloads(api: AppsV1Api, namespace: string): Promise<WorkloadState[]> {
  try {
    const [deployments, statefulSets] = await Promise.all([
      api.listNamespacedDeployment({ namespace }),
      api.listNamespacedStatefulSet({ namespace }),
    ]);
    return [...deployments.items.map((d) => stateOf('deployment', d)), ...statefulSets.items.map((s) => stateOf('statefulset', s))];
  } catch (error) {
    throw kubeError(`list deployments and statefulsets in namespace ${namespace}`, `namespace ${namespace}`, error, {
      verb: 'list',
      resource: 'deployments.apps and statefulsets.apps',
      namespace,
    });
  }
}

export async function readWorkload(api: AppsV1Api, ref: WorkloadRef): Promise<WorkloadState> {
  try {
    const object = ref.kind === 'deployment' ? await api.readNamespacedDeployment(ref) : await api.readNamespacedStatefulSet(ref);
    return stateOf(ref.kind, object);
  } catch (error) {
    throw kubeError(`read ${ref.kind} ${ref.namespace}/${ref.name}`, `${ref.kind} ${ref.namespace}/${ref.name}`, error, {
      verb: 'get',
      resource: `${RESOURCE[ref.kind]}.apps`,
      namespace: ref.namespace,
    });
  }
}

/** Sets replicas through the scale subresource, which leaves the rest of the spec alone. */
export async function scaleWorkload(api: AppsV1Api, ref: WorkloadRef, replicas: number): Promise<void> {
  const request = { name: ref.name, namespace: ref.namespace, body: { spec: { replicas } } };
  // The client sends JSON Patch unless told otherwise; this body is a merge patch.
  const options = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  try {
    if (ref.kind === 'deployment') await api.patchNamespacedDeploymentScale(request, options);
    else await api.patchNamespacedStatefulSetScale(request, options);
  } catch (error) {
    throw kubeError(`scale ${ref.kind} ${ref.namespace}/${ref.name} to ${replicas}`, `${ref.kind} ${ref.namespace}/${ref.name}`, error, {
      verb: 'patch',
      resource: `${RESOURCE[ref.kind]}.apps/scale`,
      namespace: ref.namespace,
    });
  }
}
