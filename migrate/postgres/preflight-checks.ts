/**
 * The checks behind postgres.preflight, each a read-only query returning findings with their fix.
 * They run independently, so one failing check (or side) never hides the others' findings.
 */
import type pg from 'pg';
import type { Finding } from '../core/step.ts';
import type { ServerInfo } from './server.ts';

type Db = pg.Pool;

async function settings(db: Db, names: string[]): Promise<Map<string, string>> {
  const { rows } = await db.query<{ name: string; setting: string }>('select name, setting from pg_settings where name = any($1)', [names]);
  return new Map(rows.map((r) => [r.name, r.setting]));
}

const list = (names: string[], max = 8) => `${names.slice(0, max).join(', ')}${names.length > max ? `, … (${names.length} in all)` : ''}`;

export function versionFindings(source: ServerInfo, target: ServerInfo, dumpMajor: number | null, bindir: string): Finding[] {
  const findings: Finding[] = [
    {
      severity: 'info',
      object: 'versions',
      message: `source PostgreSQL ${source.version}, target PostgreSQL ${target.version}${dumpMajor ? `, pg_dump ${dumpMajor}` : ''}`,
    },
  ];
  if (source.major < 10)
    findings.push({
      severity: 'error',
      object: 'source version',
      message: `PostgreSQL ${source.major} has no logical replication`,
      fix: 'upgrade the source to 10 or newer first',
    });
  if (target.major < source.major)
    findings.push({
      severity: 'warning',
      object: 'target version',
      message: `the target (${target.major}) is older than the source (${source.major}); the schema may use features it lacks`,
    });
  if (dumpMajor !== null && dumpMajor < source.major) {
    findings.push({
      severity: 'error',
      object: `${bindir}/pg_dump`,
      message: `pg_dump ${dumpMajor} cannot dump a PostgreSQL ${source.major} source`,
      fix: `install the PostgreSQL ${source.major} client and set with.pgBinDir`,
    });
  }
  return findings;
}

/** Source server settings: logical WAL, and room for one more slot and walsender (plus the temporary ones table sync uses). */
export async function sourceServerFindings(db: Db, source: ServerInfo, syncWorkers: number): Promise<Finding[]> {
  const s = await settings(db, ['wal_level', 'max_replication_slots', 'max_wal_senders']);
  const findings: Finding[] = [];
  if (s.get('wal_level') !== 'logical') {
    findings.push({
      severity: 'error',
      object: 'source parameter wal_level',
      message: `is ${s.get('wal_level')}, logical replication needs logical`,
      fix: source.rds
        ? 'set rds.logical_replication = 1 in the parameter group and reboot'
        : "ALTER SYSTEM SET wal_level = 'logical', then restart the source",
    });
  }
  const { rows } = await db.query<{ slots: number; senders: number }>(
    `select (select count(*) from pg_replication_slots)::int as slots, (select count(*) from pg_stat_replication)::int as senders`,
  );
  const needed = 1 + syncWorkers;
  const freeSlots = Number(s.get('max_replication_slots')) - rows[0]!.slots;
  const freeSenders = Number(s.get('max_wal_senders')) - rows[0]!.senders;
  for (const [name, free] of [
    ['max_replication_slots', freeSlots],
    ['max_wal_senders', freeSenders],
  ] as const) {
    if (free >= needed) continue;
    findings.push({
      severity: free < 1 ? 'error' : 'warning',
      object: `source parameter ${name}`,
      message: `${free} free; the subscription needs 1, and its initial copy up to ${syncWorkers} more (one per table-sync worker)`,
      fix: `raise ${name} by ${needed - Math.max(free, 0)} and restart the source`,
    });
  }
  return findings;
}

