/**
 * Owners as on the source. The schema is restored by the migration user (without owners, so the
 * data copy can fill every table as their owner), then every object is handed to its source owner.
 * On RDS the migration user is rds_superuser, not a superuser: it may give an object to a role only
 * as a member of that role, and only when the new owner may create in the object's schema (its
 * database, for a schema). So the migration user is made a member of the owning roles first, and a
 * missing CREATE is granted for the one ALTER; both are journaled before they happen and taken back
 * afterwards (only what this step added), and undone by a rollback if the step dies in between.
 */
import type pg from 'pg';
import { escapeIdentifier } from 'pg';
import type { Finding, Json, StepContext } from '../core/step.ts';
import { MIGRATION_USER } from './schema-compare/catalog.ts';

const SYSTEM = `n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'`;
const NOT_EXTENSION = (catalog: string, oid: string) =>
  `not exists (select 1 from pg_depend d where d.classid = '${catalog}'::regclass and d.objid = ${oid} and d.deptype = 'e')`;
const ROLE = (oid: string) =>
  `(select case when r.rolsuper or r.rolname = current_user or r.rolname = 'pg_database_owner' then '${MIGRATION_USER}' else r.rolname end from pg_roles r where r.oid = ${oid})`;

interface Owned {
  /** The ALTER keyword: SCHEMA, TABLE, VIEW, MATERIALIZED VIEW, SEQUENCE, FOREIGN TABLE, ROUTINE, TYPE, DOMAIN, STATISTICS. */
  keyword: string;
  /** Quoted, ready for SQL. */
  name: string;
  /** Quoted schema name; null for a schema itself. */
  schema: string | null;
  owner: string;
}

/** Every ownable object that pg_dump restores, with its owner; a sequence owned by a column follows its table. */
async function owners(db: pg.Pool): Promise<Map<string, Owned>> {
  const { rows } = await db.query<Owned>(
    `select 'SCHEMA' as keyword, format('%I', n.nspname) as name, null as schema, ${ROLE('n.nspowner')} as owner
       from pg_namespace n where ${SYSTEM} and n.nspname not like 'pg\\_%' and ${NOT_EXTENSION('pg_namespace', 'n.oid')}
     union all
     select case c.relkind when 'v' then 'VIEW' when 'm' then 'MATERIALIZED VIEW' when 'S' then 'SEQUENCE' when 'f' then 'FOREIGN TABLE' else 'TABLE' end,
            format('%I.%I', n.nspname, c.relname), format('%I', n.nspname), ${ROLE('c.relowner')}
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and c.relpersistence <> 't' and ${SYSTEM} and ${NOT_EXTENSION('pg_class', 'c.oid')}
        and not (c.relkind = 'S' and exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')))
     union all
     select 'ROUTINE', format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), format('%I', n.nspname), ${ROLE('p.proowner')}
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace where p.prokind <> 'a' and ${SYSTEM} and ${NOT_EXTENSION('pg_proc', 'p.oid')}
     union all
     select case t.typtype when 'd' then 'DOMAIN' else 'TYPE' end, format('%I.%I', n.nspname, t.typname), format('%I', n.nspname), ${ROLE('t.typowner')}
       from pg_type t join pg_namespace n on n.oid = t.typnamespace
      where (t.typtype in ('e', 'd', 'r', 'm') or (t.typtype = 'c' and (select relkind from pg_class where oid = t.typrelid) = 'c')) and ${SYSTEM} and ${NOT_EXTENSION('pg_type', 't.oid')}
     union all
     select 'STATISTICS', format('%I.%I', n.nspname, s.stxname), format('%I', n.nspname), ${ROLE('s.stxowner')}
       from pg_statistic_ext s join pg_namespace n on n.oid = s.stxnamespace where ${SYSTEM}`,
  );
  return new Map(rows.map((r) => [`${r.keyword} ${r.name}`, r]));
}

/** The roles whose rights depend on being someone on the target: owners, and roles with default privileges (ALTER DEFAULT PRIVILEGES FOR ROLE needs membership). */
export async function owningRoles(source: pg.Pool): Promise<string[]> {
  const [owned, defaults] = await Promise.all([
    owners(source),
    source.query<{ role: string }>(`select distinct ${ROLE('d.defaclrole')} as role from pg_default_acl d`),
  ]);
  const roles = new Set([...[...owned.values()].map((o) => o.owner), ...defaults.rows.map((r) => r.role)]);
  roles.delete(MIGRATION_USER);
  return [...roles].sort();
}

export interface MembershipChange {
  action: 'grant-membership' | 'revoke-membership' | 'grant-create' | 'revoke-create';
  role: string;
  /** For grant-create: `schema "x"` or `database "y"`. */
  on?: string;
  [key: string]: Json | undefined;
}

