/**
 * pgbouncer.pause: holds the app's queries in PgBouncer (clients wait, none fail) and waits until
 * the transactions in flight have finished and PgBouncer has closed its server connections.
 */
import { z } from 'zod';
import { configValue, databaseEntry, poolState, sharedAdmin } from '../../pgbouncer/admin.ts';
import { pauseDatabase, resumeDatabase } from '../../pgbouncer/pause.ts';
import { defineStep, type Finding } from '../../core/step.ts';
import { databaseParam, entryOf, pauseWaitParams } from './params.ts';

const params = z
  .object({
    ...databaseParam,
    ...pauseWaitParams,
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { database: string; paused: boolean; waitedMs: number };

export const pgbouncerPause = defineStep<Params, Result>({
  kind: 'pgbouncer.pause',
  summary: 'PAUSE a PgBouncer database: hold client queries and wait until no server connection is left',
  params,
  requires: ['pgbouncer'],
  destructive: true,
  async probe(ctx, p) {
    const entry = entryOf(ctx, p);
    const admin = await sharedAdmin(ctx);
    const state = await databaseEntry(admin, entry);
    const pool = await poolState(admin, entry);
    if (state.paused && pool.servers === 0) return { state: 'done', result: { database: entry, paused: true, waitedMs: 0 } };
    const findings: Finding[] = [];
    const waitTimeout = Number(await configValue(admin, 'query_wait_timeout'));
    if (waitTimeout > 0) {
      findings.push({
        severity: 'warning',
        object: 'pgbouncer query_wait_timeout',
        message: `clients held longer than ${waitTimeout} s are disconnected with an error`,
        fix: 'keep the pause (through resume) shorter than that, or set query_wait_timeout = 0 for the cutover',
      });
    }
    return {
      state: 'ready',
      findings,
      plan: [`PAUSE ${entry} on ${state.host}:${state.port} (holds new queries; waits for ${pool.serversActive} active server connections, up to ${p.deadlineSeconds} s)`],
    };
  },
  async apply(ctx, p) {
    const entry = entryOf(ctx, p);
    await ctx.record({ action: 'pause', database: entry });
    const waitedMs = await pauseDatabase(ctx, entry, p);
    ctx.log.info(`PgBouncer database ${entry} paused after ${waitedMs} ms`);
    return { database: entry, paused: true, waitedMs };
  },
  async check(ctx, p) {
    const entry = entryOf(ctx, p);
    if (!(await databaseEntry(await sharedAdmin(ctx), entry)).paused) {
      return [{ severity: 'error', object: `pgbouncer database ${entry}`, message: 'is not paused', fix: 'someone resumed it; re-run the step' }];
    }
  },
  async undo(ctx, p) {
    await resumeDatabase(ctx, entryOf(ctx, p));
  },
});
