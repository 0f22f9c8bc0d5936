/**
 * pgbouncer.resume: releases the held clients, on every pod (or the one PgBouncer outside the
 * cluster). Its undo pauses again, so rolling back
 * pause → reload → resume runs pause, restore the backend, resume.
 */
import type { z } from 'zod';
import { defineStep } from '../../core/step.ts';
import { databaseEntry, sharedAdmin } from '../../pgbouncer/admin.ts';
import { pauseAll, resumeAll } from '../../pgbouncer/pause.ts';
import { entryAndConsoles, pausedOnEvery, pauseParams } from './params.ts';

const params = pauseParams;
type Params = z.infer<typeof params>;
/** `longestWaitMs`: how long the oldest held client had waited when released. */
type Result = { database: string; longestWaitMs: number; consoles: string[] };

export const pgbouncerResume = defineStep<Params, Result>({
  kind: 'pgbouncer.resume',
  summary: 'RESUME a paused PgBouncer database: the held clients continue',
  params,
  requires: ['pgbouncer'],
  destructive: false,
  async probe(ctx, p) {
    const { entry, consoles } = await entryAndConsoles(ctx, p);
    const plan: string[] = [];
    for (const console of consoles) {
      const state = await databaseEntry(await sharedAdmin(ctx, console), entry);
      if (state.paused) plan.push(`${console.label}: RESUME ${entry} (clients continue on ${state.host}:${state.port})`);
    }
    if (plan.length === 0) return { state: 'done', result: { database: entry, longestWaitMs: 0, consoles: consoles.map((c) => c.label) } };
    return { state: 'ready', plan };
  },
  async apply(ctx, p) {
    const { entry, consoles } = await entryAndConsoles(ctx, p);
    const labels = consoles.map((c) => c.label);
    await ctx.record({ action: 'resume', database: entry, consoles: labels });
    const longestWaitMs = await resumeAll(ctx, consoles, entry);
    ctx.log.info(`PgBouncer database ${entry} resumed on ${labels.join(', ')}; the longest-held client had waited ${longestWaitMs} ms`);
    return { database: entry, longestWaitMs, consoles: labels };
  },
  check: (ctx, p) => pausedOnEvery(ctx, p, { paused: false, message: 'is still paused', fix: 'run RESUME on its console' }),
  async undo(ctx, p) {
    const { entry, consoles } = await entryAndConsoles(ctx, p);
    await pauseAll(ctx, consoles, entry, p);
  },
});
