/**
 * The user-defined objects of a database by qualified name, for deciding whether a schema copy is
 * done, not started, or half-done. Objects that belong to an extension are left out: the extension
 * creates them, not the dump.
 */
import type pg from 'pg';

export interface SchemaInventory {
  schemas: string[];
  tables: string[];
  sequences: string[];
  types: string[];
}

const SYSTEM_SCHEMA = `n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'`;
const notExtensionMember = (catalog: string, oid: string) =>
  `not exists (select 1 from pg_depend d where d.classid = '${catalog}'::regclass and d.objid = ${oid} and d.deptype = 'e')`;

export async function schemaInventory(db: pg.Pool): Promise<SchemaInventory> {
  const [schemas, relations, types] = await Promise.all([
    db.query<{ name: string }>(
      `select n.nspname as name from pg_namespace n where ${SYSTEM_SCHEMA} and ${notExtensionMember('pg_namespace', 'n.oid')} order by 1`,
    ),
    db.query<{ name: string; kind: string }>(
      `select format('%I.%I', n.nspname, c.relname) as name, c.relkind as kind
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p', 'S') and c.relpersistence <> 't' and ${SYSTEM_SCHEMA}
          and ${notExtensionMember('pg_class', 'c.oid')} order by 1`,
    ),
    db.query<{ name: string }>(
      `select format('%I.%I', n.nspname, t.typname) as name
         from pg_type t join pg_namespace n on n.oid = t.typnamespace
        where (t.typtype in ('e', 'd', 'r', 'm') or (t.typtype = 'c' and (select relkind from pg_class where oid = t.typrelid) = 'c'))
          and ${SYSTEM_SCHEMA} and ${notExtensionMember('pg_type', 't.oid')} order by 1`,
    ),
  ]);
  return {
    schemas: schemas.rows.map((r) => r.name),
    tables: relations.rows.filter((r) => r.kind !== 'S').map((r) => r.name),
    sequences: relations.rows.filter((r) => r.kind === 'S').map((r) => r.name),
    types: types.rows.map((r) => r.name),
  };
}

export interface InventoryDifference {
  /** Source objects missing on the target, by kind. */
  missing: Partial<Record<keyof SchemaInventory, string[]>>;
  /** How many of the source's tables, sequences and types the target already has. */
  present: number;
  expected: number;
}

export function compareInventories(source: SchemaInventory, target: SchemaInventory): InventoryDifference {
  const missing: InventoryDifference['missing'] = {};
  let present = 0;
  let expected = 0;
  for (const kind of ['schemas', 'tables', 'sequences', 'types'] as const) {
    const have = new Set(target[kind]);
    const absent = source[kind].filter((name) => !have.has(name));
    if (absent.length > 0) missing[kind] = absent;
    // Schemas such as public exist on any fresh database, so they do not count towards "started".
    if (kind !== 'schemas') {
      expected += source[kind].length;
      present += source[kind].length - absent.length;
    }
  }
  return { missing, present, expected };
}

/**
 * What pg_dump's post-data section creates, by qualified name: indexes, constraints that are not
 * part of a table's definition (keys, uniques, exclusions, foreign keys) and user triggers.
 */
export async function postDataInventory(db: pg.Pool): Promise<string[]> {
  return [...(await postDataObjects(db)).keys()];
}

/** The same objects with `<catalog oid> <object oid>`, which is how `pg_restore --list` names them. */
export async function postDataObjects(db: pg.Pool): Promise<Map<string, string>> {
  const { rows } = await db.query<{ name: string; oid: string }>(
    `select 'index ' || format('%I.%I', n.nspname, i.relname) as name, i.tableoid::int8 || ' ' || i.oid::int8 as oid
       from pg_index x join pg_class i on i.oid = x.indexrelid join pg_class c on c.oid = x.indrelid
       join pg_namespace n on n.oid = i.relnamespace
      where ${SYSTEM_SCHEMA} and ${notExtensionMember('pg_class', 'c.oid')}
     union all
     select 'constraint ' || format('%I.%I.%I', n.nspname, c.relname, con.conname), con.tableoid::int8 || ' ' || con.oid::int8
       from pg_constraint con join pg_class c on c.oid = con.conrelid join pg_namespace n on n.oid = c.relnamespace
      where con.contype in ('p', 'u', 'f', 'x') and ${SYSTEM_SCHEMA} and ${notExtensionMember('pg_class', 'c.oid')}
     union all
     select 'trigger ' || format('%I.%I.%I', n.nspname, c.relname, t.tgname), t.tableoid::int8 || ' ' || t.oid::int8
       from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
      where not t.tgisinternal and ${SYSTEM_SCHEMA} and ${notExtensionMember('pg_class', 'c.oid')}
     order by 1`,
  );
  return new Map(rows.map((r) => [r.name, r.oid]));
}
