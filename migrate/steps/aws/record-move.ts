/**
 * What the steps that move one DNS record share (dns.switch, webhooks.redirect, webhooks.restore):
 * one reading of the record that probe plans from and apply carries out, the plan lines, the
 * postcondition, and the undo from the set journalled before the first change.
 */
import { z } from 'zod';
import { buildSet, describeChange, fqdn, type RecordSet, sameSet } from '../../aws/record-sets.ts';
import {
  type DnsZone,
  type PointPlan,
  planPointRecord,
  pointRecord,
  type RecordTarget,
  readMovableSets,
  restoreRecord,
} from '../../aws/route53.ts';
import type { Json, StepContext } from '../../core/step.ts';

export const moveParams = z.object({
  /** Ask the zone's authoritative servers for the new answer; default: yes unless the zone is private. */
  verifyAuthoritative: z.boolean().optional(),
  deadlineMinutes: z.number().positive().default(15),
});
type MoveParams = z.infer<typeof moveParams>;

export function zoneOf(ctx: StepContext): DnsZone {
  return { hostedZoneId: ctx.outputs.dns.hostedZoneId, privateZone: ctx.outputs.dns.privateZone };
}

/** A set without its name: `A TTL 60 203.0.113.5` or `A alias … (zone …)`. */
const describeSet = (set: RecordSet) => describeChange({ Action: 'UPSERT', ResourceRecordSet: set }).replace(/^UPSERT \S+ /, '');

export const describeTarget = (name: string, target: RecordTarget) => describeSet(buildSet(name, target.type, target.ttl, target.value));

/** Reads the record and plans the batch that points it at `target`. */
export function readMove(ctx: StepContext, name: string, target: RecordTarget): Promise<PointPlan> {
  return planPointRecord(ctx, zoneOf(ctx), name, target);
}

const verifies = (ctx: StepContext, p: MoveParams) => p.verifyAuthoritative ?? !ctx.outputs.dns.privateZone;

/** Plan lines of a move that has changes to send. */
export function movePlan(ctx: StepContext, plan: PointPlan, p: MoveParams, heading = ''): string[] {
  return [
    `${heading}route53:ChangeResourceRecordSets HostedZoneId=${ctx.outputs.dns.hostedZoneId} in one batch:`,
    ...plan.changes.map((c) => `  ${describeChange(c)}`),
    `wait until the change is INSYNC (up to ${p.deadlineMinutes} minutes)`,
    verifies(ctx, p)
      ? `confirm the new answer with the zone's authoritative name servers`
      : 'no authoritative check (private zone or disabled)',
  ];
}

/** Carries out the plan; the change id, or null when there was nothing to change. */
export async function applyMove(ctx: StepContext, plan: PointPlan, p: MoveParams): Promise<string | null> {
  const { changeId } = await pointRecord(ctx, zoneOf(ctx), plan, {
    deadlineMs: p.deadlineMinutes * 60_000,
    verifyAuthoritative: verifies(ctx, p),
  });
  return changeId;
}

/** What the record holds instead of `target` (`absent` when nothing of its type), or null when it is in place. */
export async function misplaced(ctx: StepContext, name: string, target: RecordTarget): Promise<string | null> {
  const current = (await readMovableSets(ctx, zoneOf(ctx), name)).find((s) => s.Type === target.type);
  if (sameSet(current, buildSet(name, target.type, target.ttl, target.value))) return null;
  return current ? describeSet(current) : 'absent';
}

/** Puts back what the record held before the step: the first change journalled for the name holds it. */
export async function undoMove(ctx: StepContext, name: string, p: MoveParams, changes: readonly Json[]): Promise<void> {
  const first = (changes as readonly { action?: string; name?: string; previous?: Json }[]).find(
    (c) => c?.action === 'dns-change' && c.name === fqdn(name),
  );
  if (!first) return;
  await restoreRecord(ctx, zoneOf(ctx), name, first.previous ?? null, { deadlineMs: p.deadlineMinutes * 60_000 });
}
