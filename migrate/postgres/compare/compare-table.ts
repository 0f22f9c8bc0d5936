/** Compares one table between the two sides and reports it (never a non-key column value). */
import type { Column, Table } from './catalog.ts';
import { displayName } from './catalog.ts';
import { narrowDifferences } from './narrow.ts';
import type { Checksum, TableQueries } from './queries.ts';
import { checksum, countRows, fromClause } from './queries.ts';
import type { HashMethod } from './row-hash.ts';
import { columnExpression, rowHash } from './row-hash.ts';
import type { Sides } from './session.ts';
import type { TableDifferences, TableReport, VerifyMode } from './types.ts';

export interface TableOptions {
  mode: VerifyMode;
  maxDifferences: number;
  method: HashMethod;
}

const NO_DIFFERENCES: TableDifferences = { count: 0, truncated: false, ranges: [], rows: [] };

/** Both sides' SQL for a table present on both; the column list and order are the source's. */
function tableQueries(source: Table, target: Table, method: HashMethod): { source: TableQueries; target: TableQueries } {
  const targetColumns = new Map(target.columns.map((c) => [c.name, c]));
  const expressions = source.columns.map((c) => columnExpression(c, targetColumns.get(c.name), method));
  const hash = rowHash(expressions, method);
  const key = source.key.map((name) => source.columns.find((c) => c.name === name) as Column);
  return {
    source: { from: fromClause(source), rowHash: hash, key },
    target: { from: fromClause(target), rowHash: hash, key },
  };
}

export async function compareTable(
  sides: Sides,
  source: Table,
  target: Table | undefined,
  options: TableOptions,
  now: () => number,
): Promise<TableReport> {
  const started = now();
  const report = (fields: Omit<TableReport, 'table' | 'key' | 'durationMs'>): TableReport => ({
    table: displayName(source),
    key: source.key,
    durationMs: now() - started,
    ...fields,
  });

  if (!target) {
    const rows = await countRows(sides.source, fromClause(source));
    return report({
      rows: { source: rows, target: null },
      counts: 'mismatch',
      checksum: 'skipped',
      differences: { ...NO_DIFFERENCES, count: rows },
      problem: 'the table does not exist on the target',
    });
  }

  const targetNames = new Set(target.columns.map((c) => c.name));
  const missing = source.columns.filter((c) => !targetNames.has(c.name)).map((c) => c.name);
  if (options.mode === 'counts' || missing.length > 0) {
    const [s, t] = await Promise.all([countRows(sides.source, fromClause(source)), countRows(sides.target, fromClause(target))]);
    return report({
      rows: { source: s, target: t },
      counts: s === t ? 'match' : 'mismatch',
      checksum: 'skipped',
      differences: { ...NO_DIFFERENCES, count: Math.abs(s - t) },
      ...(missing.length ? { problem: `columns missing on the target: ${missing.join(', ')}` } : {}),
    });
  }

  const queries = tableQueries(source, target, options.method);
  const [s, t] = await Promise.all([checksum(sides.source, queries.source), checksum(sides.target, queries.target)]);
  const same = s.count === t.count && s.sum === t.sum;
  return report({
    rows: { source: s.count, target: t.count },
    counts: s.count === t.count ? 'match' : 'mismatch',
    checksum: same ? 'match' : 'mismatch',
    differences: same ? NO_DIFFERENCES : await locate(sides, queries, { source: s, target: t }, options),
  });
}

async function locate(
  sides: Sides,
  queries: { source: TableQueries; target: TableQueries },
  whole: { source: Checksum; target: Checksum },
  options: TableOptions,
): Promise<TableDifferences> {
  const atLeast = Math.max(1, Math.abs(whole.source.count - whole.target.count));
  // Keyless tables, and checksum mode, stop at "these differ": there is no key to bisect or list.
  if (queries.source.key.length === 0 || options.mode !== 'full') return { ...NO_DIFFERENCES, count: atLeast };
  return narrowDifferences(sides, queries, whole, options.maxDifferences);
}
