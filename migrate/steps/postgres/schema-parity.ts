/**
 * postgres.schema-parity: D-day's go/no-go on the schema. Both servers compared object by object
 * (tables, columns and types, indexes, constraints, sequences, views, policies, owners, ACLs, …);
 * any difference blocks, each listed with its fix, before anything is frozen or redirected: DDL run
 * on the source during the replication week either stops the apply worker or silently narrows what
 * is replicated, and either would surface only after the switch. Read-only.
 */
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type Finding, type StepContext, unable } from '../../core/step.ts';
import { pool } from '../../postgres/connections.ts';
import { compareServers, differenceFindings, fingerprint } from '../../postgres/schema-compare/compare.ts';

const params = z.strictObject({
  /** The source schema's fingerprint recorded at week-prior (schema-copy post-data's result), to say whether the source changed since. */
  baseline: z.string().optional(),
});
type Params = z.infer<typeof params>;
type Result = { objects: number; fingerprint: string; changedSinceBaseline: boolean | null };

async function assess(ctx: StepContext, p: Params): Promise<{ findings: Finding[]; result: Result }> {
  const { differences, source } = await compareServers(await pool(ctx, 'source'), await pool(ctx, 'target'));
  const print = fingerprint(source);
  const changed = p.baseline ? p.baseline !== print : null;
  const findings = differenceFindings(differences);
  if (changed)
    findings.push({
      severity: findings.length > 0 ? 'warning' : 'info',
      object: 'source schema',
      message: `changed since week-prior (fingerprint ${p.baseline} → ${print})`,
    });
  return { findings, result: { objects: source.size, fingerprint: print, changedSinceBaseline: changed } };
}

export const schemaParity = defineStep<Params, Result>({
  kind: 'postgres.schema-parity',
  summary: 'Go/no-go: refuse when source and target schemas differ in any object, owner or privilege',
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    try {
      const { findings, result } = await assess(ctx, p);
      if (blocks(findings)) return { state: 'blocked', findings };
      return { state: 'done', findings, result };
    } catch (error) {
      throw unable('compare the schemas of source and target', error);
    }
  },

  async apply(ctx, p) {
    const assessed = await assess(ctx, p).catch((error: unknown) => {
      throw unable('compare the schemas of source and target', error);
    });
    if (blocks(assessed.findings)) throw blockedBy(assessed.findings);
    return assessed.result;
  },

  async check(ctx, p) {
    return (await assess(ctx, p)).findings.filter((f) => f.severity === 'error');
  },
});
