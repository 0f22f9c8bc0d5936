/**
 * One server's schema as a flat map of objects, each with the properties that must match on the
 * other side: tables, columns and types, indexes, constraints, sequences, views and materialized
 * views, policies, triggers, statistics objects, functions, schemas and types, with their owners,
 * privileges (ACLs, column ACLs included) and comments. Catalog queries only, valid on 13 to 17.
 *
 * Roles are compared by name, except the roles that stand for "whoever runs the migration": a
 * superuser, the connected user and pg_database_owner own the objects the migration itself created
 * or that belong to the database's administrator, so they are all written `(migration user)`; the
 * source's `postgres` and RDS's master user are then the same owner, as they must be.
 */
import type pg from 'pg';

export const MIGRATION_USER = '(migration user)';

export interface SchemaObject {
  /** e.g. `table`, `column`, `index`, `policy`. */
  kind: string;
  /** Qualified name: `shop.orders`, `shop.orders.qty`, `shop.order_total(o shop.orders)`. */
  name: string;
  /** The table a column, constraint, policy or trigger belongs to. */
  table?: string;
  props: Record<string, string>;
}

/** Keyed by `kind name`. */
export type SchemaObjects = Map<string, SchemaObject>;

const SYSTEM = (nsp: string) =>
  `${nsp}.nspname not in ('pg_catalog', 'information_schema') and ${nsp}.nspname not like 'pg\\_toast%' and ${nsp}.nspname not like 'pg\\_temp%'`;
const NOT_EXTENSION = (catalog: string, oid: string) =>
  `not exists (select 1 from pg_depend d where d.classid = '${catalog}'::regclass and d.objid = ${oid} and d.deptype = 'e')`;

/** A role name, with the migration's own roles folded into one. */
const ROLE = (oid: string) =>
  `(select case when r.rolsuper or r.rolname = current_user or r.rolname = 'pg_database_owner' then '${MIGRATION_USER}' else r.rolname end from pg_roles r where r.oid = ${oid})`;
const ROLE_OR_PUBLIC = (oid: string) => `case when ${oid} = 0 then 'PUBLIC' else ${ROLE(oid)} end`;

/**
 * An ACL as sorted `grantee:PRIVILEGE[*]` entries (grantor left out: it is whoever ran the GRANT);
 * NULL means the owner's default. The owner's own MAINTAIN is left out: PostgreSQL 17 gives it to
 * every owner, so a 13 source and a 17 target differ there by version, not by anything granted.
 */
const ACL = (acl: string, kind: string, owner: string) =>
  `(select coalesce(string_agg(distinct ${ROLE_OR_PUBLIC('a.grantee')} || ':' || a.privilege_type || case when a.is_grantable then '*' else '' end, ' '), '(none)')
      from aclexplode(coalesce(${acl}, acldefault(${kind}, ${owner}))) a where not (a.privilege_type = 'MAINTAIN' and a.grantee = ${owner}))`;
const COLUMN_ACL = (acl: string) =>
  `(select string_agg(distinct ${ROLE_OR_PUBLIC('a.grantee')} || ':' || a.privilege_type || case when a.is_grantable then '*' else '' end, ' ') from aclexplode(${acl}) a)`;

const COMMENT = (oid: string, catalog: string, sub = '0') =>
  `(select description from pg_description where objoid = ${oid} and classoid = '${catalog}'::regclass and objsubid = ${sub})`;

const RELKIND: Record<string, string> = { r: 'table', p: 'table', v: 'view', m: 'materialized view', S: 'sequence', f: 'foreign table' };

export type Row = { kind: string; name: string; tbl: string | null; props: Record<string, string | null> };

