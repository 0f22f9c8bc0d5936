/**
 * dns.switch: points a movable record (outputs.dns.records.<record>) at its cutover target, or back
 * at legacy. The change itself, INSYNC wait and authoritative check live in aws/route53.ts.
 */
import { z } from 'zod';
import type { MovableRecord } from '../../../infra/contract.ts';
import { buildSet, describeChange, fqdn, sameSet } from '../../aws/record-sets.ts';
import { planPointRecord, pointRecord, readMovableSets, restoreRecord, type DnsZone, type RecordTarget } from '../../aws/route53.ts';
import { defineStep, unable, type Json, type StepContext } from '../../core/step.ts';

const params = z.object({
  record: z.enum(['app', 'webhooks']),
  to: z.enum(['cutover', 'legacy']).default('cutover'),
  /** Ask the zone's authoritative servers for the new answer; default: yes unless the zone is private. */
  verifyAuthoritative: z.boolean().optional(),
  deadlineMinutes: z.number().positive().default(15),
});
type Params = z.infer<typeof params>;
type Result = { name: string; type: string; to: string; changeId: string | null };

export function zoneOf(ctx: StepContext): DnsZone {
  return { hostedZoneId: ctx.outputs.dns.hostedZoneId, privateZone: ctx.outputs.dns.privateZone };
}

/** The record as it should be: the lowered TTL stays after the switch, so a rollback propagates as fast. */
export function targetOf(record: MovableRecord, to: Params['to']): RecordTarget {
  return to === 'cutover'
    ? { type: record.cutoverType, ttl: record.cutoverTtl, value: record.cutover }
    : { type: record.type, ttl: record.cutoverTtl, value: record.legacy };
}

const describeTarget = (record: MovableRecord, target: RecordTarget) =>
  describeChange({ Action: 'UPSERT', ResourceRecordSet: buildSet(record.name, target.type, target.ttl, target.value) }).replace(/^UPSERT \S+ /, '');

export const dnsSwitch = defineStep<Params, Result>({
  kind: 'dns.switch',
  summary: 'Point a DNS record at its cutover (or legacy) target, wait INSYNC and confirm with the authoritative servers',
  params,
  requires: ['aws'],
  destructive: true,

  async probe(ctx, p) {
    const record = ctx.outputs.dns.records[p.record];
    const target = targetOf(record, p.to);
    const { changes } = await planPointRecord(ctx, zoneOf(ctx), record.name, target);
    const result = { name: record.name, type: target.type, to: p.to, changeId: null };
    if (changes.length === 0) return { state: 'done', result, plan: [`${describeTarget(record, target)}: already in place`] };
    const verify = p.verifyAuthoritative ?? !ctx.outputs.dns.privateZone;
    return {
      state: 'ready',
      plan: [
        `route53:ChangeResourceRecordSets HostedZoneId=${ctx.outputs.dns.hostedZoneId} in one batch:`,
        ...changes.map((c) => `  ${describeChange(c)}`),
        `wait until the change is INSYNC (up to ${p.deadlineMinutes} minutes)`,
        verify ? `confirm the new answer with the zone's authoritative name servers` : 'no authoritative check (private zone or disabled)',
      ],
    };
  },

  async apply(ctx, p) {
    const record = ctx.outputs.dns.records[p.record];
    const target = targetOf(record, p.to);
    try {
      const { changeId } = await pointRecord(ctx, zoneOf(ctx), record.name, target, {
        deadlineMs: p.deadlineMinutes * 60_000,
        verifyAuthoritative: p.verifyAuthoritative ?? !ctx.outputs.dns.privateZone,
      });
      return { name: record.name, type: target.type, to: p.to, changeId };
    } catch (error) {
      throw unable(`point ${record.name} at ${describeTarget(record, target)}`, error);
    }
  },

  async check(ctx, p) {
    const record = ctx.outputs.dns.records[p.record];
    const target = targetOf(record, p.to);
    const wanted = buildSet(record.name, target.type, target.ttl, target.value);
    const current = (await readMovableSets(ctx, zoneOf(ctx), record.name)).find((s) => s.Type === target.type);
    if (sameSet(current, wanted)) return [];
    return [{ severity: 'error', object: `record ${record.name} ${target.type}`, message: `is ${current ? describeChange({ Action: 'UPSERT', ResourceRecordSet: current }).replace(/^UPSERT \S+ /, '') : 'absent'}, expected ${describeTarget(record, target)}` }];
  },

  async undo(ctx, p, changes) {
    const record = ctx.outputs.dns.records[p.record];
    // The first change journalled for this name holds what was there before the run touched it.
    const first = (changes as readonly { action?: string; name?: string; previous?: Json }[]).find(
      (c) => c?.action === 'dns-change' && c.name === fqdn(record.name),
    );
    if (!first) return;
    try {
      await restoreRecord(ctx, zoneOf(ctx), record.name, first.previous ?? null, { deadlineMs: p.deadlineMinutes * 60_000 });
    } catch (error) {
      throw unable(`restore ${record.name} to its record set before the switch`, error);
    }
  },
});