/** Makes the migration user a member of each role it is not yet a member of (a superuser needs none); returns the ones added. */
export async function arrangeMemberships(ctx: StepContext, target: pg.Pool, roles: readonly string[]): Promise<string[]> {
  const { rows } = await target.query<{ role: string }>(
    `select r.rolname as role from pg_roles r
      where r.rolname = any($1) and not (select rolsuper from pg_roles where rolname = current_user) and not pg_has_role(current_user, r.oid, 'MEMBER')`,
    [roles],
  );
  const added: string[] = [];
  for (const { role } of rows) {
    await ctx.record({ action: 'grant-membership', role } satisfies MembershipChange);
    await target.query(`grant ${escapeIdentifier(role)} to current_user`);
    added.push(role);
  }
  if (added.length > 0)
    ctx.log.info(`made the migration user a member of ${added.join(', ')} (to give them their objects; taken back afterwards)`);
  return added;
}

export async function releaseMemberships(ctx: StepContext, target: pg.Pool, roles: readonly string[]): Promise<void> {
  for (const role of roles) {
    await ctx.record({ action: 'revoke-membership', role } satisfies MembershipChange);
    await target.query(`revoke ${escapeIdentifier(role)} from current_user`);
  }
}

/**
 * ALTER … OWNER TO for every target object whose owner is not the source's. Returns how many were
 * changed. Needs the memberships arranged first (unless a superuser runs it).
 */
export async function applyOwners(ctx: StepContext, source: pg.Pool, target: pg.Pool): Promise<number> {
  const [want, have, me] = await Promise.all([
    owners(source),
    owners(target),
    target.query<{ superuser: boolean; database: string }>(
      'select rolsuper as superuser, current_database() as database from pg_roles where rolname = current_user',
    ),
  ]);
  const { superuser, database } = me.rows[0]!;
  let changed = 0;
  for (const [key, object] of want) {
    const current = have.get(key);
    if (!current || current.owner === object.owner) continue;
    const newOwner = object.owner === MIGRATION_USER ? 'current_user' : escapeIdentifier(object.owner);
    // A non-superuser may hand an object only to a role that may create in its schema (its database, for a schema).
    const on = object.schema === null ? `database ${escapeIdentifier(database)}` : `schema ${object.schema}`;
    let granted = false;
    if (!superuser && object.owner !== MIGRATION_USER) {
      const { rows } = await target.query<{ ok: boolean }>(
        object.schema === null
          ? `select has_database_privilege($1, current_database(), 'CREATE') as ok`
          : `select has_schema_privilege($1, $2::regnamespace, 'CREATE') as ok`,
        object.schema === null ? [object.owner] : [object.owner, object.schema],
      );
      if (!rows[0]!.ok) {
        await ctx.record({ action: 'grant-create', role: object.owner, on } satisfies MembershipChange);
        await target.query(`grant create on ${on} to ${newOwner}`);
        granted = true;
      }
    }
    await target.query(`alter ${object.keyword} ${object.name} owner to ${newOwner}`);
    if (granted) {
      await ctx.record({ action: 'revoke-create', role: object.owner, on } satisfies MembershipChange);
      await target.query(`revoke create on ${on} from ${newOwner}`);
    }
    changed += 1;
  }
  return changed;
}

/** Takes back what journaled changes granted and did not take back yet (a step that died half-way). */
export async function undoMemberships(target: pg.Pool, changes: readonly Json[]): Promise<void> {
  const open = new Map<string, MembershipChange>();
  for (const change of changes as readonly Partial<MembershipChange>[]) {
    if (!change?.action || !change.role) continue;
    const key = change.action.endsWith('membership') ? `m ${change.role}` : `c ${change.role} ${change.on}`;
    if (change.action.startsWith('grant')) open.set(key, change as MembershipChange);
    else open.delete(key);
  }
  for (const change of open.values()) {
    const exists = (await target.query('select 1 from pg_roles where rolname = $1', [change.role])).rows.length > 0;
    if (!exists) continue;
    if (change.action === 'grant-membership') await target.query(`revoke ${escapeIdentifier(change.role)} from current_user`);
    else await target.query(`revoke create on ${change.on} from ${escapeIdentifier(change.role)}`);
  }
}

/**
 * Preflight: every role that owns something or holds a right on the source must exist on the
 * target, and the migration user must be able to become a member of each owner (superuser, member
 * already, or able to grant it: CREATEROLE before 16, ADMIN OPTION from 16).
 */
