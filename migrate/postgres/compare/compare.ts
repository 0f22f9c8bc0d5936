/**
 * Compares every selected table of the source with the target: tables run concurrently (largest
 * first, so that a big table does not start last), each one querying both servers at once, all
 * inside one exported snapshot per side.
 */
import type pg from 'pg';
import type { TableFilter } from './catalog.ts';
import { pairTables } from './catalog.ts';
import { compareTable } from './compare-table.ts';
import { hashMethodFor } from './row-hash.ts';
import { SnapshotReader } from './session.ts';
import type { TableReport, VerifyMode, VerifyReport } from './types.ts';

export type CompareProgress = { done: number; total: number; rows: number; elapsedMs: number };

export type CompareOptions = TableFilter & {
  mode: VerifyMode;
  /** Tables compared at once; each holds one connection per side (plus one snapshot holder per side). */
  concurrency: number;
  maxDifferences: number;
  /** max_parallel_workers_per_gather for the comparison queries; the server's own when absent. */
  parallelWorkers?: number;
  onTableDone?: (progress: CompareProgress, table: TableReport) => void;
  now?: () => number;
};

export async function compareDatabases(pools: { source: pg.Pool; target: pg.Pool }, options: CompareOptions): Promise<VerifyReport> {
  const now = options.now ?? Date.now;
  const started = now();
  const snapshot = { parallelWorkers: options.parallelWorkers };
  const [source, target] = await Promise.all([SnapshotReader.open(pools.source, snapshot), SnapshotReader.open(pools.target, snapshot)]);
  try {
    const pairs = await pairTables((sql, p) => source.query(sql, p), (sql, p) => target.query(sql, p), options);
    pairs.sort((a, b) => b.source.estimatedRows - a.source.estimatedRows);
    const method = hashMethodFor(source.major, target.major);
    const reports: TableReport[] = [];
    let rows = 0;
    let next = 0;
    const worker = async () => {
      while (next < pairs.length) {
        const pair = pairs[next++]!;
        const tableOptions = { mode: options.mode, maxDifferences: options.maxDifferences, method };
        let report: TableReport;
        try {
          report = await compareTable({ source, target }, pair.source, pair.target, tableOptions, now);
        } catch (error) {
          next = pairs.length; // the run fails: start no more tables while the others finish
          throw new Error(`table ${pair.source.schema}.${pair.source.name}: ${(error as Error).message}`);
        }
        reports.push(report);
        rows += report.rows.source ?? 0;
        options.onTableDone?.({ done: reports.length, total: pairs.length, rows, elapsedMs: now() - started }, report);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, pairs.length)) }, worker));
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
    await Promise.all([source.close(), target.close()]);
  }
}

export function differs(table: TableReport): boolean {
  return table.problem !== undefined || table.counts === 'mismatch' || table.checksum === 'mismatch';
}
