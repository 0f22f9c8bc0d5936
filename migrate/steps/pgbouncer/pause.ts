/**
 * pgbouncer.pause: holds the app's queries in PgBouncer (clients wait, none fail) and waits until
 * the transactions in flight have finished and PgBouncer has closed its server connections — on
 * every pod of the deployment (or the one PgBouncer outside the cluster), all or nothing.
 */
import type { z } from 'zod';
import { defineStep, type Finding } from '../../core/step.ts';
import { configValue, databaseEntry, poolState, sharedAdmin } from '../../pgbouncer/admin.ts';
import { pauseAll, resumeAll } from '../../pgbouncer/pause.ts';
import { entryAndConsoles, pausedOnEvery, pauseParams } from './params.ts';

const params = pauseParams;
type Params = z.infer<typeof params>;
type Result = { database: string; paused: boolean; waitedMs: number; consoles: string[] };

export const pgbouncerPause = defineStep<Params, Result>({
  kind: 'pgbouncer.pause',
  summary: 'PAUSE a PgBouncer database: hold client queries and wait until no server connection is left',
  params,
  requires: ['pgbouncer'],
  destructive: true,
  async probe(ctx, p) {
    const { entry, consoles } = await entryAndConsoles(ctx, p);
    const findings: Finding[] = [];
    const plan: string[] = [];
    let done = true;
    for (const console of consoles) {
      const admin = await sharedAdmin(ctx, console);
      const state = await databaseEntry(admin, entry);
      const pool = await poolState(admin, entry);
      if (state.paused && pool.servers === 0) {
        plan.push(`${console.label}: ${entry} already paused`);
        continue;
      }
      done = false;
      const waitTimeout = Number(await configValue(admin, 'query_wait_timeout'));
      if (waitTimeout > 0) {
        findings.push({
          severity: 'warning',
          object: `pgbouncer query_wait_timeout on ${console.label}`,
          message: `clients held longer than ${waitTimeout} s are disconnected with an error`,
          fix: 'keep the pause (through resume) shorter than that, or set query_wait_timeout = 0 for the cutover',
        });
      }
      plan.push(
        `${console.label}: PAUSE ${entry} on ${state.host}:${state.port} (holds new queries; waits for ${pool.serversActive} active server connections, up to ${p.deadlineSeconds} s)`,
      );
    }
    const labels = consoles.map((c) => c.label);
    if (done) return { state: 'done', plan, result: { database: entry, paused: true, waitedMs: 0, consoles: labels } };
    if (consoles.length > 1) plan.push(`all or nothing: if one of the ${consoles.length} cannot pause, every one is resumed`);
    return { state: 'ready', findings, plan };
  },
  async apply(ctx, p) {
    const { entry, consoles } = await entryAndConsoles(ctx, p);
    const labels = consoles.map((c) => c.label);
    await ctx.record({ action: 'pause', database: entry, consoles: labels });
    const waitedMs = await pauseAll(ctx, consoles, entry, p);
    ctx.log.info(`PgBouncer database ${entry} paused on ${labels.join(', ')} after ${waitedMs} ms`);
    return { database: entry, paused: true, waitedMs, consoles: labels };
  },
  check: (ctx, p) =>
    pausedOnEvery(ctx, p, { paused: true, message: 'is not paused', fix: 'someone resumed it (or the pod is new); re-run the step' }),
  async undo(ctx, p) {
    const { entry, consoles } = await entryAndConsoles(ctx, p);
    await resumeAll(ctx, consoles, entry);
  },
});
