/**
 * `postgres.verify`: proves the target holds the source's data, table by table: row counts, then a
 * checksum of every row, and on a mismatch the key ranges and keys of the rows that differ. Read-only
 * on both servers, so it has nothing to undo and can run as often as wanted (before the freeze to
 * rehearse, after catch-up to decide).
 *
 * With `at` (a switch point from postgres.pin-switch-point) everything it compares is as of that
 * point, while the app writes to the target: rows, counts and keys through the pinned snapshots,
 * owners and privileges through the same snapshots' catalogs, sequences from the positions recorded
 * at the pin. It then releases the holder. A rerun (resume after kill -9) proves the same point, or
 * fails saying why it cannot: it never verifies the present instead.
 */
import { z } from 'zod';
import type { Finding, Json, StepContext, StepKind } from '../../core/step.ts';
import { defineStep, RollbackRequested, StepError, unable } from '../../core/step.ts';
import { pairTables, poolQuery } from '../../postgres/compare/catalog.ts';
import { compareDatabases, differs } from '../../postgres/compare/compare.ts';
import type { KeyValue, PinnedProof, TableReport, VerifyReport } from '../../postgres/compare/types.ts';
import { pool } from '../../postgres/connections.ts';
import { privilegeDifferences } from '../../postgres/schema-compare/privileges.ts';
import { releaseHolder, type Sessions } from '../../postgres/switch-point/holder.ts';
import type { SwitchPoint } from '../../postgres/switch-point/point.ts';
import { switchPointSchema } from '../../postgres/switch-point/point.ts';
import { PointLostError, type ProofAtPoint, proveAtPoint } from '../../postgres/switch-point/prove.ts';
import { decisionAdvice, pointStatus } from '../../postgres/switch-point/status.ts';
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
   * table is a warning, the run continues, the result keeps the differing keys), or rollback (for the
   * proof after the switch: the step fails with a VerifyRollbackError, `rollback: true`, asking the
   * engine to roll the cutover back).
   */
  onDifference: z.enum(['stop', 'report', 'rollback']).default('stop'),
  /** The switch point to prove (`${{ steps.<pin>.switchPoint }}`): compare its snapshots instead of the present. */
  at: switchPointSchema.optional(),
});
type Params = z.infer<typeof params>;
/**
 * Owners and privileges that differ, beside the rows: an app that cannot write after the switch is a
 * failed cutover too. With `at`: sequences at the pin, and what the pinned proof cost.
 */
type Result = VerifyReport & { privileges: Finding[]; sequences?: Finding[]; switchPoint?: PinnedProof } & Json;

/**
 * A difference under `onDifference: rollback`: the findings name each differing table (and key),
 * privilege and sequence; `rollback` tells the engine the runbook asked for a rollback.
 */
export class VerifyRollbackError extends RollbackRequested {
  readonly rollback = true as const;
  constructor(message: string, findings: Finding[]) {
    super(message, findings);
    this.name = 'VerifyRollbackError';
  }
}

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
      if (p.at && !earlierProof(ctx, p.at)) {
        const status = await pointStatus({ source, target }, p.at, ctx.now());
        if (!status.importable) return { state: 'blocked', findings: [pointLost(p.at, status.reasons)] };
      }
      const plan = [
        `compare ${pairs.length} tables on source and target${p.at ? ` as they were at the switch point pinned at ${p.at.pinnedAt}` : ''}: ${MODE_PLAN[p.mode]} (${p.concurrency} tables at a time, read-only)`,
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
    if (p.at) return applyAtPoint(ctx, p, { source, target }, p.at);
    try {
      const report = await compareDatabases(ctx, { source, target }, p);
      const privileges = await privilegeDifferences(source, target);
      const { summary } = report;
      ctx.log.info(
        `verified ${summary.tables} tables, ${summary.rows} rows in ${(summary.durationMs / 1000).toFixed(1)} s (${summary.rowsPerSecond} rows/s): ` +
          (summary.tablesDiffering ? `${summary.tablesDiffering} differ` : 'all identical'),
      );
      if (p.onDifference === 'report') warnEach(ctx, report, privileges);
      return { ...report, privileges } as Result;
    } catch (error) {
      throw unable('verify the target against the source', error);
    }
  },

  async check(ctx: StepContext, p, result) {
    if (p.onDifference === 'report') return [];
    const views = await unpopulatedFindings(await pool(ctx, 'source'), await pool(ctx, 'target'));
    const at = p.at ? ` at the switch point (${p.at.pinnedAt})` : '';
    const rows: Finding[] = result.tables.filter(differs).map((table) => ({
      severity: 'error' as const,
      object: `table ${table.table}`,
      message: `${describeDifferences(table)}${at}`,
      fix: table.problem
        ? p.at && table.problem.startsWith('rewritten')
          ? decisionAdvice(p.at)
          : 'Copy the schema again (postgres.schema-copy), or list the table in excludeTables if it is not migrated.'
        : p.at
          ? "The target did not hold the source's rows when the app was switched to it: roll back (reverse replication has kept the writes made since), repair the listed keys, and run D-day again; the step result lists the differing keys and key ranges."
          : 'Make sure replication has caught up (postgres.catch-up) and nothing else writes to the target, then run verify again; the step result lists the differing keys and key ranges.',
    }));
    const findings = [...views, ...rows, ...(result.privileges ?? []), ...(result.sequences ?? [])];
    if (p.onDifference === 'rollback' && findings.some((f) => f.severity === 'error'))
      throw new VerifyRollbackError(
        `${findings.filter((f) => f.severity === 'error').length} difference(s) between source and target${at}; the runbook asks for a rollback (onDifference: rollback)`,
        findings,
      );
    return findings;
  },
});

