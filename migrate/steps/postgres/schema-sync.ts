/**
 * postgres.schema-sync (`migrate schema-sync`): brings DDL run on the source during the replication
 * week to the target, additive changes only: a new table, view, materialized view or sequence (with
 * its indexes, keys, policies, grants and comments, through `pg_dump --table`), a new column, a new
 * index; each object then gets its source owner, and the subscription is refreshed so a new table is
 * copied and replicated. Anything else (a changed type, a dropped column, a changed grant) is
 * reported with its fix and left to the operator: guessing would risk the data.
 */
import { z } from 'zod';
import { defineStep, type Finding, type StepContext, unable } from '../../core/step.ts';
import { pool, sourceUrl, targetUrl } from '../../postgres/connections.ts';
import { applyOwners, arrangeMemberships, owningRoles, releaseMemberships, undoMemberships } from '../../postgres/ownership.ts';
import { clientBindir, runTool } from '../../postgres/pg-tools.ts';
import { subscriptionInfo } from '../../postgres/replication.ts';
import { replicationNames } from '../../postgres/replication-names.ts';
import { readSchema } from '../../postgres/schema-compare/catalog.ts';
import { compareSchemas, differenceFindings, type SchemaDifference } from '../../postgres/schema-compare/compare.ts';
import { withoutUnknownSettings } from './schema-copy.ts';

const params = z.strictObject({
  subscription: replicationNames.subscription,
  /** Directory holding pg_dump and psql; `pg_config --bindir` when absent. */
  pgBinDir: z.string().min(1).optional(),
});
type Params = z.infer<typeof params>;
type Result = { applied: string[] };

const RELATIONS = new Set(['table', 'view', 'materialized view', 'sequence']);

interface Plan {
  /** Relations to copy whole with pg_dump --table. */
  relations: string[];
  /** Statements for new columns and indexes. */
  statements: { object: string; sql: string }[];
  /** What this step does not fix. */
  left: SchemaDifference[];
}

/** What the target lacks of the source schema, as the plan apply carries out. */
async function assess(ctx: StepContext): Promise<{ plan: Plan; findings: Finding[] }> {
  const [source, target] = await Promise.all([readSchema(await pool(ctx, 'source')), readSchema(await pool(ctx, 'target'))]);
  const result: Plan = { relations: [], statements: [], left: [] };
  for (const d of compareSchemas(source, target)) {
    const object = source.get(d.object);
    if (d.problem === 'missing on the target' && object && RELATIONS.has(object.kind)) result.relations.push(object.name);
    else if (d.problem === 'missing on the target' && object?.kind === 'column') {
      const column = object.name.slice(object.table!.length + 1);
      const p = object.props;
      result.statements.push({
        object: d.object,
        sql: `alter table ${object.table} add column ${column} ${p.type}${p.default ? ` default ${p.default}` : ''}${p['not null'] === 'true' ? ' not null' : ''}`,
      });
    } else if (d.problem === 'missing on the target' && object?.kind === 'index')
      result.statements.push({ object: d.object, sql: object.props.definition! });
    else result.left.push(d);
  }
  const findings = differenceFindings(result.left, 'warning').map((f) => ({ ...f, message: `not additive, left alone: ${f.message}` }));
  return { plan: result, findings };
}

const lines = (p: Plan) => [
  ...p.relations.map((r) => `create ${r} on the target as on the source (pg_dump --table)`),
  ...p.statements.map((s) => s.sql),
];

export const schemaSync = defineStep<Params, Result>({
  kind: 'postgres.schema-sync',
  summary: 'Apply additive schema changes of the source (new tables, columns, indexes) to the target',
  params,
  requires: ['postgres', 'shell'],
  destructive: false,

  async probe(ctx) {
    try {
      const { plan: p, findings } = await assess(ctx);
      if (p.relations.length + p.statements.length === 0) return { state: 'done', findings, result: { applied: [] } };
      return {
        state: 'ready',
        findings,
        plan: [...lines(p), 'give new objects their source owner; refresh the subscription so new tables replicate'],
      };
    } catch (error) {
      throw unable('compare the schemas of source and target', error);
    }
  },

  async apply(ctx, params) {
    try {
      const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
      const { plan: p } = await assess(ctx);
      const applied: string[] = [];
      const added = await arrangeMemberships(ctx, target, await owningRoles(source));
      try {
        if (p.relations.length > 0) {
          const bindir = clientBindir(params.pgBinDir);
          await ctx.record({ action: 'create-relations', relations: p.relations });
          const { stdout } = await runTool(
            bindir,
            'pg_dump',
            [
              '--schema-only',
              '--no-owner',
              '--no-publications',
              '--no-subscriptions',
              '--no-tablespaces',
              ...p.relations.flatMap((r) => ['--table', r]),
            ],
            await sourceUrl(ctx),
            undefined,
            ctx.signal,
          );
          const known = new Set((await target.query<{ name: string }>('select name from pg_settings')).rows.map((r) => r.name));
          await runTool(
            bindir,
            'psql',
            ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-f', '-'],
            await targetUrl(ctx),
            withoutUnknownSettings(stdout, known).dump,
            ctx.signal,
          );
          applied.push(...p.relations);
        }
        for (const statement of p.statements) {
          await ctx.record({ action: 'schema-sync', object: statement.object, sql: statement.sql });
          await target.query(statement.sql);
          applied.push(statement.object);
        }
        await applyOwners(ctx, source, target);
      } finally {
        await releaseMemberships(ctx, target, added);
      }
      const subscription = await subscriptionInfo(target, params.subscription);
      if (subscription && p.relations.length > 0) {
        await ctx.record({ action: 'refresh-subscription', name: params.subscription });
        await target.query(`alter subscription ${params.subscription} refresh publication`);
      }
      ctx.log.info(`applied ${applied.length} schema changes to the target: ${applied.join(', ')}`);
      return { applied };
    } catch (error) {
      throw unable('apply the source schema changes to the target', error);
    }
  },

  async check(ctx) {
    const { plan: p } = await assess(ctx);
    return [...p.relations, ...p.statements.map((s) => s.object)].map((object) => ({
      severity: 'error' as const,
      object,
      message: 'still missing on the target after schema-sync',
    }));
  },

  async undo(ctx, _p, changes) {
    await undoMemberships(await pool(ctx, 'target'), changes);
  },
});
