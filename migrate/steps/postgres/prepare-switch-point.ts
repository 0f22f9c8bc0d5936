/**
 * `postgres.prepare-switch-point`: before the write window, starts the snapshot holder and connects
 * its two sessions, idle, so that `postgres.pin-switch-point` (`prepared: ${{ steps.<id>.holder }}`)
 * inside the window only tells it to export: starting Node and connecting both servers is what made
 * the pin cost a quarter of a second of write downtime.
 *
 * Changes nothing on either server and holds nothing back (no transaction until the pin): two idle
 * sessions of the migration role. A holder nobody pins lets go after `maxWaitMinutes`; undo releases
 * it (and, after the pin, the snapshots it holds, as the pin's own undo does).
 */
import { z } from 'zod';
import type { Json, StepContext } from '../../core/step.ts';
import { defineStep, StepError, unable } from '../../core/step.ts';
import { connectionConfig, pool, sourceUrl, targetUrl } from '../../postgres/connections.ts';
import {
  applicationName,
  type HolderRef,
  holderRunning,
  holderSession,
  newTag,
  prepareHolder,
  releaseHolder,
  type Sessions,
} from '../../postgres/switch-point/holder.ts';
import { type PreparedHolderRef, preparedHolderSchema } from '../../postgres/switch-point/point.ts';

const params = z.strictObject({
  /** An idle holder nobody pinned lets go after this long (it holds two connections, nothing else). */
  maxWaitMinutes: z
    .number()
    .positive()
    .max(24 * 60)
    .default(120),
});
type Params = z.infer<typeof params>;
type Result = { holder: PreparedHolderRef } & Json;

async function sessions(ctx: StepContext): Promise<Sessions> {
  const [source, target] = await Promise.all([pool(ctx, 'source'), pool(ctx, 'target')]);
  return { source, target };
}

/** Holders earlier attempts started (by tag), and the last one that answered. */
function earlier(changes: readonly Json[]): { holders: HolderRef[]; prepared: PreparedHolderRef | undefined } {
  const holders = new Map<string, HolderRef>();
  let prepared: PreparedHolderRef | undefined;
  for (const change of changes) {
    const c = change as { action?: string; tag?: string; holder?: unknown };
    if (c.action === 'prepare' && c.tag) holders.set(c.tag, { tag: c.tag });
    if (c.action === 'prepared') {
      const parsed = preparedHolderSchema.safeParse(c.holder);
      if (parsed.success) {
        prepared = parsed.data;
        holders.set(prepared.tag, prepared);
      }
    }
  }
  return { holders: [...holders.values()], prepared };
}

/** Why a prepared holder cannot serve a pin, if it cannot. */
async function unusable(pools: Sessions, holder: PreparedHolderRef): Promise<string[]> {
  const reasons: string[] = [];
  if (!holderRunning(holder, { exiting: false }))
    reasons.push(`the holder process ${holder.pid} on ${holder.host} is not running here (ended, killed, or another machine)`);
  for (const side of ['source', 'target'] as const)
    if (!(await holderSession(pools[side], holder).catch(() => undefined)))
      reasons.push(`its session on the ${side} (${applicationName(holder.tag)}) is gone`);
  return reasons;
}

/** The holder an earlier attempt prepared, while it can still serve (a rerun keeps it). */
async function assess(ctx: StepContext, pools: Sessions): Promise<PreparedHolderRef | undefined> {
  const { prepared } = earlier(ctx.previousChanges);
  if (!prepared) return undefined;
  return (await unusable(pools, prepared)).length === 0 ? prepared : undefined;
}

export const prepareSwitchPoint = defineStep<Params, Result>({
  kind: 'postgres.prepare-switch-point',
  summary: 'Start the snapshot holder and connect it to source and target, idle, so the pin inside the write window takes milliseconds',
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    const live = await assess(ctx, await sessions(ctx));
    if (live) return { state: 'done', result: { holder: live } };
    return {
      state: 'ready',
      plan: [
        'start the snapshot holder (a detached process) and connect it to the source and the target, idle: no transaction, nothing held back',
        `  postgres.pin-switch-point (prepared) has it export the snapshots inside the write window; unpinned, it exits after ${p.maxWaitMinutes} min`,
      ],
    };
  },

  async apply(ctx, p) {
    const pools = await sessions(ctx);
    try {
      const live = await assess(ctx, pools);
      if (live) return { holder: live };
      // An earlier attempt's holder that cannot serve would only keep two connections.
      for (const ref of earlier(ctx.previousChanges).holders) await releaseHolder(pools, ref);
      const tag = newTag();
      await ctx.record({ action: 'prepare', tag, maxWaitMinutes: p.maxWaitMinutes });
      const name = applicationName(tag);
      const started = await prepareHolder(
        { source: connectionConfig(await sourceUrl(ctx), name), target: connectionConfig(await targetUrl(ctx), name) },
        tag,
        Math.round(p.maxWaitMinutes * 60_000),
      );
      const holder: PreparedHolderRef = { ...started, waitUntil: new Date(started.waitUntilMs).toISOString() };
      await ctx.record({ action: 'prepared', holder });
      ctx.log.info(
        `snapshot holder ready: process ${holder.pid} on ${holder.host}, connected to both servers (${name}), idle until pinned or ${holder.waitUntil}`,
      );
      return { holder };
    } catch (error) {
      throw unable('prepare the snapshot holder', error);
    }
  },

  async check(ctx, _p, result) {
    const reasons = await unusable(await sessions(ctx), result.holder);
    if (reasons.length > 0) throw new StepError(`the prepared snapshot holder cannot serve the pin: ${reasons.join('; ')}`);
  },

  async undo(ctx, _p, changes) {
    const pools = await sessions(ctx).catch(() => ({}));
    for (const ref of earlier(changes).holders) await releaseHolder(pools, ref);
  },
});