const QUERIES: string[] = [
  `select 'schema' as kind, n.nspname as name, null as tbl,
          json_build_object('owner', ${ROLE('n.nspowner')}, 'acl', ${ACL('n.nspacl', "'n'", 'n.nspowner')}, 'comment', ${COMMENT('n.oid', 'pg_namespace')}) as props
     from pg_namespace n where ${SYSTEM('n')} and n.nspname not like 'pg\\_%' and ${NOT_EXTENSION('pg_namespace', 'n.oid')}`,

  `select c.relkind as kind, format('%I.%I', n.nspname, c.relname) as name, owning.tbl,
          json_build_object(
            'owner', ${ROLE('c.relowner')},
            'acl', ${ACL('c.relacl', `case when c.relkind = 'S' then 's'::"char" else 'r'::"char" end`, 'c.relowner')},
            'comment', ${COMMENT('c.oid', 'pg_class')},
            'persistence', c.relpersistence::text,
            'partitioned', (c.relkind = 'p')::text,
            'partition of', (select format('%I.%I', pn.nspname, p.relname) || ' ' || pg_get_expr(c.relpartbound, c.oid)
                               from pg_inherits i join pg_class p on p.oid = i.inhparent join pg_namespace pn on pn.oid = p.relnamespace
                              where i.inhrelid = c.oid and c.relispartition),
            'row level security', case when c.relkind in ('r', 'p') then c.relrowsecurity::text || case when c.relforcerowsecurity then ' forced' else '' end end,
            'replica identity', case when c.relkind in ('r', 'p') then case c.relreplident when 'd' then 'default' when 'n' then 'nothing' when 'f' then 'full'
                                  else 'index ' || coalesce((select i.relname from pg_index x join pg_class i on i.oid = x.indexrelid where x.indrelid = c.oid and x.indisreplident), '?') end end,
            'definition', case when c.relkind in ('v', 'm') then regexp_replace(pg_get_viewdef(c.oid), '\\s+', ' ', 'g') end,
            'owned by', owning.tbl || '.' || owning.col,
            'sequence', (select format('%s start %s increment %s min %s max %s cache %s%s', format_type(s.seqtypid, null), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, case when s.seqcycle then ' cycle' else '' end)
                           from pg_sequence s where s.seqrelid = c.oid)
          ) as props
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     -- A sequence owned by a column (serial, identity) belongs to its table, and comes and goes with it.
     left join lateral (select format('%I.%I', tn.nspname, t.relname) as tbl, quote_ident(a.attname) as col
                          from pg_depend d join pg_class t on t.oid = d.refobjid join pg_namespace tn on tn.oid = t.relnamespace
                          join pg_attribute a on a.attrelid = t.oid and a.attnum = d.refobjsubid
                         where c.relkind = 'S' and d.classid = 'pg_class'::regclass and d.objid = c.oid and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')
                         limit 1) owning on true
    where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and c.relpersistence <> 't' and ${SYSTEM('n')} and ${NOT_EXTENSION('pg_class', 'c.oid')}`,

  `select 'column' as kind, format('%I.%I.%I', n.nspname, c.relname, a.attname) as name, format('%I.%I', n.nspname, c.relname) as tbl,
          json_build_object(
            'type', format_type(a.atttypid, a.atttypmod),
            'not null', a.attnotnull::text,
            'default', pg_get_expr(ad.adbin, ad.adrelid),
            'identity', nullif(a.attidentity::text, ''),
            'generated', nullif(a.attgenerated::text, ''),
            'collation', case when a.attcollation <> 0 and a.attcollation <> (select typcollation from pg_type where oid = a.atttypid) then (select collname from pg_collation where oid = a.attcollation) end,
            'acl', ${COLUMN_ACL('a.attacl')},
            'comment', ${COMMENT('c.oid', 'pg_class', 'a.attnum')}
          ) as props
     from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
     left join pg_attrdef ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum
    where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p', 'v', 'm', 'f') and c.relpersistence <> 't'
      and ${SYSTEM('n')} and ${NOT_EXTENSION('pg_class', 'c.oid')}`,

  `select 'index' as kind, format('%I.%I', n.nspname, i.relname) as name, format('%I.%I', n.nspname, c.relname) as tbl,
          json_build_object('definition', pg_get_indexdef(x.indexrelid), 'comment', ${COMMENT('i.oid', 'pg_class')}) as props
     from pg_index x join pg_class i on i.oid = x.indexrelid join pg_class c on c.oid = x.indrelid join pg_namespace n on n.oid = i.relnamespace
    where c.relpersistence <> 't' and ${SYSTEM('n')} and ${NOT_EXTENSION('pg_class', 'c.oid')}`,

  `select 'constraint' as kind, format('%I.%I.%I', n.nspname, c.relname, con.conname) as name, format('%I.%I', n.nspname, c.relname) as tbl,
          json_build_object('definition', pg_get_constraintdef(con.oid), 'comment', ${COMMENT('con.oid', 'pg_constraint')}) as props
     from pg_constraint con join pg_class c on c.oid = con.conrelid join pg_namespace n on n.oid = c.relnamespace
    where con.contype in ('p', 'u', 'f', 'x', 'c') and con.conislocal and c.relpersistence <> 't' and ${SYSTEM('n')} and ${NOT_EXTENSION('pg_class', 'c.oid')}`,

  `select 'policy' as kind, format('%I.%I.%I', n.nspname, c.relname, p.polname) as name, format('%I.%I', n.nspname, c.relname) as tbl,
          json_build_object(
            'command', p.polcmd::text,
            'permissive', p.polpermissive::text,
            'roles', (select string_agg(${ROLE_OR_PUBLIC('pr.oid')}, ',' order by 1) from unnest(p.polroles) pr(oid)),
            'using', pg_get_expr(p.polqual, p.polrelid),
            'with check', pg_get_expr(p.polwithcheck, p.polrelid),
            'comment', ${COMMENT('p.oid', 'pg_policy')}
          ) as props
     from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
    where ${SYSTEM('n')}`,

  `select 'trigger' as kind, format('%I.%I.%I', n.nspname, c.relname, t.tgname) as name, format('%I.%I', n.nspname, c.relname) as tbl,
          json_build_object('definition', pg_get_triggerdef(t.oid), 'enabled', t.tgenabled::text, 'comment', ${COMMENT('t.oid', 'pg_trigger')}) as props
     from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
    where not t.tgisinternal and t.tgparentid = 0 and ${SYSTEM('n')} and ${NOT_EXTENSION('pg_class', 'c.oid')}`,

  `select 'statistics' as kind, format('%I.%I', n.nspname, s.stxname) as name, null as tbl,
          json_build_object('definition', pg_get_statisticsobjdef(s.oid), 'owner', ${ROLE('s.stxowner')}, 'comment', ${COMMENT('s.oid', 'pg_statistic_ext')}) as props
     from pg_statistic_ext s join pg_namespace n on n.oid = s.stxnamespace where ${SYSTEM('n')}`,

  `select 'function' as kind, format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) as name, null as tbl,
          json_build_object(
            'kind', p.prokind::text,
            'result', pg_get_function_result(p.oid),
            'language', (select lanname from pg_language where oid = p.prolang),
            'body', md5(coalesce(p.prosrc, '') || coalesce(p.probin, '')),
            'volatility', p.provolatile::text,
            'security definer', p.prosecdef::text,
            'owner', ${ROLE('p.proowner')},
            'acl', ${ACL('p.proacl', "'f'", 'p.proowner')},
            'comment', ${COMMENT('p.oid', 'pg_proc')}
          ) as props
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace where ${SYSTEM('n')} and ${NOT_EXTENSION('pg_proc', 'p.oid')}`,

  `select 'type' as kind, format('%I.%I', n.nspname, t.typname) as name, null as tbl,
          json_build_object(
            'kind', t.typtype::text,
            'labels', (select string_agg(e.enumlabel, ',' order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid),
            'base', case when t.typtype = 'd' then format_type(t.typbasetype, t.typtypmod) end,
            'checks', (select string_agg(pg_get_constraintdef(k.oid), ' and ' order by k.conname) from pg_constraint k where k.contypid = t.oid),
            'owner', ${ROLE('t.typowner')},
            'acl', ${ACL('t.typacl', "'T'", 't.typowner')},
            'comment', ${COMMENT('t.oid', 'pg_type')}
          ) as props
     from pg_type t join pg_namespace n on n.oid = t.typnamespace
    where (t.typtype in ('e', 'd', 'r', 'm') or (t.typtype = 'c' and (select relkind from pg_class where oid = t.typrelid) = 'c'))
      and ${SYSTEM('n')} and ${NOT_EXTENSION('pg_type', 't.oid')}`,
];

