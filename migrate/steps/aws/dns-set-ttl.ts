/**
 * dns.set-ttl (the day before): lowers the TTL of the records that will move, keeping their values,
 * so resolvers forget the legacy answer within minutes of the switch.
 *
 * Undo puts the recorded TTL back on whatever values the record has then, rather than the whole
 * recorded set: if dns.switch was not undone first, restoring the old values too would silently
 * revert the cutover.
 */
import { z } from 'zod';
import { type Change, changesFor, describeChange, fqdn, type RecordSet } from '../../aws/record-sets.ts';
import { readMovableSets, submitChange } from '../../aws/route53.ts';
import { blockedBy, blocks, defineStep, type Finding, type Json, type StepContext, unable } from '../../core/step.ts';
import { zoneOf } from './record-move.ts';

const params = z.object({
  records: z
    .array(z.enum(['app', 'webhooks']))
    .min(1)
    .default(['app', 'webhooks']),
  /** Overrides each record's cutoverTtl from the outputs. */
  ttl: z.number().int().positive().optional(),
  deadlineMinutes: z.number().positive().default(15),
});
type Params = z.infer<typeof params>;

interface Lowered {
  name: string;
  type: string;
  previousTtl: number;
  ttl: number;
  [key: string]: Json;
}
type Result = { records: Lowered[] };

interface TtlChange {
  action: 'dns-ttl';
  name: string;
  type: string;
  previousTtl: number;
  previous: RecordSet;
}

/** One record: what it is now and the UPSERT to send, or none when the TTL is already low enough. */
interface RecordTtl {
  key: 'app' | 'webhooks';
  name: string;
  ttl: number;
  current?: RecordSet;
  change?: Change;
}

async function assess(ctx: StepContext, p: Params): Promise<{ findings: Finding[]; records: RecordTtl[] }> {
  const findings: Finding[] = [];
  const records: RecordTtl[] = [];
  for (const key of p.records) {
    const record = ctx.outputs.dns.records[key];
    const ttl = p.ttl ?? record.cutoverTtl;
    const sets = await readMovableSets(ctx, zoneOf(ctx), record.name);
    const current = sets.find((s) => s.Type === record.type);
    if (!current) {
      findings.push({
        severity: 'error',
        object: `record ${record.name} ${record.type}`,
        message: `not found in zone ${ctx.outputs.dns.hostedZoneId}`,
        fix: `check outputs.dns.records.${key} (name and type) against the zone`,
      });
      records.push({ key, name: record.name, ttl });
    } else if (current.AliasTarget) {
      findings.push({
        severity: 'info',
        object: `record ${record.name} ${record.type}`,
        message: 'is an alias: Route53 uses the target’s TTL, nothing to lower',
      });
      records.push({ key, name: record.name, ttl, current });
    } else if ((current.TTL ?? 0) <= ttl) {
      records.push({ key, name: record.name, ttl, current });
    } else {
      const [change] = changesFor([current], [{ ...current, TTL: ttl }], [current.Type]);
      records.push({ key, name: record.name, ttl, current, ...(change ? { change } : {}) });
    }
  }
  return { findings, records };
}

const lowered = (a: RecordTtl, previousTtl: number): Lowered => ({
  name: a.name,
  type: a.current?.Type ?? '',
  previousTtl,
  ttl: Math.min(a.ttl, a.current?.TTL ?? a.ttl),
});

export const dnsSetTtl = defineStep<Params, Result>({
  kind: 'dns.set-ttl',
  summary: 'Lower the TTL of the records the cutover will move (the day before)',
  params,
  requires: ['aws'],
  destructive: false,

  async probe(ctx, p) {
    const { findings, records } = await assess(ctx, p);
    if (blocks(findings)) return { state: 'blocked', findings };
    const pending = records.filter((a) => a.change);
    if (pending.length === 0)
      return {
        state: 'done',
        findings,
        result: { records: records.filter((a) => a.current && !a.current.AliasTarget).map((a) => lowered(a, a.current!.TTL ?? a.ttl)) },
      };
    return {
      state: 'ready',
      findings,
      plan: pending.flatMap((a) => [
        `route53:ChangeResourceRecordSets HostedZoneId=${ctx.outputs.dns.hostedZoneId} ${describeChange(a.change!)} (was TTL ${a.current!.TTL})`,
        `wait until INSYNC`,
      ]),
    };
  },

  async apply(ctx, p) {
    const deadline = ctx.now() + p.deadlineMinutes * 60_000;
    const assessed = await assess(ctx, p);
    if (blocks(assessed.findings)) throw unable('lower DNS TTLs', blockedBy(assessed.findings));
    const recorded = new Map(
      (ctx.previousChanges as readonly Partial<TtlChange>[])
        .filter((c) => c?.action === 'dns-ttl')
        .map((c) => [c.name, c.previousTtl ?? 0]),
    );
    const records: Lowered[] = [];
    for (const a of assessed.records) {
      if (!a.current || a.current.AliasTarget) continue;
      const previousTtl = recorded.get(fqdn(a.name)) ?? a.current.TTL ?? a.ttl;
      if (a.change) {
        try {
          await ctx.record({ action: 'dns-ttl', name: fqdn(a.name), type: a.current.Type, previousTtl, previous: a.current as Json });
          await submitChange(ctx, zoneOf(ctx), [a.change], deadline);
          ctx.log.info(`${a.name}: TTL ${a.current.TTL} → ${a.ttl}`);
        } catch (error) {
          throw unable(`lower the TTL of ${a.name} to ${a.ttl}`, error);
        }
      }
      records.push(lowered(a, previousTtl));
    }
    return { records };
  },

  async check(ctx, p) {
    const { records } = await assess(ctx, p);
    return records
      .filter((a) => a.change)
      .map((a) => ({
        severity: 'error' as const,
        object: `record ${a.name}`,
        message: `TTL is ${a.current?.TTL}, expected at most ${a.ttl}`,
      }));
  },

  async undo(ctx, p, changes) {
    const deadline = ctx.now() + p.deadlineMinutes * 60_000;
    const firsts = new Map<string, TtlChange>();
    for (const change of changes as readonly unknown[] as readonly TtlChange[])
      if (change?.action === 'dns-ttl' && !firsts.has(change.name)) firsts.set(change.name, change);
    for (const recorded of firsts.values()) {
      try {
        const current = (await readMovableSets(ctx, zoneOf(ctx), recorded.name)).find((s) => s.Type === recorded.type);
        if (!current || current.AliasTarget) {
          ctx.log.warn(`${recorded.name}: no ${recorded.type} record with a TTL any more; TTL ${recorded.previousTtl} not restored`);
          continue;
        }
        const batch = changesFor([current], [{ ...current, TTL: recorded.previousTtl }], [current.Type]);
        if (batch.length === 0) continue;
        await submitChange(ctx, zoneOf(ctx), batch, deadline);
        ctx.log.info(`${recorded.name}: TTL ${current.TTL} → ${recorded.previousTtl} (restored)`);
      } catch (error) {
        throw unable(`restore the TTL of ${recorded.name} to ${recorded.previousTtl}`, error);
      }
    }
  },
});
