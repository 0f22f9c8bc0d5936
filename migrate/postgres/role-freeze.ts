/**
 * Freezing application roles on the source, and putting them back exactly as they were.
 * Read-only is per role *in the migrated database* (`ALTER ROLE r IN DATABASE d SET ...`): that is
 * the most specific level PostgreSQL has, so it wins over any role-wide or database-wide default.
 * It is only a default, though: a session may still ask for a read-write transaction. What holds is
 * NOLOGIN with the roles' sessions ended: no privilege test applies to an object's owner, but an
 * owner that cannot connect cannot write. NOLOGIN is cluster-wide, so it covers every database.
 */
import type pg from 'pg';
import { escapeIdentifier, escapeLiteral } from 'pg';
import type { Json } from '../core/step.ts';

export const READ_ONLY_SETTING = 'default_transaction_read_only';

/** Journalled before a role is frozen: everything needed to put it back. */
export interface RoleFreezeChange {
  action: 'freeze-role';
  role: string;
  database: string;
  /** The role's own value in that database before the freeze; null when it had none (undo RESETs). */
  previousReadOnly: string | null;
  /** rolcanlogin before an enforced freeze; null when login was not touched (advisory). */
  previousCanLogin: boolean | null;
  [key: string]: Json;
}

export function isRoleFreezeChange(change: Json): change is RoleFreezeChange {
  return (
    typeof change === 'object' &&
    change !== null &&
    !Array.isArray(change) &&
    change.action === 'freeze-role' &&
    typeof change.role === 'string'
  );
}

/** The first record of each role: after a crash and resume, later records would hold the frozen value. */
export function originalStates(changes: readonly Json[]): Map<string, RoleFreezeChange> {
  const originals = new Map<string, RoleFreezeChange>();
  for (const change of changes) {
    if (!isRoleFreezeChange(change)) continue;
    const known = originals.get(change.role);
    if (!known) originals.set(change.role, { ...change });
    else if (known.previousCanLogin === null && change.previousCanLogin !== null) known.previousCanLogin = change.previousCanLogin;
  }
  return originals;
}

/**
 * Application roles by default: roles that can log in, except superusers, replication roles, the
 * role the migration runs as, and built-in or managed-service roles.
 */
export async function defaultApplicationRoles(db: pg.Pool): Promise<string[]> {
  const { rows } = await db.query<{ rolname: string }>(
    `select rolname from pg_roles
      where rolcanlogin and not rolsuper and not rolreplication and rolname <> current_user
        and rolname !~ '^(pg_|rds)' order by 1`,
  );
  return rows.map((r) => r.rolname);
}

export interface RoleState {
  exists: boolean;
  canLogin: boolean;
  superuser: boolean;
  /** The role's value of default_transaction_read_only in the current database, if it has one. */
  readOnly: string | null;
}

export async function roleStates(db: pg.Pool, roles: string[]): Promise<Map<string, RoleState>> {
  const { rows } = await db.query<{ role: string; exists: boolean; canlogin: boolean; superuser: boolean; readonly: string | null }>(
    `select u.role, r.oid is not null as exists, coalesce(r.rolcanlogin, false) as canlogin, coalesce(r.rolsuper, false) as superuser,
            (select substr(c, length($2) + 2) from pg_db_role_setting s, unnest(s.setconfig) c
              where s.setrole = r.oid and s.setdatabase = (select oid from pg_database where datname = current_database())
                and c like $2 || '=%') as readonly
       from unnest($1::text[]) as u(role) left join pg_roles r on r.rolname = u.role`,
    [roles, READ_ONLY_SETTING],
  );
  return new Map(rows.map((r) => [r.role, { exists: r.exists, canLogin: r.canlogin, superuser: r.superuser, readOnly: r.readonly }]));
}

export async function freezeRole(db: pg.Pool, role: string, database: string, nologin: boolean): Promise<void> {
  await db.query(`alter role ${escapeIdentifier(role)} in database ${escapeIdentifier(database)} set ${READ_ONLY_SETTING} = on`);
  if (nologin) await db.query(`alter role ${escapeIdentifier(role)} nologin`);
}

/** Puts a role back as `original` says it was. Idempotent. */
export async function restoreRole(db: pg.Pool, original: RoleFreezeChange): Promise<void> {
  const target = `alter role ${escapeIdentifier(original.role)} in database ${escapeIdentifier(original.database)}`;
  await db.query(
    original.previousReadOnly === null
      ? `${target} reset ${READ_ONLY_SETTING}`
      : `${target} set ${READ_ONLY_SETTING} = ${escapeLiteral(original.previousReadOnly)}`,
  );
  if (original.previousCanLogin === true) await db.query(`alter role ${escapeIdentifier(original.role)} login`);
}

/** Sessions of `roles` in the current database that started before `before` (server time, ISO). */
export async function sessionsStartedBefore(db: pg.Pool, roles: string[], before: string): Promise<{ pid: number; writing: boolean }[]> {
  const { rows } = await db.query<{ pid: number; writing: boolean }>(
    `select pid, backend_xid is not null as writing from pg_stat_activity
      where usename = any($1) and datname = current_database() and backend_start < $2::timestamptz and pid <> pg_backend_pid()`,
    [roles, before],
  );
  return rows;
}

/** Sessions of `roles` holding a transaction that has written (has an xid). */
export async function writingSessions(db: pg.Pool, roles: string[]): Promise<{ pid: number; role: string }[]> {
  const { rows } = await db.query<{ pid: number; role: string }>(
    `select pid, usename as role from pg_stat_activity
      where usename = any($1) and datname = current_database() and backend_xid is not null and pid <> pg_backend_pid()`,
    [roles],
  );
  return rows;
}

export async function terminateSessions(db: pg.Pool, pids: number[]): Promise<number> {
  if (pids.length === 0) return 0;
  const { rows } = await db.query<{ n: number }>(
    'select count(*) filter (where pg_terminate_backend(pid))::int as n from unnest($1::int[]) as pid',
    [pids],
  );
  return rows[0]?.n ?? 0;
}

/** Sessions of `roles` in the current database, whatever they are doing. */
export async function openSessions(db: pg.Pool, roles: string[]): Promise<{ pid: number; role: string }[]> {
  const { rows } = await db.query<{ pid: number; role: string }>(
    `select pid, usename as role from pg_stat_activity where usename = any($1) and datname = current_database() and pid <> pg_backend_pid()`,
    [roles],
  );
  return rows;
}

/**
 * Login roles left unfrozen that can act as a frozen one (SET ROLE, or inheriting its rights as a
 * member): through them the frozen role's rights, ownership included, still write.
 */
export async function unfrozenMembers(db: pg.Pool, roles: string[]): Promise<{ member: string; role: string }[]> {
  const { rows } = await db.query<{ member: string; role: string }>(
    `select m.rolname as member, f.rolname as role from pg_roles m, pg_roles f
      where f.rolname = any($1) and m.rolcanlogin and not m.rolsuper and m.rolname <> all($1) and m.rolname <> current_user
        and m.oid <> f.oid and pg_has_role(m.oid, f.oid, 'MEMBER') order by 1, 2`,
    [roles],
  );
  return rows;
}