/**
 * Runs one catalog query in a read-only snapshot the caller holds (verify's switch point), with
 * lock_timeout set to `lockTimeoutMs`: every query of one read must see the same snapshot.
 */
export type SchemaQuery = (sql: string, lockTimeoutMs: number) => Promise<Row[]>;

/**
 * Reads every object, in one read-only transaction (or through `SchemaQuery`, in the caller's snapshot). Deparsing a default or a view takes a share lock
 * on its table, which would queue behind a pending TRUNCATE or ALTER; a status or a go/no-go must say
 * so rather than hang, hence the lock timeout.
 */
export async function readSchema(db: pg.Pool | SchemaQuery, lockTimeoutMs = 10_000): Promise<SchemaObjects> {
  const rows: Row[] = [];
  const locked = (error: unknown) =>
    (error as { code?: string }).code === '55P03'
      ? new Error(
          `a table stayed locked for more than ${lockTimeoutMs / 1000} s while its schema was read (a pending TRUNCATE or ALTER?); try again once it is released`,
        )
      : error;
  if (typeof db === 'function') {
    try {
      for (const query of QUERIES) rows.push(...(await db(query, lockTimeoutMs)));
    } catch (error) {
      throw locked(error);
    }
    return toObjects(rows);
  }
  const client = await db.connect();
  try {
    await client.query('begin transaction read only');
    await client.query(`set local lock_timeout = ${Math.round(lockTimeoutMs)}`);
    for (const query of QUERIES) rows.push(...(await client.query<Row>(query)).rows);
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw locked(error);
  } finally {
    client.release();
  }
  return toObjects(rows);
}

