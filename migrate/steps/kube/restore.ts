/**
 * kube.restore: scales workloads back to the counts kube.scale recorded — pass its result,
 * `counts: ${{ steps.<scale step>.counts }}` — and waits until their pods are ready.
 */
import { z } from 'zod';
import { defineStep, type Json } from '../../core/step.ts';
import { appsApi, kubeAccessParams } from '../../kube/client.ts';
import { restoreOriginals, scaleTo, settled } from '../../kube/scaling.ts';
import { parseWorkloadKey, readWorkload } from '../../kube/workloads.ts';

const workloadKeySchema = z
  .string()
  .refine((key) => parseWorkloadKey(key) !== undefined, 'must be namespace/deployment/name or namespace/statefulset/name');

const params = z
  .object({
    ...kubeAccessParams,
    /** Replica count by workload, e.g. {"app/deployment/web": 3}: the result of kube.scale. */
    counts: z.record(workloadKeySchema, z.number().int().nonnegative()),
    deadlineMinutes: z.number().positive().default(15),
    pollSeconds: z.number().positive().default(2),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { counts: Record<string, number> };

export const kubeRestore = defineStep<Params, Result>({
  kind: 'kube.restore',
  summary: 'Scale workloads back to the replica counts recorded by kube.scale and wait until they are ready',
  params,
  requires: ['kube'],
  destructive: false,
  async probe(ctx, p) {
    const api = await appsApi(ctx, p);
    const plan: string[] = [];
    for (const [key, replicas] of Object.entries(p.counts)) {
      const state = await readWorkload(api, parseWorkloadKey(key)!);
      if (state.desired !== replicas) plan.push(`PATCH ${key}/scale: replicas ${state.desired} → ${replicas}`);
      else if (!settled(state, replicas)) plan.push(`wait for ${key}: ${state.ready} of ${replicas} ready`);
    }
    return plan.length === 0 ? { state: 'done', result: { counts: p.counts } } : { state: 'ready', plan };
  },
  async apply(ctx, p) {
    await scaleTo(ctx, await appsApi(ctx, p), new Map(Object.entries(p.counts)), 'restore replica counts', p);
    return { counts: p.counts };
  },
  async check(ctx, p) {
    const api = await appsApi(ctx, p);
    const findings = [];
    for (const [key, replicas] of Object.entries(p.counts)) {
      const state = await readWorkload(api, parseWorkloadKey(key)!);
      if (state.desired !== replicas) {
        findings.push({
          severity: 'error' as const,
          object: key,
          message: `has ${state.desired} desired replicas, expected ${replicas}`,
          fix: 'find what changed it (an autoscaler, a CD tool) and re-run',
        });
      }
    }
    return findings;
  },
  async undo(ctx, p, changes: readonly Json[]) {
    await restoreOriginals(ctx, await appsApi(ctx, p), changes, p);
  },
});
