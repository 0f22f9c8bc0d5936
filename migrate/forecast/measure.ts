/**
 * Every reading the forecast takes, all read-only, each one on its own: a reading that fails (a
 * server that is down, a role without the right to see other sessions, no Kubernetes access) says
 * why and leaves the others. Secrets never reach a reason (errors are redacted).
 */
import { redact } from '../core/secret.ts';
import type { StepContext } from '../core/step.ts';
import type { KubeconfigChoice } from '../kube/config.ts';
import { pool } from '../postgres/connections.ts';
import { sequenceCount, tableSizes } from './inventory.ts';
import { podStartup } from './pod-startup.ts';
import { longestTransaction, replicationLag, seesOtherSessions, walRate } from './source-activity.ts';
import type { Measurements, Reading } from './types.ts';
import { sampleVerifyRate } from './verify-rate.ts';

export type MeasureOptions = {
  subscription: string;
  /** Between the two WAL position readings. */
  walIntervalMs: number;
  /** Rows of the largest table the timed verification sample reads (per side). */
  sampleRows: number;
  /** Where the app's pods are read from; a string says why they are not (e.g. `--without kube`). */
  kube: KubeconfigChoice | string;
  /** A Kubernetes API that does not answer within this is "unknown", not a hang. */
  kubeTimeoutMs?: number;
};

async function reading<T>(read: () => Promise<T>): Promise<Reading<T>> {
  try {
    return { ok: true, value: await read() };
  } catch (error) {
    return { ok: false, reason: redact((error as Error)?.message ?? String(error)) };
  }
}

function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export async function measure(ctx: StepContext, o: MeasureOptions): Promise<Measurements> {
  const at = new Date(ctx.now()).toISOString();
  const source = () => pool(ctx, 'source');
  const target = () => pool(ctx, 'target');
  // Taken before the verification sample opens its own transactions (those are this CLI's, and excluded anyway).
  const longest = await reading(async () => {
    const db = await source();
    const found = await longestTransaction(db);
    if (!found && !(await seesOtherSessions(db)))
      throw new Error("this role sees only its own sessions' transactions (grant it pg_read_all_stats)");
    return found;
  });
  const lag = await reading(async () => {
    const found = await replicationLag(await source(), await target(), o.subscription);
    if (!found) throw new Error(`subscription ${o.subscription} does not exist on the target`);
    return found;
  });
  const wal = await reading(async () => walRate(ctx, await source(), o.walIntervalMs));
  const sequences = await reading(async () => sequenceCount(await source()));
  const sizes = await reading(async () => tableSizes(await source()));
  const tables: Measurements['tables'] = sizes.ok
    ? {
        ok: true,
        value: {
          count: sizes.value.length,
          rows: sizes.value.reduce((sum, t) => sum + t.rows, 0),
          bytes: sizes.value.reduce((sum, t) => sum + t.bytes, 0),
          largest: sizes.value.slice(0, 5),
        },
      }
    : sizes;
  const verifyRate: Measurements['verifyRate'] = !sizes.ok
    ? { ok: false, reason: `no table sizes: ${sizes.reason}` }
    : sizes.value.length === 0
      ? { ok: false, reason: 'the source has no tables to verify' }
      : await reading(async () => sampleVerifyRate({ source: await source(), target: await target() }, sizes.value[0]!, o.sampleRows));
  const kube = o.kube;
  const podStartupReading: Measurements['podStartup'] =
    typeof kube === 'string'
      ? { ok: false, reason: kube }
      : await reading(async () => {
          const found = await within(o.kubeTimeoutMs ?? 10_000, 'the Kubernetes API', podStartup(ctx, kube));
          if (found.medianSeconds === null)
            throw new Error(
              `no pod in namespace(s) ${found.namespaces.join(', ')} reports both a creationTimestamp and a Ready transition time`,
            );
          return { medianSeconds: found.medianSeconds, pods: found.pods, namespaces: found.namespaces };
        });
  const records = ctx.outputs.dns.records;
  return {
    at,
    walBytesPerSecond: wal,
    replicationLag: lag,
    longestTransaction: longest,
    sequences,
    tables,
    verifyRate,
    dns: {
      app: { ttl: records.app.ttl, cutoverTtl: records.app.cutoverTtl },
      webhooks: { ttl: records.webhooks.ttl, cutoverTtl: records.webhooks.cutoverTtl },
    },
    podStartup: podStartupReading,
    pgbouncerAdmin: ctx.outputs.pgbouncer.adminUrlRef !== undefined,
  };
}
