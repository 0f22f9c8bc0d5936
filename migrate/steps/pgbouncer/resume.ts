/**
 * pgbouncer.resume: releases the held clients. Its undo pauses again, so rolling back
 * pause → reload → resume runs pause, restore the backend, resume.
 */
import { z } from 'zod';
import { databaseEntry, sharedAdmin } from '../../pgbouncer/admin.ts';
import { pauseDatabase, resumeDatabase } from '../../pgbouncer/pause.ts';
import { defineStep } from '../../core/step.ts';
import { databaseParam, entryOf, pauseWaitParams } from './params.ts';

const params = z
  .object({
    ...databaseParam,
    ...pauseWaitParams,
  })
  .strict();
type Params = z.infer<typeof params>;
/** `longestWaitMs`: how long the oldest held client had waited when released. */
type Result = { database: string; longestWaitMs: number };

export const pgbouncerResume = defineStep<Params, Result>({
  kind: 'pgbouncer.resume',
  summary: 'RESUME a paused PgBouncer database: the held clients continue',
  params,
  requires: ['pgbouncer'],
  destructive: false,
  async probe(ctx, p) {
    const entry = entryOf(ctx, p);
    const state = await databaseEntry(await sharedAdmin(ctx), entry);
    if (!state.paused) return { state: 'done', result: { database: entry, longestWaitMs: 0 } };
    return { state: 'ready', plan: [`RESUME ${entry} (clients continue on ${state.host}:${state.port})`] };
  },
  async apply(ctx, p) {
    const entry = entryOf(ctx, p);
    await ctx.record({ action: 'resume', database: entry });
    const longestWaitMs = await resumeDatabase(ctx, entry);
    ctx.log.info(`PgBouncer database ${entry} resumed; the longest-held client had waited ${longestWaitMs} ms`);
    return { database: entry, longestWaitMs };
  },
  async check(ctx, p) {
    const entry = entryOf(ctx, p);
    if ((await databaseEntry(await sharedAdmin(ctx), entry)).paused) {
      return [{ severity: 'error', object: `pgbouncer database ${entry}`, message: 'is still paused', fix: 'run RESUME on the console' }];
    }
  },
  async undo(ctx, p) {
    await pauseDatabase(ctx, entryOf(ctx, p), p);
  },
});