export async function targetServerFindings(db: Db): Promise<Finding[]> {
  const s = await settings(db, [
    'max_logical_replication_workers',
    'max_worker_processes',
    'max_sync_workers_per_subscription',
    'max_replication_slots',
  ]);
  const logical = Number(s.get('max_logical_replication_workers'));
  const workers = Number(s.get('max_worker_processes'));
  const { rows } = await db.query<{ n: number }>('select count(*)::int as n from pg_subscription');
  const findings: Finding[] = [];
  if (logical < 2)
    findings.push({
      severity: 'error',
      object: 'target parameter max_logical_replication_workers',
      message: `is ${logical}; the apply worker and at least one table-sync worker need 2`,
      fix: 'raise it (parameter group on RDS) and reboot',
    });
  if (workers <= logical)
    findings.push({
      severity: 'warning',
      object: 'target parameter max_worker_processes',
      message: `is ${workers}, not above max_logical_replication_workers (${logical})`,
      fix: `raise it to at least ${logical + 2}`,
    });
  if (Number(s.get('max_replication_slots')) <= rows[0]!.n) {
    findings.push({
      severity: 'error',
      object: 'target parameter max_replication_slots',
      message: 'a subscriber needs one replication origin per subscription, limited by max_replication_slots',
      fix: `raise it above ${rows[0]!.n}`,
    });
  }
  return findings;
}

/** The source role must replicate and, for FOR ALL TABLES, be a superuser (rds_superuser on RDS). */
export async function sourcePrivilegeFindings(db: Db, source: ServerInfo): Promise<Finding[]> {
  const { rows } = await db.query<{ replication: boolean; rds_replication: boolean; rds_superuser: boolean }>(
    `select (select rolreplication from pg_roles where rolname = current_user) as replication,
            coalesce((select pg_has_role(current_user, oid, 'member') from pg_roles where rolname = 'rds_replication'), false) as rds_replication,
            coalesce((select pg_has_role(current_user, oid, 'member') from pg_roles where rolname = 'rds_superuser'), false) as rds_superuser`,
  );
  const r = rows[0]!;
  const findings: Finding[] = [];
  if (!source.superuser && !r.replication && !r.rds_replication) {
    findings.push({
      severity: 'error',
      object: `source role ${source.user}`,
      message: 'cannot replicate (needs REPLICATION, superuser, or rds_replication on RDS)',
      fix: source.rds ? `GRANT rds_replication TO ${source.user}` : `ALTER ROLE ${source.user} REPLICATION`,
    });
  }
  if (!source.superuser && !r.rds_superuser) {
    findings.push({
      severity: 'error',
      object: `source role ${source.user}`,
      message: 'CREATE PUBLICATION … FOR ALL TABLES needs a superuser',
      fix: 'run the migration as a superuser of the source (rds_superuser on RDS)',
    });
  }
  return findings;
}

export async function targetPrivilegeFindings(db: Db, target: ServerInfo): Promise<Finding[]> {
  if (target.superuser) return [];
  const { rows } = await db.query<{ rds: boolean; create_sub: boolean }>(
    `select coalesce((select pg_has_role(current_user, oid, 'member') from pg_roles where rolname = 'rds_superuser'), false) as rds,
            coalesce((select pg_has_role(current_user, oid, 'member') from pg_roles where rolname = 'pg_create_subscription'), false)
              and has_database_privilege(current_database(), 'CREATE') as create_sub`,
  );
  const r = rows[0]!;
  if (r.rds || (target.major >= 16 && r.create_sub)) return [];
  return [
    {
      severity: 'error',
      object: `target role ${target.user}`,
      message:
        'cannot CREATE SUBSCRIPTION (needs superuser, rds_superuser on RDS, or pg_create_subscription and CREATE on the database on 16+)',
      fix: target.rds
        ? `use the master user, or GRANT rds_superuser TO ${target.user}`
        : `GRANT pg_create_subscription TO ${target.user} (16+) or make it a superuser`,
    },
  ];
}

export interface IdentityProblem {
  table: string;
  identity: 'default' | 'nothing';
}

/** Tables whose UPDATEs and DELETEs could not be replicated: no primary key and no usable replica identity. */
export async function tablesWithoutIdentity(db: Db): Promise<IdentityProblem[]> {
  const { rows } = await db.query<{ table: string; identity: string }>(
    `select format('%I.%I', n.nspname, c.relname) as table, c.relreplident as identity
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind = 'r' and c.relpersistence = 'p' and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'
        and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
        and (c.relreplident = 'n' or (c.relreplident = 'd' and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary)))
      order by 1`,
  );
  return rows.map((r) => ({ table: r.table, identity: r.identity === 'n' ? 'nothing' : 'default' }));
}

