/**
 * `postgres.verify`: proves the target holds the source's data, table by table: row counts, then a
 * checksum of every row, and on a mismatch the key ranges and keys of the rows that differ. Read-only
 * on both servers, so it has nothing to undo and can run as often as wanted (before the freeze to
 * rehearse, after catch-up to decide).
 */
import { z } from 'zod';
import type { Finding, Json, StepContext, StepKind } from '../../core/step.ts';
import { defineStep, unable } from '../../core/step.ts';
import { pairTables, poolQuery } from '../../postgres/compare/catalog.ts';
import { compareDatabases, differs } from '../../postgres/compare/compare.ts';
import type { KeyValue, TableReport, VerifyReport } from '../../postgres/compare/types.ts';
import { pool } from '../../postgres/connections.ts';
import { privilegeDifferences } from '../../postgres/schema-compare/privileges.ts';
import { unpopulatedFindings } from './refresh-matviews.ts';

const params = z.strictObject({
  /** Schemas to compare; every non-system schema when absent. */
  schemas: z.array(z.string().min(1)).min(1).optional(),
  /** `schema.table` names to leave out; `*` matches any characters (`audit.*`). */
  excludeTables: z.array(z.string().min(1)).default([]),
  /** counts: row counts only; checksum: counts and row checksums; full: checksums, then the differing keys. */
  mode: z.enum(['counts', 'checksum', 'full']).default('full'),
  /** Tables compared at once. Each uses a connection per side, and the run's pools hold 8 (one is the snapshot holder). */
  concurrency: z.number().int().min(1).max(7).default(4),
  /** Differing rows listed per table before the search stops. */
  maxDifferences: z.number().int().min(1).max(10_000).default(100),
  /** max_parallel_workers_per_gather for the comparison queries; the servers' own setting when absent. */
  parallelWorkers: z.number().int().min(0).max(64).optional(),
  /**
   * What a difference does, decided in the runbook before D-day rather than inside the write window:
   * stop (the step fails, writes stay frozen for the operator to decide) or report (each differing
   * table is a warning, the run continues, the result keeps the differing keys).
   */
  onDifference: z.enum(['stop', 'report']).default('stop'),
});
type Params = z.infer<typeof params>;
/** Owners and privileges that differ, beside the rows: an app that cannot write after the switch is a failed cutover too. */
type Result = VerifyReport & { privileges: Finding[] } & Json;

const MODE_PLAN: Record<Params['mode'], string> = {
  counts: 'row counts',
  checksum: 'row counts and checksums',
  full: 'row counts and checksums, narrowing any mismatch to its key ranges and keys',
};

function formatKey(key: KeyValue): string {
  return Object.entries(key)
    .map(([column, value]) => `${column}=${value}`)
    .join(',');
}

function describeDifferences(table: TableReport): string {
  if (table.problem) return table.problem;
  const counts = `${table.rows.source} rows on the source, ${table.rows.target} on the target`;
  const checksum = table.checksum === 'mismatch' ? '; row checksums differ' : '';
  const rows = table.differences.rows;
  if (rows.length === 0) return `${counts}${checksum}${table.key.length ? '' : ' (no primary key: rows cannot be listed)'}`;
  const shown = rows
    .slice(0, 10)
    .map((r) => `${formatKey(r.key)} (${r.kind})`)
    .join(', ');
  const more = table.differences.truncated ? ' and more' : rows.length > 10 ? ` and ${rows.length - 10} more` : '';
  return `${counts}${checksum}; ${rows.length} differing rows: ${shown}${more}`;
}

export const verify: StepKind<Params, Result> = defineStep<Params, Result>({
  kind: 'postgres.verify',
  summary: 'Compare row counts and row checksums of every table between source and target, listing the keys of differing rows',
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    try {
      const [source, target] = await Promise.all([pool(ctx, 'source'), pool(ctx, 'target')]);
      const pairs = await pairTables(poolQuery(source), poolQuery(target), p);
      const findings: Finding[] = pairs
        .filter((pair) => !pair.target)
        .map((pair) => ({
          severity: 'warning' as const,
          object: `table ${pair.source.schema}.${pair.source.name}`,
          message: 'exists on the source but not on the target; verification will report it as different',
          fix: 'Copy the schema again (postgres.schema-copy), or list the table in excludeTables if it is not migrated.',
        }));
      const plan = [
        `compare ${pairs.length} tables on source and target: ${MODE_PLAN[p.mode]} (${p.concurrency} tables at a time, read-only)`,
        ...pairs.map(
          ({ source: t }) =>
            `  ${t.schema}.${t.name} (~${t.estimatedRows} rows, ${t.key.length ? `key ${t.key.join(', ')}` : 'no primary key: whole-table checksum'})`,
        ),
      ];
      return { state: 'ready', plan, findings };
    } catch (error) {
      throw unable('list the tables to verify', error);
    }
  },

  async apply(ctx, p) {
    const [source, target] = await Promise.all([pool(ctx, 'source'), pool(ctx, 'target')]);
    try {
      const report = await compareDatabases(ctx, { source, target }, p);
      const privileges = await privilegeDifferences(source, target);
      const { summary } = report;
      ctx.log.info(
        `verified ${summary.tables} tables, ${summary.rows} rows in ${(summary.durationMs / 1000).toFixed(1)} s (${summary.rowsPerSecond} rows/s): ` +
          (summary.tablesDiffering ? `${summary.tablesDiffering} differ` : 'all identical'),
      );
      // With stop, the postcondition's findings name each differing table (printed once, there).
      if (p.onDifference === 'report') {
        for (const table of report.tables.filter(differs))
          ctx.log.warn(`table ${table.table}: ${describeDifferences(table)} (onDifference: report, continuing)`);
        for (const finding of privileges) ctx.log.warn(`${finding.object}: ${finding.message} (onDifference: report, continuing)`);
      }
      return { ...report, privileges } as Result;
    } catch (error) {
      throw unable('verify the target against the source', error);
    }
  },

  async check(ctx: StepContext, p, result) {
    if (p.onDifference === 'report') return [];
    const views = await unpopulatedFindings(await pool(ctx, 'source'), await pool(ctx, 'target'));
    const rows: Finding[] = result.tables.filter(differs).map((table) => ({
      severity: 'error' as const,
      object: `table ${table.table}`,
      message: describeDifferences(table),
      fix: table.problem
        ? 'Copy the schema again (postgres.schema-copy), or list the table in excludeTables if it is not migrated.'
        : 'Make sure replication has caught up (postgres.catch-up) and nothing else writes to the target, then run verify again; the step result lists the differing keys and key ranges.',
    }));
    return [...views, ...rows, ...(result.privileges ?? [])];
  },
});

export const verifySteps: StepKind[] = [verify];
