/**
 * verify's owner and privilege check: the owner and the ACL (column ACLs included) of every schema,
 * table, view, sequence and function, as schema-parity compares them, one finding per object.
 */
import type pg from 'pg';
import type { Finding } from '../../core/step.ts';
import { compareServers, differenceFindings } from './compare.ts';

const KINDS = new Set(['schema', 'table', 'view', 'materialized view', 'sequence', 'foreign table', 'column', 'function']);

export async function privilegeDifferences(source: pg.Pool, target: pg.Pool): Promise<Finding[]> {
  const { differences } = await compareServers(source, target);
  const relevant = differences.flatMap((d) => {
    if (!KINDS.has(d.kind) || d.problem !== 'differs') return [];
    const properties = Object.fromEntries(Object.entries(d.properties ?? {}).filter(([prop]) => prop === 'owner' || prop === 'acl'));
    return Object.keys(properties).length > 0 ? [{ ...d, properties }] : [];
  });
  return differenceFindings(relevant);
}
