/**
 * The two DNS moves of the webhook record (outputs.dns.records.webhooks): to the recorder before the
 * source stops, and to the new app after the switch. Both are one pointRecord (aws/route53.ts), which
 * journals the record set it replaces before changing it; undo puts that set back.
 */
import { z } from 'zod';
import { buildSet, describeChange, fqdn, sameSet } from '../../aws/record-sets.ts';
import { planPointRecord, pointRecord, readMovableSets, restoreRecord, type RecordTarget } from '../../aws/route53.ts';
import { defineStep, StepError, unable, type Json, type Probe, type StepContext, type StepKind } from '../../core/step.ts';
import { zoneOf } from '../aws/dns-switch.ts';

const params = z
  .object({
    /** Ask the zone's authoritative servers for the new answer; default: yes unless the zone is private. */
    verifyAuthoritative: z.boolean().optional(),
    deadlineMinutes: z.number().positive().default(15),
  })
  .strict();
type Params = z.infer<typeof params>;

export type PointResult = { name: string; type: string; to: string; changeId: string | null };

interface WebhookMove {
  kind: string;
  summary: string;
  /** `recorder` or `new app`: how plans and results name the destination. */
  to: string;
  /** The target, or a StepError when the stack cannot provide one. */
  target(ctx: StepContext): RecordTarget;
  /** Extra plan lines (what the operator should know about this move). */
  notes(ctx: StepContext): string[];
}

const describeTarget = (name: string, target: RecordTarget) =>
  describeChange({ Action: 'UPSERT', ResourceRecordSet: buildSet(name, target.type, target.ttl, target.value) }).replace(/^UPSERT \S+ /, '');

export function webhookRecordMove(move: WebhookMove): StepKind<Params, PointResult> {
  const recordName = (ctx: StepContext) => ctx.outputs.dns.records.webhooks.name;
  return defineStep<Params, PointResult>({
    kind: move.kind,
    summary: move.summary,
    params,
    requires: ['aws'],
    destructive: true,

    async probe(ctx, p): Promise<Probe<PointResult>> {
      let target: RecordTarget;
      try {
        target = move.target(ctx);
      } catch (error) {
        if (error instanceof StepError) return { state: 'blocked', findings: error.findings };
        throw error;
      }
      const name = recordName(ctx);
      const { changes } = await planPointRecord(ctx, zoneOf(ctx), name, target);
      if (changes.length === 0) {
        return { state: 'done', result: { name, type: target.type, to: move.to, changeId: null }, plan: [`${name} ${describeTarget(name, target)}: already in place`] };
      }
      const verify = p.verifyAuthoritative ?? !ctx.outputs.dns.privateZone;
      return {
        state: 'ready',
        plan: [
          `Point ${name} at the ${move.to}: route53:ChangeResourceRecordSets HostedZoneId=${ctx.outputs.dns.hostedZoneId} in one batch:`,
          ...changes.map((c) => `  ${describeChange(c)}`),
          `wait until the change is INSYNC (up to ${p.deadlineMinutes} minutes)`,
          verify ? `confirm the new answer with the zone's authoritative name servers` : 'no authoritative check (private zone or disabled)',
          ...move.notes(ctx),
        ],
      };
    },

    async apply(ctx, p) {
      const target = move.target(ctx);
      const name = recordName(ctx);
      try {
        const { changeId } = await pointRecord(ctx, zoneOf(ctx), name, target, {
          deadlineMs: p.deadlineMinutes * 60_000,
          verifyAuthoritative: p.verifyAuthoritative ?? !ctx.outputs.dns.privateZone,
        });
        return { name, type: target.type, to: move.to, changeId };
      } catch (error) {
        throw unable(`point ${name} at the ${move.to} (${describeTarget(name, target)})`, error);
      }
    },

    async check(ctx) {
      const target = move.target(ctx);
      const name = recordName(ctx);
      const wanted = buildSet(name, target.type, target.ttl, target.value);
      const current = (await readMovableSets(ctx, zoneOf(ctx), name)).find((s) => s.Type === target.type);
      if (sameSet(current, wanted)) return [];
      const actual = current ? describeChange({ Action: 'UPSERT', ResourceRecordSet: current }).replace(/^UPSERT \S+ /, '') : 'absent';
      return [{ severity: 'error', object: `record ${name} ${target.type}`, message: `is ${actual}, expected the ${move.to}: ${describeTarget(name, target)}` }];
    },

    async undo(ctx, p, changes) {
      const name = recordName(ctx);
      // The first change journalled for the name holds what was there before this step touched it.
      const first = (changes as readonly { action?: string; name?: string; previous?: Json }[]).find((c) => c?.action === 'dns-change' && c.name === fqdn(name));
      if (!first) return;
      try {
        await restoreRecord(ctx, zoneOf(ctx), name, first.previous ?? null, { deadlineMs: p.deadlineMinutes * 60_000 });
      } catch (error) {
        throw unable(`restore ${name} to its record set before ${move.kind}`, error);
      }
    },
  });
}
