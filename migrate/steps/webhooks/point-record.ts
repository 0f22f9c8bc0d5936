/**
 * The two DNS moves of the webhook record (outputs.dns.records.webhooks): to the recorder before the
 * source stops, and to the new app after the switch. Both are one pointRecord (aws/route53.ts), which
 * journals the record set it replaces before changing it; undo puts that set back.
 */
import type { z } from 'zod';
import type { RecordTarget } from '../../aws/route53.ts';
import { blockedBy, defineStep, type Finding, type Probe, type StepContext, StepError, type StepKind, unable } from '../../core/step.ts';
import { applyMove, describeTarget, misplaced, moveParams, movePlan, readMove, undoMove } from '../aws/record-move.ts';

const params = moveParams.strict();
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

export function webhookRecordMove(move: WebhookMove): StepKind<Params, PointResult> {
  const recordName = (ctx: StepContext) => ctx.outputs.dns.records.webhooks.name;

  /** The target and the batch that moves the record there, or the findings that say why there is none. */
  async function assess(ctx: StepContext) {
    const name = recordName(ctx);
    let target: RecordTarget;
    try {
      target = move.target(ctx);
    } catch (error) {
      if (error instanceof StepError) return { name, findings: error.findings };
      throw error;
    }
    return { name, findings: [] as Finding[], target, plan: await readMove(ctx, name, target) };
  }

  return defineStep<Params, PointResult>({
    kind: move.kind,
    summary: move.summary,
    params,
    requires: ['aws'],
    destructive: true,

    async probe(ctx, p): Promise<Probe<PointResult>> {
      const { name, findings, target, plan } = await assess(ctx);
      if (!target || !plan) return { state: 'blocked', findings };
      if (plan.changes.length === 0) {
        return {
          state: 'done',
          result: { name, type: target.type, to: move.to, changeId: null },
          plan: [`${name} ${describeTarget(name, target)}: already in place`],
        };
      }
      return { state: 'ready', plan: [...movePlan(ctx, plan, p, `Point ${name} at the ${move.to}: `), ...move.notes(ctx)] };
    },

    async apply(ctx, p) {
      const { name, findings, target, plan } = await assess(ctx);
      if (!target || !plan) throw blockedBy(findings);
      try {
        return { name, type: target.type, to: move.to, changeId: await applyMove(ctx, plan, p) };
      } catch (error) {
        throw unable(`point ${name} at the ${move.to} (${describeTarget(name, target)})`, error);
      }
    },

    async check(ctx) {
      const target = move.target(ctx);
      const name = recordName(ctx);
      const actual = await misplaced(ctx, name, target);
      if (actual === null) return [];
      return [
        {
          severity: 'error',
          object: `record ${name} ${target.type}`,
          message: `is ${actual}, expected the ${move.to}: ${describeTarget(name, target)}`,
        },
      ];
    },

    async undo(ctx, p, changes) {
      const name = recordName(ctx);
      try {
        await undoMove(ctx, name, p, changes);
      } catch (error) {
        throw unable(`restore ${name} to its record set before ${move.kind}`, error);
      }
    },
  });
}
