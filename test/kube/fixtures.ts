/** Outputs pointing at a Kubernetes stand-in, and a clock that makes waits instant. */
import type { StackOutputs } from '../../infra/contract.ts';
import { awsOutputs } from '../aws/fixtures.ts';

export function kubeOutputs(kubeconfig: string): StackOutputs {
  const base = awsOutputs();
  return {
    ...base,
    cluster: { ...base.cluster, kubeconfig },
    app: { namespaces: ['app'] },
    pgbouncer: { ...base.pgbouncer, namespace: 'pgbouncer', deployment: 'pgbouncer' },
  };
}

/** Each sleep advances the clock instead of waiting: the stand-in moves one step per poll anyway. */
export function fakeClock(start = Date.parse('2024-05-01T12:00:00Z')) {
  let t = start;
  const sleeps: number[] = [];
  return {
    now: () => t,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      t += ms;
    },
    sleeps,
  };
}
