/** What a step needs to know about the server and the role it is connected as. */
import type pg from 'pg';

export interface ServerInfo {
  /** e.g. 150004 */
  versionNum: number;
  major: number;
  version: string;
  database: string;
  user: string;
  superuser: boolean;
  /** RDS and Aurora have an `rds_superuser` role; self-managed servers do not. */
  rds: boolean;
}

export async function serverInfo(db: pg.Pool | pg.ClientBase): Promise<ServerInfo> {
  const { rows } = await db.query<{ num: string; version: string; database: string; user: string; superuser: boolean; rds: boolean }>(
    `select current_setting('server_version_num') as num, current_setting('server_version') as version,
            current_database() as database, current_user as user,
            (select rolsuper from pg_roles where rolname = current_user) as superuser,
            exists (select 1 from pg_roles where rolname = 'rds_superuser') as rds`,
  );
  const row = rows[0]!;
  const versionNum = Number(row.num);
  return {
    versionNum,
    major: Math.floor(versionNum / 10000),
    version: row.version,
    database: row.database,
    user: row.user,
    superuser: row.superuser,
    rds: row.rds,
  };
}
