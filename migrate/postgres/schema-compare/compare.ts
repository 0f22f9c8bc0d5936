/**
 * Both servers' schemas compared object by object: what the target lacks, what only the target
 * has, and each property that differs (owner, privileges, definition, …), each with its fix. The one
 * comparison behind schema-copy's "done", verify's ownership and privilege check, `migrate status`
 * and the D-day go/no-go step.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { Finding } from '../../core/step.ts';
import { readSchema, type SchemaObject, type SchemaObjects } from './catalog.ts';

export interface SchemaDifference {
  /** `column shop.orders.note`. */
  object: string;
  kind: string;
  problem: 'missing on the target' | 'only on the target' | 'differs';
  /** For `differs`: each property as `source → target`. */
  properties?: Record<string, { source: string | null; target: string | null }>;
  fix: string;
  /** Adding it to the target changes nothing that exists there (a new table, column, index …): `migrate schema-sync` applies it. */
  additive: boolean;
}

const ADDITIVE_KINDS = new Set([
  'table',
  'column',
  'index',
  'sequence',
  'view',
  'materialized view',
  'type',
  'function',
  'schema',
  'statistics',
  'constraint',
  'policy',
  'trigger',
]);

function fixFor(object: SchemaObject, problem: SchemaDifference['problem'], properties: SchemaDifference['properties']): string {
  if (problem === 'only on the target')
    return `drop ${object.kind} ${object.name} on the target if it is not wanted, or create it on the source`;
  if (problem === 'missing on the target') {
    if (object.kind === 'column')
      return `ALTER TABLE ${object.table} ADD COLUMN ${object.name.slice(object.table!.length + 1)} ${object.props.type} on the target (migrate schema-sync)`;
    if (object.kind === 'index') return `${object.props.definition} on the target (migrate schema-sync)`;
    return `create ${object.kind} ${object.name} on the target as on the source (migrate schema-sync copies it with pg_dump)`;
  }
  const keys = Object.keys(properties ?? {});
  if (keys.includes('owner')) return `ALTER ${object.kind.toUpperCase()} ${object.name} OWNER TO ${object.props.owner} on the target`;
  if (keys.includes('acl'))
    return `GRANT/REVOKE on ${object.kind} ${object.name} on the target until its privileges are the source's: ${object.props.acl ?? '(none)'}`;
  return `change ${object.kind} ${object.name} on the target to match the source (${keys.join(', ')}), or apply the same change to both servers`;
}

export function compareSchemas(source: SchemaObjects, target: SchemaObjects): SchemaDifference[] {
  const differences: SchemaDifference[] = [];
  // A missing table's columns, indexes, constraints, policies and sequences come with it: one line, not twenty.
  const missingTables = new Set(
    [...source.values()].filter((o) => o.kind === 'table' && !target.has(`table ${o.name}`)).map((o) => o.name),
  );
  for (const [key, object] of source) {
    const other = target.get(key);
    if (!other) {
      if (object.table && missingTables.has(object.table)) continue;
      differences.push({
        object: key,
        kind: object.kind,
        problem: 'missing on the target',
        fix: fixFor(object, 'missing on the target', undefined),
        additive: ADDITIVE_KINDS.has(object.kind),
      });
      continue;
    }
    const properties: NonNullable<SchemaDifference['properties']> = {};
    for (const prop of new Set([...Object.keys(object.props), ...Object.keys(other.props)])) {
      const [s, t] = [object.props[prop] ?? null, other.props[prop] ?? null];
      if (s !== t) properties[prop] = { source: s, target: t };
    }
    if (Object.keys(properties).length > 0)
      differences.push({
        object: key,
        kind: object.kind,
        problem: 'differs',
        properties,
        fix: fixFor(object, 'differs', properties),
        additive: false,
      });
  }
  for (const [key, object] of target) {
    if (source.has(key)) continue;
    if (object.table && !source.has(`table ${object.table}`)) continue;
    differences.push({
      object: key,
      kind: object.kind,
      problem: 'only on the target',
      fix: fixFor(object, 'only on the target', undefined),
      additive: false,
    });
  }
  return differences.sort((a, b) => a.object.localeCompare(b.object));
}

/** A stable digest of one server's schema: equal digests, equal schemas (in everything compared here). */
export function fingerprint(objects: SchemaObjects): string {
  const hash = createHash('sha256');
  for (const key of [...objects.keys()].sort())
    hash.update(`${key}\u0000${JSON.stringify(Object.entries(objects.get(key)!.props).sort())}\n`);
  return hash.digest('hex').slice(0, 32);
}

export async function compareServers(
  source: pg.Pool,
  target: pg.Pool,
): Promise<{ differences: SchemaDifference[]; source: SchemaObjects; target: SchemaObjects }> {
  const [s, t] = await Promise.all([readSchema(source), readSchema(target)]);
  return { differences: compareSchemas(s, t), source: s, target: t };
}

export function describeDifference(d: SchemaDifference): string {
  if (d.problem !== 'differs') return d.problem;
  return Object.entries(d.properties ?? {})
    .map(([prop, { source, target }]) => `${prop}: ${source ?? '(none)'} on the source, ${target ?? '(none)'} on the target`)
    .join('; ');
}

export function differenceFindings(differences: readonly SchemaDifference[], severity: Finding['severity'] = 'error'): Finding[] {
  return differences.map((d) => ({ severity, object: d.object, message: describeDifference(d), fix: d.fix }));
}

/** Leaves out the given properties (e.g. `owner`, `acl` when a copy was asked to leave them out), and differences left with none. */
export function ignoringProperties(differences: readonly SchemaDifference[], ignored: readonly string[]): SchemaDifference[] {
  if (ignored.length === 0) return [...differences];
  return differences.flatMap((d) => {
    if (d.problem !== 'differs') return [d];
    const properties = Object.fromEntries(Object.entries(d.properties ?? {}).filter(([prop]) => !ignored.includes(prop)));
    return Object.keys(properties).length === 0 ? [] : [{ ...d, properties }];
  });
}
