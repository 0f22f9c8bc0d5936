/**
 * Tables rewritten since the switch point. TRUNCATE and the ALTER TABLE forms that rewrite a table
 * are not MVCC-safe: a snapshot taken before one sees the new, empty file, so the table looks emptied
 * at the switch point when it was not. The snapshot's pg_class row still names the file of the pin,
 * pg_relation_filenode() the file of now (it reads the current catalog): when they differ, the
 * table's comparison at the pin cannot be trusted (VACUUM FULL and CLUSTER rewrite too, keeping old
 * row versions, but cannot be told apart from here).
 */
import { differs } from '../compare/compare.ts';
import type { SnapshotReader } from '../compare/session.ts';
import type { VerifyReport } from '../compare/types.ts';

const REWRITTEN_SQL = `
SELECT DISTINCT rn.nspname AS schema, r.relname AS name
  FROM pg_class c
  JOIN pg_class r ON r.oid = coalesce(pg_partition_root(c.oid), c.oid)
  JOIN pg_namespace rn ON rn.oid = r.relnamespace
 WHERE c.relkind IN ('r', 'm') AND c.relfilenode <> 0
   AND c.relfilenode IS DISTINCT FROM pg_relation_filenode(c.oid)`;

/** `schema.table` of each table (a partition counts for its root) whose file changed since the snapshot. */
async function rewrittenTables(reader: SnapshotReader): Promise<Set<string>> {
  return new Set((await reader.query(REWRITTEN_SQL)).map((r) => `${r.schema}.${r.name}`));
}

/**
 * Marks each differing table that was rewritten since the pin on either side: its difference may
 * be the rewrite's, not the switch point's, so it stays a difference, with the reason as its problem.
 */
export async function markRewritten(
  report: VerifyReport,
  sides: { source: SnapshotReader; target: SnapshotReader },
): Promise<VerifyReport> {
  const differing = report.tables.filter(differs);
  if (differing.length === 0) return report;
  const [source, target] = await Promise.all([rewrittenTables(sides.source), rewrittenTables(sides.target)]);
  const tables = report.tables.map((table) => {
    const where = [source.has(table.table) ? 'source' : '', target.has(table.table) ? 'target' : ''].filter(Boolean);
    if (!differs(table) || where.length === 0) return table;
    return {
      ...table,
      problem:
        `rewritten on the ${where.join(' and ')} after the switch point (TRUNCATE, a rewriting ALTER TABLE, VACUUM FULL or CLUSTER): ` +
        `a snapshot from before a TRUNCATE or rewriting ALTER sees the table empty, so whether it differed at the switch point cannot be proven ` +
        `(${table.rows.source} rows on the source, ${table.rows.target} on the target as seen from the switch point)`,
    };
  });
  return { ...report, tables };
}
