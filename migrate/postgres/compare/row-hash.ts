/**
 * The per-row hash both sides compute, and the table checksum built from it.
 *
 * Table checksum = (count(*), sum of a 64-bit hash of each row). A sum is order-independent and,
 * unlike XOR, keeps duplicate rows of a keyless table from cancelling out; with 64-bit row hashes a
 * changed, missing or extra row goes unnoticed with probability about 2^-64.
 *
 * Two ways to hash a row, chosen once for both sides so that they agree:
 * - `record` (both servers 14+): `hash_record_extended(ROW(...))` hashes each column with its type's
 *   own hash function in C, about twice as fast as printing the row as text (measured: 0.37 s vs
 *   0.75 s per million pgbench_accounts rows). Its combination of column hashes is linear, so two
 *   rows swapping a value would keep the same sum; re-hashing the row hash (`hashint8extended`)
 *   makes it non-linear. Only types whose hash equality is byte equality are hashed natively; the
 *   others are printed as text first (numeric: 1.0 and 1.00 hash alike; enum: hashes its OID,
 *   which differs between servers; interval: '1 day' = '24 hours'; arrays: bounds), through the
 *   type's output function, never a cast that prints something else (xml's keeps its declaration).
 * - `text` (either server older than 14): `hashtextextended(ROW(...)::text)`, with the session
 *   settings that make text output identical across servers and major versions (session.ts).
 * Floats are hashed from their binary form (float8send) in both, because their text output changed
 *   in PostgreSQL 12 and their hash treats -0 and 0 alike.
 */
import { escapeIdentifier } from 'pg';
import type { Column } from './catalog.ts';

export type HashMethod = 'record' | 'text';

/** Types whose native hash distinguishes every pair of values that print differently. */
const NATIVELY_HASHED = new Set([
  'smallint',
  'integer',
  'bigint',
  'oid',
  'boolean',
  '"char"',
  'text',
  'character varying',
  'character',
  'bytea',
  'date',
  'time without time zone',
  'timestamp without time zone',
  'timestamp with time zone',
  'uuid',
  'jsonb',
]);

/**
 * A column as the application reads it: its type's output function (what COPY, replication and
 * every client get), where `::text` would be an explicit cast printing something else.
 */
function printed(column: Column): string {
  const ref = escapeIdentifier(column.name);
  return column.castNotOutput ? `CASE WHEN ${ref} IS NULL THEN NULL ELSE format('%s', ${ref}) END` : `${ref}::text`;
}

export function hashMethodFor(sourceMajor: number, targetMajor: number): HashMethod {
  return Math.min(sourceMajor, targetMajor) >= 14 ? 'record' : 'text';
}

/**
 * The expression hashed for one column. `target` is the same-named column on the other side: when
 * the two declare different types, both sides fall back to the text form, which is what the
 * application reads.
 */
export function columnExpression(column: Column, other: Column | undefined, method: HashMethod): string {
  const ref = escapeIdentifier(column.name);
  if (column.baseType === 'double precision' || column.baseType === 'real') {
    const send = column.baseType === 'real' ? 'float4send' : 'float8send';
    return other && other.baseType === column.baseType ? `${send}(${ref})` : printed(column);
  }
  const sameType = other !== undefined && other.type === column.type;
  if (method === 'text' || !sameType) return printed(column);
  if (column.baseKind !== 'b' || column.isArray || !NATIVELY_HASHED.has(column.baseType)) return printed(column);
  // A nondeterministic collation hashes 'A' and 'a' alike.
  if (!column.deterministic) return `(${ref} COLLATE "C")`;
  return column.type === column.baseType ? ref : `${ref}::${column.baseType}`;
}

/** A bigint expression: the hash of one row over the given column expressions. */
export function rowHash(expressions: string[], method: HashMethod): string {
  const row = `ROW(${expressions.join(', ')})`;
  return method === 'record' ? `hashint8extended(hash_record_extended(${row}, 0), 0)` : `hashtextextended(${row}::text, 0)`;
}
