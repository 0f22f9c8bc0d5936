/**
 * verify's owner and privilege check: the owner and the ACL (column ACLs included) of every schema,
 * table, view, sequence and function, as schema-parity compares them, one finding per object.
 * Each side is a pool (as they are now) or a query bound to a snapshot (as they were at the switch point).
 */
import type pg from 'pg';
import type { Finding } from '../../core/step.ts';
import { readSchema, type SchemaQuery } from './catalog.ts';
import { compareSchemas, differenceFindings } from './compare.ts';

const KINDS = new Set(['schema', 'table', 'view', 'materialized view', 'sequence', 'foreign table', 'column', 'function']);

export async function privilegeDifferences(source: pg.Pool | SchemaQuery, target: pg.Pool | SchemaQuery): Promise<Finding[]> {
  const [s, t] = await Promise.all([readSchema(source), readSchema(target)]);
  const differences = compareSchemas(s, t);
  const relevant = differences.flatMap((d) => {
    if (!KINDS.has(d.kind) || d.problem !== 'differs') return [];
    const properties = Object.fromEntries(Object.entries(d.properties ?? {}).filter(([prop]) => prop === 'owner' || prop === 'acl'));
    return Object.keys(properties).length > 0 ? [{ ...d, properties }] : [];
  });
  return differenceFindings(relevant);
}