export async function ownershipFindings(source: pg.Pool, target: pg.Pool): Promise<Finding[]> {
  const [owning, grantees, targetRoles, me] = await Promise.all([
    owningRoles(source),
    source.query<{ role: string }>(
      `with acls as (
         select relacl as acl from pg_class union all select attacl from pg_attribute where attacl is not null
         union all select nspacl from pg_namespace union all select proacl from pg_proc union all select typacl from pg_type
         union all select defaclacl from pg_default_acl)
       select distinct r.rolname as role from acls, aclexplode(acls.acl) a join pg_roles r on r.oid = a.grantee
        where acls.acl is not null and not r.rolsuper and r.rolname <> current_user and r.rolname !~ '^(pg_|rds)'
       union
       select distinct r.rolname from pg_policy p, unnest(p.polroles) pr join pg_roles r on r.oid = pr where not r.rolsuper and r.rolname !~ '^(pg_|rds)'`,
    ),
    target.query<{ rolname: string; rolsuper: boolean; member: boolean; grantable: boolean }>(
      `select r.rolname, r.rolsuper, pg_has_role(current_user, r.oid, 'MEMBER') as member,
              case when current_setting('server_version_num')::int >= 160000 then pg_has_role(current_user, r.oid, 'MEMBER WITH ADMIN OPTION')
                   else (select rolcreaterole from pg_roles where rolname = current_user) end as grantable
         from pg_roles r`,
    ),
    target.query<{ superuser: boolean; user: string }>(
      'select rolsuper as superuser, current_user as user from pg_roles where rolname = current_user',
    ),
  ]);
  const onTarget = new Map(targetRoles.rows.map((r) => [r.rolname, r]));
  const { superuser, user } = me.rows[0]!;
  const findings: Finding[] = [];
  const missing = [...new Set([...owning, ...grantees.rows.map((r) => r.role)])].filter((role) => !onTarget.has(role)).sort();
  for (const role of missing) {
    findings.push({
      severity: 'error',
      object: `role ${role}`,
      message: `${owning.includes(role) ? 'owns objects' : 'holds privileges'} on the source but does not exist on the target: it would lose ${owning.includes(role) ? 'its ownership and every owner right' : 'those privileges'} after the switch`,
      fix: `create it on the target with the same attributes and memberships (pg_dumpall --roles-only on the source lists them), then run preflight again`,
    });
  }
  findings.push(...(await databasePrivilegeFindings(source, target, new Set(missing))));
  if (superuser) return findings;
  for (const role of owning) {
    const r = onTarget.get(role);
    if (!r || r.member) continue;
    if (r.rolsuper || !r.grantable) {
      findings.push({
        severity: 'error',
        object: `role ${role}`,
        message: `owns objects on the source, and the target's migration user ${user} is not a member of it and cannot become one${r.rolsuper ? ' (it is a superuser)' : ''}: the schema copy could not make it their owner`,
        fix: `GRANT ${escapeIdentifier(role)} TO ${escapeIdentifier(user)} on the target as a role that can (its ADMIN, or a superuser), or make ${user} able to grant it (CREATEROLE before PostgreSQL 16, ADMIN OPTION from 16)`,
      });
    }
  }
  return findings;
}

/** Database-level rights (CREATE, TEMPORARY, CONNECT) are not part of a schema dump: each one granted on the source must be on the target already. */
async function databasePrivilegeFindings(source: pg.Pool, target: pg.Pool, missingRoles: ReadonlySet<string>): Promise<Finding[]> {
  const { rows } = await source.query<{ role: string; privilege: string; database: string }>(
    `select r.rolname as role, a.privilege_type as privilege, d.datname as database
       from pg_database d, aclexplode(d.datacl) a join pg_roles r on r.oid = a.grantee
      where d.datname = current_database() and not r.rolsuper and r.rolname <> current_user and r.rolname !~ '^(pg_|rds)'`,
  );
  const findings: Finding[] = [];
  for (const { role, privilege, database } of rows) {
    if (missingRoles.has(role)) continue;
    const exists = (await target.query('select 1 from pg_roles where rolname = $1', [role])).rows.length > 0;
    if (!exists) continue;
    const { ok, db } = (
      await target.query<{ ok: boolean; db: string }>(
        'select has_database_privilege($1, current_database(), $2) as ok, current_database() as db',
        [role, privilege],
      )
    ).rows[0]!;
    if (ok) continue;
    findings.push({
      severity: 'error',
      object: `role ${role}`,
      message: `may ${privilege} on the source database ${database} but not on the target's: database privileges are not part of the schema copy`,
      fix: `GRANT ${privilege} ON DATABASE ${escapeIdentifier(db)} TO ${escapeIdentifier(role)} on the target`,
    });
  }
  return findings;
}
