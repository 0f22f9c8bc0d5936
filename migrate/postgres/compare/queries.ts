/**
 * The SQL one side runs for a table: counts, checksums over a key range, per-row hashes of a small
 * range and the median key that splits a range in two. Key values travel as text and are cast back
 * to the source's key types, and text-like keys are ordered with COLLATE "C" so that a range holds
 * the same keys on both servers whatever their default collations.
 */
import { escapeIdentifier } from 'pg';
import type { Column, Table } from './catalog.ts';
import type { SnapshotReader } from './session.ts';

/** Key values as text, in key-column order; undefined bound = open end. */
export type Bound = string[] | undefined;
export type Range = { lo: Bound; hi: Bound };
export const WHOLE_TABLE: Range = { lo: undefined, hi: undefined };

export interface Checksum {
  count: number;
  sum: string;
}

export interface TableQueries {
  /** `ONLY "s"."t"` for a plain table (its inheritance children are compared on their own), the parent for a partitioned one. */
  from: string;
  rowHash: string;
  key: Column[];
}

export function fromClause(table: Table): string {
  return table.kind === 'p' ? table.qualified : `ONLY ${table.qualified}`;
}

function keyRef(column: Column): string {
  return column.collatable ? `${escapeIdentifier(column.name)} COLLATE "C"` : escapeIdentifier(column.name);
}

function keyList(key: Column[]): string {
  return key.map(keyRef).join(', ');
}

function where(key: Column[], range: Range, params: unknown[]): string {
  const tuple = (values: string[]) => {
    const items = key.map((column, i) => {
      params.push(values[i]);
      return `$${params.length}::${column.type}${column.collatable ? ' COLLATE "C"' : ''}`;
    });
    return items.length === 1 ? items[0] : `(${items.join(', ')})`;
  };
  const columns = key.length === 1 ? keyList(key) : `(${keyList(key)})`;
  const conditions: string[] = [];
  if (range.lo) conditions.push(`${columns} >= ${tuple(range.lo)}`);
  if (range.hi) conditions.push(`${columns} < ${tuple(range.hi)}`);
  return conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';
}

export async function countRows(reader: SnapshotReader, from: string): Promise<number> {
  const rows = await reader.query(`SELECT count(*) AS n FROM ${from}`);
  return Number(rows[0].n);
}

export async function checksum(reader: SnapshotReader, table: TableQueries, range: Range = WHOLE_TABLE): Promise<Checksum> {
  const params: unknown[] = [];
  const rows = await reader.query(
    `SELECT count(*) AS n, coalesce(sum(${table.rowHash}), 0)::text AS sum FROM ${table.from} ${where(table.key, range, params)}`,
    params,
  );
  return { count: Number(rows[0].n), sum: rows[0].sum };
}

/** Key (as text) and row hash of every row in a range, in key order, at most `limit` rows. */
export async function rowHashes(
  reader: SnapshotReader,
  table: TableQueries,
  range: Range,
  limit: number,
): Promise<{ key: string[]; hash: string }[]> {
  const params: unknown[] = [];
  const keyText = table.key.map((c) => `${escapeIdentifier(c.name)}::text`).join(', ');
  const rows = await reader.query(
    `SELECT ARRAY[${keyText}] AS key, (${table.rowHash})::text AS hash FROM ${table.from} ${where(table.key, range, params)}
      ORDER BY ${keyList(table.key)} LIMIT ${Math.trunc(limit)}`,
    params,
  );
  return rows.map((r) => ({ key: r.key, hash: r.hash }));
}

/** The key of the row at `offset` (0-based, in key order) within a range. */
export async function keyAt(reader: SnapshotReader, table: TableQueries, range: Range, offset: number): Promise<string[]> {
  const params: unknown[] = [];
  const keyText = table.key.map((c) => `${escapeIdentifier(c.name)}::text`).join(', ');
  const rows = await reader.query(
    `SELECT ARRAY[${keyText}] AS key FROM ${table.from} ${where(table.key, range, params)}
      ORDER BY ${keyList(table.key)} OFFSET ${Math.trunc(offset)} LIMIT 1`,
    params,
  );
  if (rows.length === 0) throw new Error(`no row at offset ${offset} of the range`);
  return rows[0].key;
}

/** Puts keys from both sides into the one order the bisection uses (the source server's). */
export async function sortKeys<T extends { key: string[] }>(reader: SnapshotReader, table: TableQueries, items: T[]): Promise<T[]> {
  const casts = table.key.map((c, i) => `(e.v->>${i})::${c.type}${c.collatable ? ' COLLATE "C"' : ''}`);
  const rows = await reader.query(
    `SELECT (e.n - 1)::int AS i FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(v, n) ORDER BY ${casts.join(', ')}`,
    [JSON.stringify(items.map((item) => item.key))],
  );
  return rows.map((r) => items[r.i] as T);
}
