/**
 * Privileges exactly as on the source. A restore made by the migration user (no owners) replays
 * pg_dump's GRANT and REVOKE relative to whoever owned the object then; an owner that had taken a
 * right away from itself gets it back with `ALTER … OWNER`. So once owners are in place, each ACL
 * that still differs is brought to the source's with the GRANTs and REVOKEs of the difference.
 */
import type pg from 'pg';
import { escapeIdentifier } from 'pg';
import type { StepContext } from '../core/step.ts';
import { MIGRATION_USER, readSchema, type SchemaObject } from './schema-compare/catalog.ts';

const ON: Record<string, string> = {
  table: 'TABLE',
  view: 'TABLE',
  'materialized view': 'TABLE',
  'foreign table': 'TABLE',
  sequence: 'SEQUENCE',
  function: 'ROUTINE',
  schema: 'SCHEMA',
  type: 'TYPE',
};

const entries = (acl: string | undefined) => new Set(acl && acl !== '(none)' ? acl.split(' ') : []);
const grantee = (name: string) => (name === 'PUBLIC' ? 'PUBLIC' : name === MIGRATION_USER ? 'current_user' : escapeIdentifier(name));

function statements(object: SchemaObject, want: Set<string>, have: Set<string>): string[] {
  const on = object.kind === 'column' ? `TABLE ${object.table}` : `${ON[object.kind]} ${object.name}`;
  const columns = object.kind === 'column' ? ` (${object.name.slice(object.table!.length + 1)})` : '';
  const parse = (entry: string) => {
    const at = entry.lastIndexOf(':');
    const privilege = entry.slice(at + 1);
    return { role: grantee(entry.slice(0, at)), privilege: privilege.replace('*', ''), grantable: privilege.endsWith('*') };
  };
  const revokes = [...have]
    .filter((e) => !want.has(e))
    .map(parse)
    .map((e) => `revoke ${e.privilege}${columns} on ${on} from ${e.role} cascade`);
  const grants = [...want]
    .filter((e) => !have.has(e))
    .map(parse)
    .map((e) => `grant ${e.privilege}${columns} on ${on} to ${e.role}${e.grantable ? ' with grant option' : ''}`);
  return [...revokes, ...grants];
}

/** GRANT/REVOKE until every ACL (column ACLs included) is the source's; returns how many objects changed. */
export async function applyAcls(ctx: StepContext, source: pg.Pool, target: pg.Pool): Promise<number> {
  const [want, have] = await Promise.all([readSchema(source), readSchema(target)]);
  let changed = 0;
  for (const [key, object] of want) {
    const current = have.get(key);
    if (!current || (object.kind !== 'column' && !ON[object.kind]) || object.props.acl === current.props.acl) continue;
    const sql = statements(object, entries(object.props.acl), entries(current.props.acl));
    if (sql.length === 0) continue;
    await ctx.record({ action: 'set-privileges', object: key, statements: sql });
    for (const statement of sql) await target.query(statement);
    changed += 1;
  }
  return changed;
}
