/**
 * `postgres.pin-switch-point`: inside the write window, once the source is fenced and the target is
 * caught up and not yet written by the app, exports one snapshot on each server and keeps them open
 * in a detached holder process, so that `postgres.verify` (with `at: ${{ steps.<id>.switchPoint }}`)
 * can prove the switch point after writes have resumed on the target, and again after a kill -9.
 *
 * With `prepared` (the holder `postgres.prepare-switch-point` started and connected before the
 * window), the pin only tells that holder to export: milliseconds instead of starting Node and
 * connecting. A prepared holder that cannot be told (gone, or on another machine after a resume
 * elsewhere) is released and a holder started here, as without it.
 *
 * Changes nothing, but holds resources: each held snapshot holds back vacuum on its server until
 * verify releases it, undo releases it, or `maxHoldMinutes` pass.
 */
import { z } from 'zod';
import type { Json, StepContext } from '../../core/step.ts';
import { defineStep, StepError, unable } from '../../core/step.ts';
import { connectionConfig, pool, sourceUrl, targetUrl } from '../../postgres/connections.ts';
import {
  applicationName,
  exportPrepared,
  type Held,
  type HolderRef,
  newTag,
  releaseHolder,
  type Sessions,
  startHolder,
} from '../../postgres/switch-point/holder.ts';
import { preparedHolderSchema, type SwitchPoint, switchPointSchema } from '../../postgres/switch-point/point.ts';
import { readSequences } from '../../postgres/switch-point/sequences.ts';
import { pointStatus } from '../../postgres/switch-point/status.ts';

const params = z.strictObject({
  /** The holder lets go after this long even if no verify released it: a held snapshot holds back vacuum on both servers. */
  maxHoldMinutes: z
    .number()
    .positive()
    .max(24 * 60)
    .default(120),
  /** `${{ steps.<prepare>.holder }}`: the holder started before the window, told to export here. */
  // An empty string is a runbook's "none": a run started after prepare-pin (`--from freeze`) spawns its own holder.
  prepared: z.preprocess((v) => (v === '' ? undefined : v), preparedHolderSchema.optional()),
});
type Params = z.infer<typeof params>;
type Result = { switchPoint: SwitchPoint } & Json;

async function sessions(ctx: StepContext): Promise<Sessions> {
  const [source, target] = await Promise.all([pool(ctx, 'source'), pool(ctx, 'target')]);
  return { source, target };
}

/** Holders an earlier attempt of this step started (by tag), and the point it pinned, if it got that far. */
function earlier(changes: readonly Json[]): { holders: HolderRef[]; pinned: SwitchPoint | undefined } {
  // By tag: a holder recorded before it answered (`pin`) is known by its process too once it did (`pinned`).
  const holders = new Map<string, HolderRef>();
  let pinned: SwitchPoint | undefined;
  for (const change of changes) {
    const c = change as { action?: string; tag?: string; switchPoint?: unknown };
    if (c.action === 'pin' && c.tag) holders.set(c.tag, { tag: c.tag });
    if (c.action === 'pinned') {
      const parsed = switchPointSchema.safeParse(c.switchPoint);
      if (parsed.success) {
        pinned = parsed.data;
        holders.set(parsed.data.holder.tag, parsed.data.holder);
      }
    }
  }
  return { holders: [...holders.values()], pinned };
}

/** The point an earlier attempt pinned, when its snapshots still import (a rerun returns it rather than pinning a later one). */
async function assess(ctx: StepContext, pools: Sessions): Promise<SwitchPoint | undefined> {
  const { pinned } = earlier(ctx.previousChanges);
  if (!pinned) return undefined;
  return (await pointStatus(pools, pinned, ctx.now())).importable ? pinned : undefined;
}

