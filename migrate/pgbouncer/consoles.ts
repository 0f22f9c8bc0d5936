/**
 * Which PgBouncer admin consoles a pgbouncer.* step acts on. On the cluster, PgBouncer runs as
 * several pods behind one Service, and a connection through the Service reaches one pod chosen for
 * us: so every pod of outputs.pgbouncer.deployment is found through the Kubernetes API and reached
 * by its own port-forward, with the user and password of outputs.pgbouncer.adminUrlRef. A PgBouncer
 * outside the cluster (`configFile`: its ini on this machine, as in the local rehearsal) is the one
 * console at that admin URL.
 */
import { z } from 'zod';
import { Secret } from '../core/secret.ts';
import { type StepContext, StepError } from '../core/step.ts';
import { kubeAccessParams, kubeConfigFor } from '../kube/client.ts';
import { deploymentPods } from '../kube/pods.ts';
import { forwardPodPort } from '../kube/port-forward.ts';

export interface Console {
  /** `pod pgbouncer/pgbouncer-7d9f-abcde`, or `PgBouncer` for the one outside the cluster. */
  label: string;
  url(): Promise<Secret>;
}

export const consoleParams = {
  /**
   * The pgbouncer.ini of a PgBouncer outside the cluster, on this machine: the step acts on that one
   * PgBouncer, at outputs.pgbouncer.adminUrlRef. Empty or absent: on every pod of the deployment.
   */
  configFile: z.union([z.literal(''), z.string().startsWith('/', 'must be an absolute path')]).optional(),
  ...kubeAccessParams,
};

export type ConsoleParams = { configFile?: string; kubeconfig: 'stack' | 'user'; context?: string };

export async function adminUrl(ctx: Pick<StepContext, 'outputs' | 'secret'>): Promise<Secret> {
  const ref = ctx.outputs.pgbouncer.adminUrlRef;
  if (!ref) {
    throw new StepError('Unable to reach the PgBouncer admin console: outputs.pgbouncer.adminUrlRef is not set', [
      {
        severity: 'error',
        object: 'outputs.pgbouncer.adminUrlRef',
        message: 'the stack does not say which admin user and password open the console',
        fix: 'add a user to admin_users and set adminUrlRef in the stack config; or restart PgBouncer with kube.restart instead',
      },
    ]);
  }
  return ctx.secret(ref);
}

export const outsideCluster = (p: { configFile?: string }) => Boolean(p.configFile);

export async function consolesFor(ctx: StepContext, p: ConsoleParams): Promise<Console[]> {
  if (outsideCluster(p)) return [{ label: 'PgBouncer', url: () => adminUrl(ctx) }];
  const { namespace, deployment, port } = ctx.outputs.pgbouncer;
  const pods = await deploymentPods(ctx, { namespace, deployment }, p);
  const config = await kubeConfigFor(ctx, p);
  return pods.map((pod) => ({
    label: `pod ${pod.namespace}/${pod.name}`,
    url: async () => {
      const forward = await ctx.resource(
        `pgbouncer:forward:${pod.namespace}/${pod.name}`,
        () => forwardPodPort(config, pod, port),
        (f) => f.close(),
      );
      const url = new URL((await adminUrl(ctx)).reveal());
      url.hostname = '127.0.0.1';
      url.port = String(forward.port);
      return new Secret(url.toString());
    },
  }));
}