export function identityFindings(problems: IdentityProblem[], fixing: boolean): Finding[] {
  return problems.map((p) =>
    fixing
      ? {
          severity: 'warning',
          object: `table ${p.table}`,
          message: 'has no primary key: apply sets REPLICA IDENTITY FULL (every UPDATE/DELETE logs the whole old row)',
        }
      : {
          severity: 'error',
          object: `table ${p.table}`,
          message: `has no primary key and replica identity ${p.identity}: its UPDATEs and DELETEs cannot be replicated`,
          fix: `add a primary key, or ALTER TABLE ${p.table} REPLICA IDENTITY USING INDEX <unique index>, or set with.replicaIdentityFull: true`,
        },
  );
}

export async function largeObjectFindings(db: Db): Promise<Finding[]> {
  const { rows } = await db.query<{ n: number }>('select count(*)::int as n from pg_largeobject_metadata');
  if (rows[0]!.n === 0) return [];
  return [
    {
      severity: 'error',
      object: 'source large objects',
      message: `${rows[0]!.n} large objects exist; logical replication does not copy them`,
      fix: 'move them into bytea columns, or delete unused ones (vacuumlo), before the migration',
    },
  ];
}

export async function unloggedFindings(db: Db): Promise<Finding[]> {
  const { rows } = await db.query<{ table: string; kind: string }>(
    `select format('%I.%I', n.nspname, c.relname) as table, c.relkind as kind from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where ((c.relkind = 'r' and c.relpersistence = 'u') or c.relkind = 'm') and n.nspname not in ('pg_catalog', 'information_schema') order by 1`,
  );
  const unlogged = rows.filter((r) => r.kind === 'r').map((r) => r.table);
  const views = rows.filter((r) => r.kind === 'm').map((r) => r.table);
  const findings: Finding[] = [];
  if (unlogged.length > 0)
    findings.push({
      severity: 'warning',
      object: `unlogged tables ${list(unlogged)}`,
      message: 'are not replicated: they arrive empty on the target',
      fix: 'ALTER TABLE … SET LOGGED before the migration if their rows matter',
    });
  if (views.length > 0)
    findings.push({
      severity: 'warning',
      object: `materialized views ${list(views)}`,
      message: 'are not replicated',
      fix: 'REFRESH MATERIALIZED VIEW on the target after the copy',
    });
  return findings;
}

export async function extensionFindings(source: Db, target: Db): Promise<Finding[]> {
  const [installed, available] = await Promise.all([
    source.query<{ name: string; version: string }>(
      "select extname as name, extversion as version from pg_extension where extname <> 'plpgsql' order by 1",
    ),
    target.query<{ name: string; default_version: string | null }>('select name, default_version from pg_available_extensions'),
  ]);
  const onTarget = new Map(available.rows.map((r) => [r.name, r.default_version]));
  const findings: Finding[] = [];
  for (const ext of installed.rows) {
    if (!onTarget.has(ext.name)) {
      findings.push({
        severity: 'error',
        object: `extension ${ext.name}`,
        message: `installed on the source (${ext.version}) but not available on the target`,
        fix: 'install it on the target (on RDS: check the supported extensions of this engine version), or drop it from the source',
      });
    }
  }
  return findings;
}

/** Target tables that already hold rows: the initial copy would duplicate them or fail on keys. */
export async function nonEmptyTargetTables(db: Db): Promise<string[]> {
  const { rows } = await db.query<{ table: string }>(
    `select format('%I.%I', n.nspname, c.relname) as table from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind = 'r' and c.relpersistence = 'p' and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'
        and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')`,
  );
  const nonEmpty: string[] = [];
  // One statement per chunk of tables, each an index-free LIMIT 1 probe.
  for (let i = 0; i < rows.length; i += 200) {
    const chunk = rows.slice(i, i + 200);
    const sql = chunk.map((r, j) => `select $${j + 1}::text as t where exists (select 1 from only ${r.table} limit 1)`).join(' union all ');
    const result = await db.query<{ t: string }>(
      sql,
      chunk.map((r) => r.table),
    );
    nonEmpty.push(...result.rows.map((r) => r.t));
  }
  return nonEmpty;
}

