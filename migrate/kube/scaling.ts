/**
 * Shared by kube.scale, kube.restore and their undo: the journal's scale records and the wait for
 * replica counts to settle.
 */
import type { AppsV1Api } from '@kubernetes/client-node';
import { type Json, type StepContext, StepError } from '../core/step.ts';
import { waitFor } from '../core/wait.ts';
import { parseWorkloadKey, readWorkload, scaleWorkload, type WorkloadState } from './workloads.ts';

/** Journalled before each scale call. `previous` is what undo puts back. */
export interface ScaleChange {
  action: 'scale';
  workload: string;
  previous: number;
  replicas: number;
  [key: string]: Json;
}

export function isScaleChange(change: Json): change is ScaleChange {
  return (
    typeof change === 'object' &&
    change !== null &&
    !Array.isArray(change) &&
    change.action === 'scale' &&
    typeof change.workload === 'string' &&
    typeof change.previous === 'number'
  );
}

/**
 * The replica count each workload had before this step first touched it. The earliest record wins:
 * a resumed attempt sees the count its predecessor already changed, which is not the original.
 */
export function originalCounts(changes: readonly Json[]): Map<string, number> {
  const originals = new Map<string, number>();
  for (const change of changes)
    if (isScaleChange(change) && !originals.has(change.workload)) originals.set(change.workload, change.previous);
  return originals;
}

/** Settled: the desired count is set and exactly that many pods exist and are ready. */
export function settled(state: WorkloadState, replicas: number): boolean {
  return state.desired === replicas && state.running === replicas && state.ready === replicas;
}

export interface WaitSettings {
  deadlineMinutes: number;
  pollSeconds: number;
}

export async function waitForCounts(
  ctx: StepContext,
  api: AppsV1Api,
  counts: ReadonlyMap<string, number>,
  label: string,
  wait: WaitSettings,
): Promise<void> {
  const keys = [...counts.keys()];
  if (keys.length === 0) return;
  let pending: string[] = keys;
  await waitFor(ctx, {
    label,
    deadline: ctx.now() + wait.deadlineMinutes * 60_000,
    intervalMs: wait.pollSeconds * 1000,
    poll: async () => {
      const states = await Promise.all(keys.map((key) => readWorkload(api, parseWorkloadKey(key)!)));
      const unsettled = states.filter((s) => !settled(s, counts.get(s.key)!));
      pending = unsettled.map((s) => `${s.key} (${s.running} pods, ${s.ready} ready, want ${counts.get(s.key)})`);
      if (unsettled.length === 0) return { ready: true, value: undefined };
      return { ready: false, detail: pending.slice(0, 5).join(', '), done: keys.length - unsettled.length, total: keys.length };
    },
    timedOut: () =>
      new StepError(`Unable to ${label}: not settled after ${wait.deadlineMinutes} minutes`, [
        {
          severity: 'error',
          object: pending.join(', '),
          message: 'pods did not reach the desired count before the deadline',
          fix: 'look at the pods (kubectl get pods, kubectl describe) — e.g. a PodDisruptionBudget, a finalizer, or pods that cannot start — then re-run to keep waiting',
        },
      ]),
  });
}

/**
 * Scales each workload to its count, journalling the count it had first (unless an earlier record
 * of this step already holds the original), then waits for the pods.
 */
export async function scaleTo(
  ctx: StepContext,
  api: AppsV1Api,
  counts: ReadonlyMap<string, number>,
  label: string,
  wait: WaitSettings,
): Promise<Map<string, number>> {
  const originals = originalCounts(ctx.previousChanges);
  for (const [key, replicas] of counts) {
    const ref = parseWorkloadKey(key)!;
    const state = await readWorkload(api, ref);
    if (!originals.has(key)) {
      await ctx.record({ action: 'scale', workload: key, previous: state.desired, replicas } satisfies ScaleChange);
      originals.set(key, state.desired);
    }
    if (state.desired !== replicas) {
      ctx.log.info(`scaling ${key} from ${state.desired} to ${replicas}`);
      await scaleWorkload(api, ref, replicas);
    }
  }
  await waitForCounts(ctx, api, counts, label, wait);
  return originals;
}

/** Undo of any scale: put each workload back to the count recorded before it was first changed. */
export async function restoreOriginals(ctx: StepContext, api: AppsV1Api, changes: readonly Json[], wait: WaitSettings): Promise<void> {
  const originals = originalCounts(changes);
  for (const [key, replicas] of originals) {
    const ref = parseWorkloadKey(key);
    if (!ref) continue;
    const state = await readWorkload(api, ref);
    if (state.desired !== replicas) {
      ctx.log.info(`restoring ${key} from ${state.desired} to ${replicas}`);
      await scaleWorkload(api, ref, replicas);
    }
  }
  await waitForCounts(ctx, api, originals, 'restore replica counts', wait);
}
