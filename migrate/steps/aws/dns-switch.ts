/**
 * dns.switch: points a movable record (outputs.dns.records.<record>) at its cutover target, or back
 * at legacy. The change itself, INSYNC wait and authoritative check live in aws/route53.ts.
 */
import { z } from 'zod';
import type { MovableRecord } from '../../../infra/contract.ts';
import type { RecordTarget } from '../../aws/route53.ts';
import { defineStep, type StepContext, unable } from '../../core/step.ts';
import { applyMove, describeTarget, misplaced, moveParams, movePlan, readMove, undoMove } from './record-move.ts';

const params = moveParams.extend({
  record: z.enum(['app', 'webhooks']),
  to: z.enum(['cutover', 'legacy']).default('cutover'),
});
type Params = z.infer<typeof params>;
type Result = { name: string; type: string; to: string; changeId: string | null };

/** The record as it should be: the lowered TTL stays after the switch, so a rollback propagates as fast. */
export function targetOf(record: MovableRecord, to: Params['to']): RecordTarget {
  return to === 'cutover'
    ? { type: record.cutoverType, ttl: record.cutoverTtl, value: record.cutover }
    : { type: record.type, ttl: record.cutoverTtl, value: record.legacy };
}

/** The record, its target and the batch that moves it; a switch has nothing that blocks it. */
async function assess(ctx: StepContext, p: Params) {
  const record = ctx.outputs.dns.records[p.record];
  const target = targetOf(record, p.to);
  return { name: record.name, target, plan: await readMove(ctx, record.name, target) };
}

export const dnsSwitch = defineStep<Params, Result>({
  kind: 'dns.switch',
  summary: 'Point a DNS record at its cutover (or legacy) target, wait INSYNC and confirm with the authoritative servers',
  params,
  requires: ['aws'],
  destructive: true,

  async probe(ctx, p) {
    const { name, target, plan } = await assess(ctx, p);
    const result = { name, type: target.type, to: p.to, changeId: null };
    if (plan.changes.length === 0) return { state: 'done', result, plan: [`${describeTarget(name, target)}: already in place`] };
    return { state: 'ready', plan: movePlan(ctx, plan, p) };
  },

  async apply(ctx, p) {
    const { name, target, plan } = await assess(ctx, p);
    try {
      return { name, type: target.type, to: p.to, changeId: await applyMove(ctx, plan, p) };
    } catch (error) {
      throw unable(`point ${name} at ${describeTarget(name, target)}`, error);
    }
  },

  async check(ctx, p) {
    const record = ctx.outputs.dns.records[p.record];
    const target = targetOf(record, p.to);
    const actual = await misplaced(ctx, record.name, target);
    if (actual === null) return [];
    return [
      {
        severity: 'error',
        object: `record ${record.name} ${target.type}`,
        message: `is ${actual}, expected ${describeTarget(record.name, target)}`,
      },
    ];
  },

  async undo(ctx, p, changes) {
    const { name } = ctx.outputs.dns.records[p.record];
    try {
      await undoMove(ctx, name, p, changes);
    } catch (error) {
      throw unable(`restore ${name} to its record set before the switch`, error);
    }
  },
});
