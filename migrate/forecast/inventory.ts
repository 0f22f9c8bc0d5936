/**
 * What the post-switch proof will have to read: the tables `postgres.verify` compares (the same
 * catalog query picks them), their planner row estimates and their on-disk size (heap and TOAST,
 * what a checksum scan reads; indexes are not read), and the sequence count (sequence sync is per
 * sequence).
 */
import type pg from 'pg';
import { listTables, poolQuery, type TableFilter } from '../postgres/compare/catalog.ts';
import type { TableSize } from './types.ts';

/** A partitioned table's size is its leaves'; reltuples is -1 on a table never analyzed (counted as 0). */
const SIZES_SQL = `
select q.name,
       case when c.relkind = 'p'
            then (select coalesce(sum(greatest(l.reltuples, 0)), 0) from pg_partition_tree(c.oid) t
                    join pg_class l on l.oid = t.relid where t.isleaf)
            else greatest(c.reltuples, 0) end::float8 as rows,
       case when c.relkind = 'p'
            then (select coalesce(sum(pg_table_size(t.relid)), 0) from pg_partition_tree(c.oid) t where t.isleaf)
            else pg_table_size(c.oid) end::float8 as bytes
  from unnest($1::text[]) as q(name)
  join pg_class c on c.oid = q.name::regclass`;

export async function tableSizes(source: pg.Pool, filter: TableFilter = {}): Promise<TableSize[]> {
  const tables = await listTables(poolQuery(source), filter);
  if (tables.length === 0) return [];
  const byQualified = new Map(tables.map((t) => [t.qualified, t]));
  const { rows } = await source.query<{ name: string; rows: number; bytes: number }>(SIZES_SQL, [tables.map((t) => t.qualified)]);
  return rows
    .map((r) => {
      const t = byQualified.get(r.name)!;
      return { table: `${t.schema}.${t.name}`, schema: t.schema, name: t.name, rows: Math.round(r.rows), bytes: r.bytes };
    })
    .sort((a, b) => b.bytes - a.bytes || a.table.localeCompare(b.table));
}

export async function sequenceCount(source: pg.Pool): Promise<number> {
  const { rows } = await source.query<{ n: number }>(
    `select count(*)::int as n from pg_sequences where schemaname not in ('pg_catalog', 'information_schema')`,
  );
  return rows[0]!.n;
}