function toObjects(rows: Row[]): SchemaObjects {
  const objects: SchemaObjects = new Map();
  for (const row of rows) {
    const kind = RELKIND[row.kind] ?? row.kind;
    const props: Record<string, string> = {};
    for (const [key, value] of Object.entries(row.props)) if (value !== null && value !== undefined) props[key] = String(value);
    objects.set(`${kind} ${row.name}`, { kind, name: row.name, ...(row.tbl ? { table: row.tbl } : {}), props });
  }
  const unqualify = columnQualifiers([...objects.values()].filter((o) => o.kind === 'schema').map((o) => o.name));
  for (const object of objects.values()) {
    if (object.props.definition && (object.kind === 'view' || object.kind === 'materialized view'))
      object.props.definition = object.props.definition.replace(unqualify, '');
  }
  return objects;
}

/**
 * PostgreSQL 16 stopped printing `orders.tenant` where `tenant` is unambiguous in a view's
 * definition, so column qualifiers (`name.` not preceded by a name and not a schema) are dropped on
 * both sides before comparing; a schema-qualified table name stays.
 */
function columnQualifiers(schemas: string[]): RegExp {
  const escapeRegExp = (name: string) => name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const keep = [...schemas, 'pg_catalog', 'public', 'information_schema'].map(escapeRegExp).join('|');
  return new RegExp(`(?<![\\w$."])(?!(?:${keep})\\.)("(?:[^"]|"")+"|[A-Za-z_][\\w$]*)\\.(?=[A-Za-z_"])`, 'g');
}