export function nonEmptyFindings(tables: string[]): Finding[] {
  if (tables.length === 0) return [];
  return [
    {
      severity: 'error',
      object: `target tables ${list(tables)}`,
      message: `${tables.length} target tables already hold rows; the initial copy would duplicate them or stop on key conflicts`,
      fix: 'TRUNCATE them on the target (it must hold only the schema), or drop and recreate the target database',
    },
  ];
}

export async function nameCollisionFindings(source: Db, target: Db, publication: string, subscription: string): Promise<Finding[]> {
  const [pub, slot, sub] = await Promise.all([
    source.query('select 1 from pg_publication where pubname = $1', [publication]),
    source.query('select 1 from pg_replication_slots where slot_name = $1', [subscription]),
    target.query('select 1 from pg_subscription where subname = $1', [subscription]),
  ]);
  const findings: Finding[] = [];
  if (pub.rows.length > 0)
    findings.push({
      severity: 'error',
      object: `publication ${publication} (source)`,
      message: 'already exists',
      fix: `drop it on the source if it is a leftover (DROP PUBLICATION ${publication}), or choose another with.publication`,
    });
  if (slot.rows.length > 0)
    findings.push({
      severity: 'error',
      object: `replication slot ${subscription} (source)`,
      message: 'already exists',
      fix: `drop it on the source if it is a leftover (select pg_drop_replication_slot('${subscription}')), or choose another with.subscription`,
    });
  if (sub.rows.length > 0)
    findings.push({
      severity: 'error',
      object: `subscription ${subscription} (target)`,
      message: 'already exists',
      fix: `drop it on the target if it is a leftover (DROP SUBSCRIPTION ${subscription}), or choose another with.subscription`,
    });
  return findings;
}

/** Roles that own objects or hold grants on the source and are missing on the target. */
export async function missingRoleFindings(source: Db, target: Db, withOwners: boolean): Promise<Finding[]> {
  const [used, existing] = await Promise.all([
    source.query<{ role: string; why: string }>(
      `with owners as (
         select c.relowner as role, 'owns tables' as why from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'
         union select nspowner, 'owns schemas' from pg_namespace where nspname not in ('pg_catalog', 'information_schema') and nspname not like 'pg\\_%'
         union select (aclexplode(c.relacl)).grantee, 'has grants' from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relacl is not null and n.nspname not in ('pg_catalog', 'information_schema')
         union select (aclexplode(nspacl)).grantee, 'has grants' from pg_namespace where nspacl is not null and nspname not in ('pg_catalog', 'information_schema'))
       select r.rolname as role, string_agg(distinct o.why, ', ') as why from owners o join pg_roles r on r.oid = o.role
        where r.rolname !~ '^(pg_|rds)' and r.rolname <> current_user group by 1 order by 1`,
    ),
    target.query<{ rolname: string }>('select rolname from pg_roles'),
  ]);
  const have = new Set(existing.rows.map((r) => r.rolname));
  return used.rows
    .filter((r) => !have.has(r.role))
    .map((r) => ({
      severity: 'warning' as const,
      object: `role ${r.role}`,
      message: `${r.why} on the source but does not exist on the target${withOwners ? '' : ' (the schema copy leaves owners and grants out unless asked)'}`,
      fix: `create it on the target (pg_dumpall --roles-only on the source lists its definition), then grant what the application needs`,
    }));
}

export interface ColumnsWithoutEquality {
  table: string;
  /** `column type`, for each column whose type has no default btree or hash equality. */
  columns: string[];
}

/**
 * Tables replicated with REPLICA IDENTITY FULL (already, or because they have no key) whose rows
 * hold a type without an equality operator (json, xml, point, box, …, also inside arrays, domains and
 * composites): the subscriber finds the old row of an UPDATE/DELETE by comparing every column with
 * the type's default btree or hash equality, and without one its apply worker fails and retries forever.
 */
