/**
 * Rollout status of a deployment, judged as `kubectl rollout status` judges it: the controller has
 * observed the latest generation, every desired replica is updated, no old replica is left, and
 * every updated replica is available. A ProgressDeadlineExceeded condition is a failure, not a wait.
 */
import type { V1Deployment } from '@kubernetes/client-node';

export type RolloutStatus =
  | { state: 'complete' }
  | { state: 'waiting'; detail: string; done?: number; total?: number }
  | { state: 'failed'; detail: string };

export function rolloutStatus(deployment: V1Deployment): RolloutStatus {
  const generation = deployment.metadata?.generation ?? 0;
  const status = deployment.status ?? {};
  if ((status.observedGeneration ?? 0) < generation)
    return { state: 'waiting', detail: 'waiting for the deployment spec update to be observed' };
  const stalled = status.conditions?.find((c) => c.type === 'Progressing' && c.reason === 'ProgressDeadlineExceeded');
  if (stalled) return { state: 'failed', detail: `exceeded its progress deadline: ${stalled.message ?? ''}`.trim() };
  const desired = deployment.spec?.replicas ?? 1;
  const updated = status.updatedReplicas ?? 0;
  const total = status.replicas ?? 0;
  const available = status.availableReplicas ?? 0;
  if (updated < desired)
    return { state: 'waiting', detail: `${updated} of ${desired} new replicas updated`, done: updated, total: desired };
  if (total > updated) return { state: 'waiting', detail: `${total - updated} old replicas pending termination`, done: updated, total };
  if (available < updated)
    return { state: 'waiting', detail: `${available} of ${updated} updated replicas available`, done: available, total: updated };
  return { state: 'complete' };
}