/** With report, each difference is a warning here; otherwise the postcondition's findings name each one (printed once, there). */
function warnEach(ctx: StepContext, report: VerifyReport, ...lists: Finding[][]): void {
  for (const table of report.tables.filter(differs))
    ctx.log.warn(`table ${table.table}: ${describeDifferences(table)} (onDifference: report, continuing)`);
  for (const finding of lists.flat()) ctx.log.warn(`${finding.object}: ${finding.message} (onDifference: report, continuing)`);
}

function pointLost(point: SwitchPoint, reasons: string[]): Finding {
  return {
    severity: 'error',
    object: `switch point ${point.pinnedAt}`,
    message: `can no longer be proven: ${reasons.join('; ')}`,
    fix: decisionAdvice(point),
  };
}

/** What an earlier attempt proved at this same point (recorded before the holder was released). */
function earlierProof(ctx: StepContext, point: SwitchPoint): Result | undefined {
  for (const change of [...ctx.previousChanges].reverse()) {
    const c = change as { action?: string; tag?: string; result?: Result };
    if (c.action === 'proved' && c.tag === point.holder.tag && c.result) return c.result;
  }
  return undefined;
}

async function applyAtPoint(ctx: StepContext, p: Params, pools: Sessions, point: SwitchPoint): Promise<Result> {
  // Killed after the proof completed but before the run recorded the step: the same proof, not a new one.
  const proved = earlierProof(ctx, point);
  if (proved) {
    ctx.log.info(`the switch point pinned at ${point.pinnedAt} was proven by an earlier attempt of this step; its outcome stands`);
    await releaseHolder(pools, point.holder);
    return proved;
  }
  let proof: ProofAtPoint;
  try {
    proof = await proveAtPoint(ctx, pools, point, p);
  } catch (error) {
    if (error instanceof PointLostError)
      throw new StepError(`Unable to verify the target against the source: ${error.message}; nothing was verified at any other point`, [
        pointLost(point, error.reasons),
      ]);
    // The holder stays: a rerun (resume) proves the same point.
    throw unable('verify the target against the source at the switch point', error);
  }
  const { report, privileges, sequences } = proof;
  const result = { ...report, privileges, sequences, switchPoint: { ...proof.proof, released: true } } as Result;
  await ctx.record({ action: 'proved', tag: point.holder.tag, result });
  await releaseHolder(pools, point.holder);
  const { summary } = report;
  const { holdMs, xminAge } = proof.proof;
  const age = (n: number | null) => (n === null ? 'unknown' : `${n} transactions`);
  ctx.log.info(
    `verified ${summary.tables} tables, ${summary.rows} rows at the switch point pinned at ${point.pinnedAt} in ${(summary.durationMs / 1000).toFixed(1)} s: ` +
      `${summary.tablesDiffering ? `${summary.tablesDiffering} differ` : 'all identical'}, ${privileges.length} owner/privilege and ${sequences.length} sequence difference(s). ` +
      `Snapshots held ${(holdMs / 1000).toFixed(1)} s, holding vacuum back by up to ${age(xminAge.source)} on the source and ${age(xminAge.target)} on the target; released.`,
  );
  if (p.onDifference === 'report') warnEach(ctx, report, privileges, sequences);
  return result;
}

export const verifySteps: StepKind[] = [verify];
