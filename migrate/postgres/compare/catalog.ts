/**
 * Which tables to compare, their columns and primary keys, read from the catalogs of each side.
 * The source decides the table list and the column order; the target is matched by name, because a
 * restored schema can differ in dropped columns (attnum) while holding the same data.
 */
import type pg from 'pg';
import { qualified } from '../sql.ts';

export interface Column {
  name: string;
  /** `format_type` of the column's type, e.g. `character varying(20)`, `public.mood`. */
  type: string;
  /** `format_type` of the domain's base type (the type itself when not a domain). */
  baseType: string;
  /** e: enum, b: base, c: composite, d never (resolved to the base), r: range, m: multirange, p: pseudo. */
  baseKind: string;
  isArray: boolean;
  /** False for columns using a nondeterministic (case-insensitive…) collation. */
  deterministic: boolean;
  /** Text-like: ordering depends on a collation, which may differ between the two servers. */
  collatable: boolean;
  /**
   * `::text` is an explicit cast, not the type's output function, so it can print what no client
   * sees: xml's cast keeps a declaration that its output (and so COPY and replication) drops.
   */
  castNotOutput: boolean;
}

export interface Table {
  schema: string;
  name: string;
  /** `"schema"."name"`, safe to splice into SQL. */
  qualified: string;
  /** p: partitioned parent (scanned with its partitions), r: plain table (scanned alone, ONLY). */
  kind: 'r' | 'p';
  columns: Column[];
  /** Primary-key column names in index order; empty when the table has none. */
  key: string[];
  /** Planner estimate, used to order the work (largest first) and for progress. */
  estimatedRows: number;
}

export interface TableFilter {
  schemas?: string[];
  excludeTables?: string[];
}

const TABLES_SQL = `
SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind AS kind,
       greatest(c.reltuples, 0)::int8 AS estimated_rows,
       coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                   FROM pg_index i
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  WHERE i.indrelid = c.oid AND i.indisprimary), '{}') AS key
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND NOT c.relispartition          -- a partition is compared through its partitioned parent
   AND c.relpersistence <> 't'
   AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
   -- tables an extension creates hold the extension's data, which its install recreates
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
   AND ($1::text[] IS NULL OR n.nspname = ANY($1))
 ORDER BY n.nspname, c.relname`;

const COLUMNS_SQL = `
SELECT a.attrelid::int8 AS oid, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       format_type(coalesce(nullif(t.typbasetype, 0), t.oid), NULL) AS base_type,
       bt.typtype AS base_kind, bt.typcategory = 'A' AS is_array,
       coalesce(co.collisdeterministic, true) AS deterministic, t.typcollation <> 0 AS collatable,
       bt.typcategory <> 'S' AND EXISTS (SELECT 1 FROM pg_cast k WHERE k.castsource = bt.oid AND k.casttarget = 'text'::regtype AND k.castmethod <> 'i') AS cast_not_output
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  JOIN pg_type bt ON bt.oid = coalesce(nullif(t.typbasetype, 0), t.oid)
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
 WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum`;

/** Turns `public.audit_*` style patterns into a matcher on `schema.table`. */
function excluder(patterns: string[] = []): (qualifiedName: string) => boolean {
  const regexes = patterns.map(
    (p) =>
      new RegExp(
        `^${p
          .split('*')
          .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
          .join('.*')}$`,
      ),
  );
  return (name) => regexes.some((r) => r.test(name));
}

/** Runs one catalog query; a pool and a snapshot reader both fit. */
// biome-ignore lint/suspicious/noExplicitAny: pg rows are untyped; each caller reads the columns its SQL selects
export type CatalogQuery = (sql: string, params: unknown[]) => Promise<any[]>;

export function poolQuery(pool: pg.Pool): CatalogQuery {
  return async (sql, params) => (await pool.query(sql, params)).rows;
}

export async function listTables(query: CatalogQuery, filter: TableFilter = {}): Promise<Table[]> {
  const excluded = excluder(filter.excludeTables);
  const rows = await query(TABLES_SQL, [filter.schemas?.length ? filter.schemas : null]);
  const kept = rows.filter((r) => !excluded(`${r.schema}.${r.name}`));
  const columns = new Map<string, Column[]>();
  if (kept.length > 0) {
    for (const c of await query(COLUMNS_SQL, [kept.map((r) => r.oid)])) {
      const list = columns.get(c.oid) ?? [];
      list.push({
        name: c.name,
        type: c.type,
        baseType: c.base_type,
        baseKind: c.base_kind,
        isArray: c.is_array,
        deterministic: c.deterministic,
        collatable: c.collatable,
        castNotOutput: c.cast_not_output,
      });
      columns.set(c.oid, list);
    }
  }
  return kept.map((r) => ({
    schema: r.schema,
    name: r.name,
    qualified: qualified(r.schema, r.name),
    kind: r.kind,
    columns: columns.get(r.oid) ?? [],
    key: r.key,
    estimatedRows: Number(r.estimated_rows),
  }));
}

/** Source tables with their same-named target table (undefined when the target lacks it). */
export async function pairTables(
  source: CatalogQuery,
  target: CatalogQuery,
  filter: TableFilter,
): Promise<{ source: Table; target: Table | undefined }[]> {
  const sourceTables = await listTables(source, filter);
  const schemas = [...new Set(sourceTables.map((t) => t.schema))];
  const targetTables = schemas.length ? await listTables(target, { schemas }) : [];
  const byName = new Map(targetTables.map((t) => [displayName(t), t]));
  return sourceTables.map((t) => ({ source: t, target: byName.get(displayName(t)) }));
}

export function displayName(table: Pick<Table, 'schema' | 'name'>): string {
  return `${table.schema}.${table.name}`;
}
