/**
 * kube.scale: every Deployment and StatefulSet in the app namespaces to zero, so nothing writes to
 * the source while the data catches up. Each workload's replica count is journalled before it is
 * changed; the result (`counts`) is what kube.restore and the undo put back.
 */
import { z } from 'zod';
import { defineStep, type Json, type StepContext } from '../../core/step.ts';
import { appsApi, kubeAccessParams } from '../../kube/client.ts';
import { originalCounts, restoreOriginals, scaleTo } from '../../kube/scaling.ts';
import { listWorkloads, type WorkloadState } from '../../kube/workloads.ts';

const params = z
  .object({
    ...kubeAccessParams,
    /** Defaults to outputs.app.namespaces. */
    namespaces: z.array(z.string().min(1)).min(1).optional(),
    /** Workloads to leave running: a name, or a key `namespace/deployment/name`. */
    exclude: z.array(z.string().min(1)).default([]),
    deadlineMinutes: z.number().positive().default(10),
    pollSeconds: z.number().positive().default(2),
  })
  .strict();
type Params = z.infer<typeof params>;
/** `counts`: the replica count each scaled workload had before, by `namespace/kind/name`. */
type Result = { counts: Record<string, number> };

const excluded = (p: Params, w: WorkloadState) => p.exclude.includes(w.name) || p.exclude.includes(w.key);

/** The workloads of the namespaces (less the excluded ones) as they are now. */
async function assess(ctx: StepContext, p: Params): Promise<WorkloadState[]> {
  const api = await appsApi(ctx, p);
  const namespaces = p.namespaces ?? ctx.outputs.app.namespaces;
  const all = (await Promise.all(namespaces.map((ns) => listWorkloads(api, ns)))).flat();
  return all.filter((w) => !excluded(p, w));
}

const resultOf = (originals: Map<string, number>): Result => ({ counts: Object.fromEntries(originals) });

export const kubeScale = defineStep<Params, Result>({
  kind: 'kube.scale',
  summary: 'Scale every Deployment and StatefulSet in the app namespaces to zero, recording the previous replica counts',
  params,
  requires: ['kube'],
  destructive: true,
  async probe(ctx, p) {
    const workloads = await assess(ctx, p);
    const namespaces = (p.namespaces ?? ctx.outputs.app.namespaces).join(', ');
    const findings =
      workloads.length === 0
        ? [
            {
              severity: 'warning' as const,
              object: `namespaces ${namespaces}`,
              message: 'no deployments or statefulsets to scale',
              fix: 'check the namespaces (outputs.app.namespaces or with.namespaces)',
            },
          ]
        : [];
    const busy = workloads.filter((w) => w.desired > 0 || w.running > 0);
    if (busy.length === 0) return { state: 'done', findings, result: resultOf(originalCounts(ctx.previousChanges)) };
    return {
      state: 'ready',
      findings,
      plan: busy.map((w) =>
        w.desired > 0 ? `PATCH ${w.key}/scale: replicas ${w.desired} → 0` : `wait for ${w.key} (already 0) to stop its ${w.running} pods`,
      ),
    };
  },
  async apply(ctx, p) {
    const api = await appsApi(ctx, p);
    const workloads = await assess(ctx, p);
    const zero = new Map(workloads.map((w) => [w.key, 0]));
    const originals = await scaleTo(ctx, api, zero, 'scale workloads to zero', p);
    // Only what this step scaled (now or in an earlier attempt) is restored; a workload that was
    // already at zero stays there.
    for (const [key, previous] of originals) if (previous === 0) originals.delete(key);
    return resultOf(originals);
  },
  async check(ctx, p, result) {
    const running = (await assess(ctx, p)).filter((w) => w.desired > 0 || w.running > 0);
    return running.map((w) => ({
      severity: 'error' as const,
      object: w.key,
      message: `still has ${w.desired} desired and ${w.running} running pods after scaling to zero${w.key in result.counts ? '' : ' (scaled up by someone else?)'}`,
      fix: 'find what scales it back (an autoscaler, a CD tool) and pause it, then re-run',
    }));
  },
  async undo(ctx, p, changes: readonly Json[]) {
    await restoreOriginals(ctx, await appsApi(ctx, p), changes, p);
  },
});