export const pinSwitchPoint = defineStep<Params, Result>({
  kind: 'postgres.pin-switch-point',
  summary: 'Export and hold a snapshot on source and target at the switch point, for verify to prove that point after writes resume',
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    const live = await assess(ctx, await sessions(ctx));
    if (live) return { state: 'done', result: { switchPoint: live } };
    return {
      state: 'ready',
      plan: [
        p.prepared
          ? `tell the prepared snapshot holder (process ${p.prepared.pid} on ${p.prepared.host}) to export a snapshot on the source and on the target, held open until verify releases it`
          : 'export a snapshot on the source and on the target, held open by a detached process until verify releases it',
        `  at most ${p.maxHoldMinutes} min: a held snapshot holds back vacuum on both servers`,
        '  and record every sequence position of both sides (sequences are not part of a snapshot)',
      ],
    };
  },

  async apply(ctx, p) {
    const pools = await sessions(ctx);
    try {
      const live = await assess(ctx, pools);
      if (live) return { switchPoint: live };
      // An earlier attempt's holder that can no longer serve would only hold vacuum back.
      for (const ref of earlier(ctx.previousChanges).holders) await releaseHolder(pools, ref);
      const maxHoldMs = Math.round(p.maxHoldMinutes * 60_000);
      const fresh = async (): Promise<Held> => {
        const tag = newTag();
        await ctx.record({ action: 'pin', tag, maxHoldMinutes: p.maxHoldMinutes });
        const name = applicationName(tag);
        return startHolder(
          { source: connectionConfig(await sourceUrl(ctx), name), target: connectionConfig(await targetUrl(ctx), name) },
          tag,
          maxHoldMs,
        );
      };
      let held: Held | undefined;
      const prepared = p.prepared;
      // A prepared holder exports once: told by an earlier attempt, it was released just above.
      if (prepared && !earlier(ctx.previousChanges).holders.some((h) => h.tag === prepared.tag)) {
        await ctx.record({ action: 'pin', tag: prepared.tag, prepared: true, maxHoldMinutes: p.maxHoldMinutes });
        held = await exportPrepared(prepared, maxHoldMs).catch(async (error) => {
          await releaseHolder(pools, prepared);
          throw error;
        });
        if (!held) {
          ctx.log.warn(
            `the prepared snapshot holder (process ${prepared.pid} on ${prepared.host}) cannot be told to export from here: released, starting one now`,
          );
          await releaseHolder(pools, prepared);
        }
      } else if (prepared) {
        ctx.log.warn(`the prepared snapshot holder was told to export by an earlier attempt (released): starting one now`);
      }
      held ??= await fresh();
      const tag = held.tag;
      const [source, target] = await Promise.all([readSequences(pools.source), readSequences(pools.target)]).catch(async (error) => {
        // A pin that cannot be returned must not hold vacuum back until maxHoldMinutes.
        await releaseHolder(pools, held);
        throw error;
      });
      const switchPoint: SwitchPoint = {
        pinnedAt: new Date(held.pinnedAtMs).toISOString(),
        pinnedAtMs: held.pinnedAtMs,
        releaseBy: new Date(held.releaseByMs).toISOString(),
        releaseByMs: held.releaseByMs,
        holder: { pid: held.pid, host: held.host, tag },
        source: held.source,
        target: held.target,
        sequences: { source, target },
      };
      await ctx.record({ action: 'pinned', switchPoint });
      ctx.log.info(
        `switch point pinned at ${switchPoint.pinnedAt}: source snapshot ${held.source.snapshot} (LSN ${held.source.lsn}), ` +
          `target snapshot ${held.target.snapshot} (LSN ${held.target.lsn}), held by process ${held.pid} on ${held.host} until ${switchPoint.releaseBy} at the latest; ` +
          `${source.length} sequence positions recorded`,
      );
      return { switchPoint };
    } catch (error) {
      throw unable('pin the switch point', error);
    }
  },

  async check(ctx, _p, result) {
    const status = await pointStatus(await sessions(ctx), result.switchPoint, ctx.now());
    if (status.importable) return [];
    throw new StepError(`the switch point's snapshots do not import: ${status.reasons.join('; ')}`);
  },

  async undo(ctx, _p, changes) {
    const pools = await sessions(ctx).catch(() => ({}));
    for (const ref of earlier(changes).holders) await releaseHolder(pools, ref);
  },
});
