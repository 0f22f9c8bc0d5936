/**
 * postgres.replication-stop: drops the subscription on the target, its slot on the source, and the
 * publication, so nothing is left holding WAL back on the source. No undo: replication is restarted
 * with postgres.replication-start (a fresh initial copy), never by reviving these objects.
 */
import { z } from 'zod';
import { defineStep, type Finding, type StepContext, unable } from '../../core/step.ts';
import { pool } from '../../postgres/connections.ts';
import { dropPublication, dropSlot, dropSubscription, publicationExists, slotInfo, subscriptionInfo } from '../../postgres/replication.ts';
import { replicationNames } from '../../postgres/replication-names.ts';

const params = z
  .object({
    ...replicationNames,
    /** How long the source's walsender may take to release the slot. */
    deadlineSeconds: z.number().positive().default(60),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { subscriptionDropped: boolean; slotDropped: boolean; publicationDropped: boolean };

/** Which of the replication objects are still there, read by probe, apply and check alike. */
async function assess(ctx: StepContext, p: Params) {
  const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
  const [subscription, slot, publication] = await Promise.all([
    subscriptionInfo(target, p.subscription),
    slotInfo(source, p.subscription),
    publicationExists(source, p.publication),
  ]);
  return { subscription, slot, publication };
}

export const replicationStop = defineStep<Params, Result>({
  kind: 'postgres.replication-stop',
  summary: 'Drop the subscription, its replication slot and the publication',
  params,
  requires: ['postgres'],
  destructive: true,

  async probe(ctx, p) {
    const left = await assess(ctx, p);
    if (!left.subscription && !left.slot && !left.publication) {
      return { state: 'done', result: { subscriptionDropped: false, slotDropped: false, publicationDropped: false } };
    }
    return {
      state: 'ready',
      plan: [
        ...(left.subscription ? [`DROP SUBSCRIPTION ${p.subscription} on the target`] : []),
        ...(left.slot || left.subscription ? [`make sure slot ${p.subscription} is gone from the source`] : []),
        ...(left.publication ? [`DROP PUBLICATION ${p.publication} on the source`] : []),
      ],
    };
  },

  async apply(ctx, p) {
    try {
      const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
      const left = await assess(ctx, p);
      if (left.subscription) await ctx.record({ action: 'drop-subscription', name: p.subscription });
      const dropped = await dropSubscription(ctx, target, p.subscription);
      if (dropped.slotLeftBehind)
        ctx.log.warn(`slot ${dropped.slotLeftBehind} could not be dropped through the subscription; dropping it on the source directly`);
      const slotExists = Boolean(await slotInfo(source, p.subscription));
      if (slotExists) {
        await ctx.record({ action: 'drop-slot', name: p.subscription });
        await dropSlot(ctx, source, p.subscription, ctx.now() + p.deadlineSeconds * 1000);
      }
      if (left.publication) {
        await ctx.record({ action: 'drop-publication', name: p.publication });
        await dropPublication(source, p.publication);
      }
      ctx.log.info(`replication stopped: subscription ${p.subscription}, slot ${p.subscription} and publication ${p.publication} are gone`);
      return { subscriptionDropped: dropped.dropped, slotDropped: slotExists || dropped.dropped, publicationDropped: left.publication };
    } catch (error) {
      throw unable(`stop replication (subscription ${p.subscription}, publication ${p.publication})`, error);
    }
  },

  async check(ctx, p) {
    const left = await assess(ctx, p);
    const findings: Finding[] = [];
    if (left.subscription) findings.push({ severity: 'error', object: `subscription ${p.subscription} (target)`, message: 'still exists' });
    if (left.slot)
      findings.push({
        severity: 'error',
        object: `slot ${p.subscription} (source)`,
        message: 'still exists and holds WAL back on the source',
        fix: `select pg_drop_replication_slot('${p.subscription}') on the source`,
      });
    if (left.publication) findings.push({ severity: 'error', object: `publication ${p.publication} (source)`, message: 'still exists' });
    return findings;
  },
});
