/**
 * postgres.refresh-matviews: logical replication does not carry materialized views, and the schema
 * copy creates them WITH NO DATA, so on the target they are empty or unpopulated ("has not been
 * populated" on the first SELECT after the switch). This refreshes on the target every materialized
 * view that is populated on the source, dependencies first, from the replicated tables. D-day runs it
 * before the freeze, outside the write window: the content is as fresh as the target's tables then,
 * as if the source had refreshed it at that moment.
 *
 * Always 'ready' when there are any: an earlier refresh (e.g. by the week-prior post-data restore)
 * holds older data. No undo: it only writes the target, which serves no one before the switch.
 */

import type pg from 'pg';
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type Finding, type StepContext, unable } from '../../core/step.ts';
import { pool } from '../../postgres/connections.ts';

const params = z
  .object({
    /** Refresh without blocking readers of the target (needs a unique index on each view); for a target already in use. */
    concurrently: z.boolean().default(false),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { refreshed: string[]; elapsedMs: number };

export interface MatView {
  name: string;
  populated: boolean;
  /** Materialized views this one reads, by name. */
  uses: string[];
}

export async function matviews(db: pg.Pool): Promise<MatView[]> {
  const { rows } = await db.query<{ name: string; populated: boolean; uses: string[] }>(
    `select format('%I.%I', n.nspname, c.relname) as name, c.relispopulated as populated,
            coalesce((select array_agg(distinct format('%I.%I', dn.nspname, dc.relname))
                        from pg_rewrite r join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
                        join pg_class dc on dc.oid = d.refobjid and dc.relkind = 'm' and dc.oid <> c.oid
                        join pg_namespace dn on dn.oid = dc.relnamespace
                       where r.ev_class = c.oid), '{}') as uses
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind = 'm' and n.nspname not in ('pg_catalog', 'information_schema')
      order by 1`,
  );
  return rows;
}

/** Dependencies first, so that a view reading another is refreshed from fresh data. */
export function refreshOrder(views: MatView[]): string[] {
  const byName = new Map(views.map((v) => [v.name, v]));
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const dependency of byName.get(name)?.uses ?? []) visit(dependency);
    if (byName.has(name)) order.push(name);
  };
  for (const v of views) visit(v.name);
  return order;
}

/** The views to refresh, dependencies first, and the ones missing on the target (which block). */
async function assess(ctx: StepContext): Promise<{ refresh: string[]; findings: Finding[] }> {
  const [onSource, onTarget] = await Promise.all([matviews(await pool(ctx, 'source')), matviews(await pool(ctx, 'target'))]);
  const targetNames = new Set(onTarget.map((v) => v.name));
  const missing = onSource.filter((v) => !targetNames.has(v.name)).map((v) => v.name);
  const findings: Finding[] = missing.length
    ? [
        {
          severity: 'error',
          object: `materialized views ${missing.join(', ')}`,
          message: 'exist on the source but not on the target',
          fix: 'copy the schema again (postgres.schema-copy, onPartialTarget: complete)',
        },
      ]
    : [];
  const wanted = new Set(onSource.filter((v) => v.populated).map((v) => v.name));
  // A view needed by a wanted one is refreshed too, whatever its state on the source.
  const order = refreshOrder(onTarget);
  const needed = new Set<string>();
  const byName = new Map(onTarget.map((v) => [v.name, v]));
  const need = (name: string) => {
    if (needed.has(name)) return;
    needed.add(name);
    for (const d of byName.get(name)?.uses ?? []) need(d);
  };
  for (const name of wanted) if (byName.has(name)) need(name);
  return { refresh: order.filter((name) => needed.has(name)), findings };
}

export const refreshMatviews = defineStep<Params, Result>({
  kind: 'postgres.refresh-matviews',
  summary: 'Refresh on the target every materialized view populated on the source, dependencies first',
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    const { refresh, findings } = await assess(ctx);
    if (blocks(findings)) return { state: 'blocked', findings };
    if (refresh.length === 0) return { state: 'done', result: { refreshed: [], elapsedMs: 0 } };
    return {
      state: 'ready',
      plan: refresh.map((name) => `REFRESH MATERIALIZED VIEW${p.concurrently ? ' CONCURRENTLY' : ''} ${name} on the target`),
    };
  },

  async apply(ctx, p) {
    const target = await pool(ctx, 'target');
    const { refresh, findings } = await assess(ctx);
    if (blocks(findings)) throw blockedBy(findings);
    const started = ctx.now();
    await ctx.record({ action: 'refresh-matviews', views: refresh });
    for (const [i, name] of refresh.entries()) {
      ctx.log.progress({ label: 'refreshing materialized views', done: i, total: refresh.length, detail: name });
      const populated = (await target.query(`select relispopulated as p from pg_class where oid = $1::regclass`, [name])).rows[0].p;
      try {
        // CONCURRENTLY needs a populated view; the first refresh cannot be concurrent.
        await target.query(`refresh materialized view${p.concurrently && populated ? ' concurrently' : ''} ${name}`);
      } catch (error) {
        throw unable(`refresh materialized view ${name} on the target`, error);
      }
    }
    const elapsedMs = ctx.now() - started;
    ctx.log.info(`refreshed ${refresh.length} materialized views on the target in ${elapsedMs} ms`);
    return { refreshed: refresh, elapsedMs };
  },

  async check(ctx, _p, result) {
    const onTarget = new Map((await matviews(await pool(ctx, 'target'))).map((v) => [v.name, v]));
    return result.refreshed
      .filter((name) => !onTarget.get(name)?.populated)
      .map((name) => ({
        severity: 'error' as const,
        object: `materialized view ${name} (target)`,
        message: 'is not populated: selecting from it fails',
        fix: `REFRESH MATERIALIZED VIEW ${name} on the target`,
      }));
  },
});

/** Materialized views the source has populated and the target has not: selecting from them fails after the switch. */
export async function unpopulatedFindings(source: pg.Pool, target: pg.Pool): Promise<Finding[]> {
  const [onSource, onTarget] = await Promise.all([matviews(source), matviews(target)]);
  const populated = new Map(onTarget.map((v) => [v.name, v.populated]));
  return onSource
    .filter((v) => v.populated && populated.get(v.name) === false)
    .map((v) => ({
      severity: 'error' as const,
      object: `materialized view ${v.name} (target)`,
      message: 'is not populated (materialized views are not replicated): selecting from it fails',
      fix: 'run postgres.refresh-matviews (d-day step refresh-matviews)',
    }));
}
