/**
 * Compares every selected table of the source with the target: tables run concurrently (largest
 * first, so that a big table does not start last), each one querying both servers at once, all
 * inside one exported snapshot per side: its own, or the ones the caller opened (the switch point's).
 */
import type pg from 'pg';
import { forEachConcurrently } from '../../core/pool.ts';
import type { StepContext } from '../../core/step.ts';
import type { TableFilter } from './catalog.ts';
import { displayName, pairTables } from './catalog.ts';
import { compareTable } from './compare-table.ts';
import { hashMethodFor } from './row-hash.ts';
import { type Sides, SnapshotGoneError, SnapshotReader } from './session.ts';
import type { TableReport, VerifyMode, VerifyReport } from './types.ts';

export interface CompareOptions extends TableFilter {
  mode: VerifyMode;
  /** Tables compared at once; each holds one connection per side (plus one snapshot holder per side). */
  concurrency: number;
  maxDifferences: number;
  /** max_parallel_workers_per_gather for the comparison queries; the server's own when absent. */
  parallelWorkers?: number;
}

/** Exports one snapshot per side (closed by the caller): every query of the comparison reads them. */
export async function openSides(
  pools: { source: pg.Pool; target: pg.Pool },
  options: Pick<CompareOptions, 'parallelWorkers'>,
): Promise<Sides> {
  const snapshot = { parallelWorkers: options.parallelWorkers };
  const [source, target] = await Promise.allSettled([
    SnapshotReader.open(pools.source, { ...snapshot, label: 'source' }),
    SnapshotReader.open(pools.target, { ...snapshot, label: 'target' }),
  ]);
  if (source.status === 'fulfilled' && target.status === 'fulfilled') return { source: source.value, target: target.value };
  for (const side of [source, target]) if (side.status === 'fulfilled') await side.value.close();
  throw (source.status === 'rejected' ? source : (target as PromiseRejectedResult)).reason;
}

/**
 * Progress (`verify`, tables done, rows and rate) goes to `ctx.log`; an abort starts no more tables.
 * With `sides` the comparison reads those snapshots and leaves them open; without, it exports and
 * closes its own.
 */
export async function compareDatabases(
  ctx: Pick<StepContext, 'now' | 'log' | 'signal'>,
  pools: { source: pg.Pool; target: pg.Pool },
  options: CompareOptions,
  sides?: Sides,
): Promise<VerifyReport> {
  const now = () => ctx.now();
  const started = now();
  const { source, target } = sides ?? (await openSides(pools, options));
  try {
    const pairs = await pairTables(
      (sql, p) => source.query(sql, p),
      (sql, p) => target.query(sql, p),
      options,
    );
    pairs.sort((a, b) => b.source.estimatedRows - a.source.estimatedRows);
    const method = hashMethodFor(source.major, target.major);
    const tableOptions = { mode: options.mode, maxDifferences: options.maxDifferences, method };
    const reports: TableReport[] = [];
    let rows = 0;
    await forEachConcurrently(
      pairs,
      options.concurrency,
      async (pair) => {
        let report: TableReport;
        try {
          report = await compareTable({ source, target }, pair.source, pair.target, tableOptions, now);
        } catch (error) {
          // Not a problem of this table: the caller explains a snapshot that went away.
          if (error instanceof SnapshotGoneError) throw error;
          throw new Error(`comparing table ${displayName(pair.source)}: ${(error as Error).message}`);
        }
        reports.push(report);
        rows += report.rows.source ?? 0;
        const elapsedMs = now() - started;
        const rate = elapsedMs > 0 ? Math.round((rows * 1000) / elapsedMs) : rows;
        ctx.log.progress({
          label: 'verify',
          done: reports.length,
          total: pairs.length,
          unit: 'tables',
          detail: `${rows} rows, ${rate} rows/s${differs(report) ? `; ${report.table} differs` : ''}`,
        });
      },
      { signal: ctx.signal },
    );
    reports.sort((a, b) => a.table.localeCompare(b.table));
    const durationMs = now() - started;
    return {
      mode: options.mode,
      hash: options.mode === 'counts' ? 'none' : method,
      tables: reports,
      summary: {
        tables: reports.length,
        tablesDiffering: reports.filter(differs).length,
        rows,
        durationMs,
        rowsPerSecond: durationMs > 0 ? Math.round((rows * 1000) / durationMs) : rows,
      },
    };
  } finally {
    if (!sides) await Promise.all([source.close(), target.close()]);
  }
}

export function differs(table: TableReport): boolean {
  return table.problem !== undefined || table.counts === 'mismatch' || table.checksum === 'mismatch';
}