export async function fullIdentityWithoutEquality(db: Db): Promise<ColumnsWithoutEquality[]> {
  const { rows } = await db.query<{ table: string; columns: string[] }>(
    `with recursive tables as (
       select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind = 'r' and c.relpersistence = 'p' and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'
          and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
          and (c.relreplident = 'f' or (c.relreplident in ('d', 'n') and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary)))
     ), reached (rel, attnum, typ) as (
       select a.attrelid, a.attnum, a.atttypid from pg_attribute a join tables t on t.oid = a.attrelid where a.attnum > 0 and not a.attisdropped
       union
       select r.rel, r.attnum, x.typ from reached r join pg_type t on t.oid = r.typ
        cross join lateral (
          select t.typbasetype where t.typtype = 'd'
          union all select t.typelem where t.typcategory = 'A' and t.typelem <> 0
          union all select a.atttypid from pg_attribute a where t.typtype = 'c' and a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped
        ) x(typ)
     ), leaves as (
       select r.rel, r.attnum from reached r join pg_type t on t.oid = r.typ
        where t.typtype not in ('d', 'c') and not (t.typcategory = 'A' and t.typelem <> 0)
          and not exists (
            select 1 from pg_opclass oc join pg_am am on am.oid = oc.opcmethod
             where am.amname in ('btree', 'hash') and oc.opcdefault
               and (oc.opcintype = t.oid
                    or (t.typtype = 'e' and oc.opcintype = 'anyenum'::regtype)
                    or (t.typtype = 'r' and oc.opcintype = 'anyrange'::regtype)
                    or (t.typtype = 'm' and oc.opcintype = to_regtype('anymultirange'))
                    or exists (select 1 from pg_cast k where k.castsource = t.oid and k.casttarget = oc.opcintype and k.castmethod = 'b' and k.castcontext = 'i')))
     )
     select format('%I.%I', n.nspname, c.relname) as table,
            array_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)) order by a.attnum) as columns
       from (select distinct rel, attnum from leaves) l
       join pg_attribute a on a.attrelid = l.rel and a.attnum = l.attnum
       join pg_class c on c.oid = l.rel join pg_namespace n on n.oid = c.relnamespace
      group by 1 order by 1`,
  );
  return rows;
}

export function equalityFindings(tables: ColumnsWithoutEquality[]): Finding[] {
  return tables.map((t) => ({
    severity: 'error',
    object: `table ${t.table}`,
    message: `is replicated with REPLICA IDENTITY FULL (no primary key) but ${t.columns.join(', ')} ${t.columns.length > 1 ? 'have types' : 'has a type'} without an equality operator: the target's apply worker would stop at its first UPDATE or DELETE and retry forever`,
    fix: `add a primary key, or ALTER TABLE ${t.table} REPLICA IDENTITY USING INDEX <unique index on NOT NULL columns>, or change json columns to jsonb`,
  }));
}

/**
 * Before 15, a "char" value of 128 or more is printed as a raw byte: COPY and replication then hand
 * the target a string that is not valid in its encoding, and the copy stops. Scans only the tables
 * that have such columns (rare outside the catalogs).
 */
export async function highBitCharFindings(db: Db, source: ServerInfo): Promise<Finding[]> {
  if (source.major >= 15) return [];
  const { rows } = await db.query<{ table: string; column: string }>(
    `select format('%I.%I', n.nspname, c.relname) as table, format('%I', a.attname) as column
       from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
       join pg_type t on t.oid = a.atttypid
      where c.relkind = 'r' and a.attnum > 0 and not a.attisdropped and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'
        and coalesce(nullif(t.typbasetype, 0), t.oid) = '"char"'::regtype
      order by 1, 2`,
  );
  const findings: Finding[] = [];
  for (const { table, column } of rows) {
    const bad = await db.query<{ n: number }>(`select count(*)::int as n from ${table} where ${column}::"char"::int < 0`);
    if (bad.rows[0]!.n === 0) continue;
    findings.push({
      severity: 'error',
      object: `column ${table}.${column}`,
      message: `${bad.rows[0]!.n} rows hold a "char" value of 128 or more, which PostgreSQL ${source.major} prints as a raw byte: the copy to the target would stop with an encoding error`,
      fix: `change them to ASCII (UPDATE ${table} SET ${column} = … WHERE ${column}::int < 0), or the column to smallint or text, before the migration`,
    });
  }
  return findings;
}
