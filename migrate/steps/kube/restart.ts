/**
 * kube.restart: `kubectl rollout restart` of one deployment (PgBouncer by default, so its pods
 * re-read the swapped secrets), then the wait `kubectl rollout status` does, with a deadline.
 * The restart stamp is journalled before the patch; a resumed attempt that finds its own stamp on
 * the template only waits, rather than restarting the pods a second time.
 */
import { type AppsV1Api, PatchStrategy, setHeaderOptions, type V1Deployment } from '@kubernetes/client-node';
import { z } from 'zod';
import { defineStep, type Json, type StepContext, StepError } from '../../core/step.ts';
import { waitFor } from '../../core/wait.ts';
import { appsApi, kubeAccessParams, kubeError } from '../../kube/client.ts';
import { rolloutStatus } from '../../kube/rollout.ts';

export const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';

const params = z
  .object({
    ...kubeAccessParams,
    /** Defaults to outputs.pgbouncer.namespace. */
    namespace: z.string().min(1).optional(),
    /** Defaults to outputs.pgbouncer.deployment. */
    name: z.string().min(1).optional(),
    deadlineMinutes: z.number().positive().default(10),
    pollSeconds: z.number().positive().default(2),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { deployment: string; restartedAt: string; replicas: number };

interface RestartChange {
  action: 'restart';
  deployment: string;
  restartedAt: string;
  [key: string]: Json;
}

const target = (ctx: StepContext, p: Params) => ({
  namespace: p.namespace ?? ctx.outputs.pgbouncer.namespace,
  name: p.name ?? ctx.outputs.pgbouncer.deployment,
});
const label = (t: { namespace: string; name: string }) => `deployment ${t.namespace}/${t.name}`;
const restartedAtOf = (d: V1Deployment) => d.spec?.template?.metadata?.annotations?.[RESTARTED_AT];

async function read(api: AppsV1Api, t: { namespace: string; name: string }): Promise<V1Deployment> {
  try {
    return await api.readNamespacedDeployment(t);
  } catch (error) {
    throw kubeError(`read ${label(t)}`, label(t), error, { verb: 'get', resource: 'deployments.apps', namespace: t.namespace });
  }
}

/** The stamp an earlier attempt of this step wrote, if the deployment still carries it. */
function ownStamp(ctx: StepContext, d: V1Deployment): string | undefined {
  const stamps = ctx.previousChanges
    .filter((c): c is RestartChange => typeof c === 'object' && c !== null && !Array.isArray(c) && c.action === 'restart')
    .map((c) => c.restartedAt);
  const current = restartedAtOf(d);
  return current !== undefined && stamps.includes(current) ? current : undefined;
}

async function waitForRollout(ctx: StepContext, api: AppsV1Api, t: { namespace: string; name: string }, p: Params): Promise<V1Deployment> {
  let last = '';
  return waitFor(ctx, {
    label: `rollout of ${label(t)}`,
    deadline: ctx.now() + p.deadlineMinutes * 60_000,
    intervalMs: p.pollSeconds * 1000,
    poll: async () => {
      const d = await read(api, t);
      const status = rolloutStatus(d);
      if (status.state === 'complete') return { ready: true, value: d };
      if (status.state === 'failed') {
        throw new StepError(`Unable to restart ${label(t)}: rollout ${status.detail}`, [
          {
            severity: 'error',
            object: label(t),
            message: status.detail,
            fix: `look at the new pods (kubectl -n ${t.namespace} describe pods; kubectl -n ${t.namespace} rollout undo deployment/${t.name} to go back)`,
          },
        ]);
      }
      last = status.detail;
      return { ready: false, detail: status.detail, ...(status.total === undefined ? {} : { done: status.done, total: status.total }) };
    },
    timedOut: () =>
      new StepError(`Unable to restart ${label(t)}: rollout not complete after ${p.deadlineMinutes} minutes (${last})`, [
        {
          severity: 'error',
          object: label(t),
          message: last,
          fix: `check the pods (kubectl -n ${t.namespace} get pods), then re-run to keep waiting`,
        },
      ]),
  });
}

/** The deployment as it is now, and the restart stamp of this run on it, if any. */
async function assess(
  ctx: StepContext,
  p: Params,
): Promise<{ api: AppsV1Api; t: { namespace: string; name: string }; d: V1Deployment; stamp: string | undefined }> {
  const api = await appsApi(ctx, p);
  const t = target(ctx, p);
  const d = await read(api, t);
  return { api, t, d, stamp: ownStamp(ctx, d) };
}

export const kubeRestart = defineStep<Params, Result>({
  kind: 'kube.restart',
  summary: 'Rollout-restart a deployment (PgBouncer by default) and wait until the rollout is complete',
  params,
  requires: ['kube'],
  destructive: true,
  async probe(ctx, p) {
    const { t, d, stamp } = await assess(ctx, p);
    if (stamp && rolloutStatus(d).state === 'complete') {
      return { state: 'done', result: { deployment: `${t.namespace}/${t.name}`, restartedAt: stamp, replicas: d.spec?.replicas ?? 1 } };
    }
    if (stamp) return { state: 'ready', plan: [`wait for the rollout of ${label(t)} restarted at ${stamp}`] };
    return {
      state: 'ready',
      plan: [
        `PATCH ${label(t)}: spec.template.metadata.annotations["${RESTARTED_AT}"] = <now>`,
        `wait for the rollout of ${d.spec?.replicas ?? 1} replicas`,
      ],
    };
  },
  async apply(ctx, p) {
    const assessed = await assess(ctx, p);
    const { api, t } = assessed;
    let stamp = assessed.stamp;
    if (!stamp) {
      stamp = new Date(ctx.now()).toISOString();
      await ctx.record({ action: 'restart', deployment: `${t.namespace}/${t.name}`, restartedAt: stamp } satisfies RestartChange);
      const body = { spec: { template: { metadata: { annotations: { [RESTARTED_AT]: stamp } } } } };
      try {
        await api.patchNamespacedDeployment({ ...t, body }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
      } catch (error) {
        throw kubeError(`restart ${label(t)}`, label(t), error, { verb: 'patch', resource: 'deployments.apps', namespace: t.namespace });
      }
      ctx.log.info(`restarted ${label(t)} (restartedAt ${stamp})`);
    }
    const d = await waitForRollout(ctx, api, t, p);
    return { deployment: `${t.namespace}/${t.name}`, restartedAt: stamp, replicas: d.spec?.replicas ?? 1 };
  },
  async check(ctx, p, result) {
    const t = target(ctx, p);
    const d = await read(await appsApi(ctx, p), t);
    const status = rolloutStatus(d);
    if (restartedAtOf(d) !== result.restartedAt) {
      return [
        {
          severity: 'error',
          object: label(t),
          message: `the pod template carries restartedAt ${restartedAtOf(d) ?? 'none'}, not ${result.restartedAt}`,
          fix: 'someone else changed the deployment; check it and re-run',
        },
      ];
    }
    if (status.state !== 'complete') return [{ severity: 'error', object: label(t), message: `rollout not complete: ${status.detail}` }];
  },
});
