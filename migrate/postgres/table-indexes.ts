/**
 * The indexes a table can have built as soon as its own copy has committed, while other tables are
 * still copying (pgcopydb's overlap): its plain indexes and its primary-key and unique constraints.
 * Foreign keys (which need the referenced table's key), exclusion constraints, triggers and the
 * indexes of partitioned tables wait for schema-copy's post-data section, which completes whatever
 * is still missing.
 */
import type pg from 'pg';
import type { PublishedTable } from './table-copy.ts';

export interface IndexStatement {
  /** `schema.table` as in PublishedTable. */
  table: string;
  kind: 'index' | 'constraint';
  /** Index: `schema.index`; constraint: its name on the table. */
  name: string;
  sql: string;
}

export async function copyTimeIndexes(source: pg.Pool, tables: readonly PublishedTable[]): Promise<Map<string, IndexStatement[]>> {
  const plain = tables.filter((t) => !t.partitioned).map((t) => t.name);
  const { rows } = await source.query<IndexStatement>(
    `with t as (
       select c.oid, n.nspname, format('%I.%I', n.nspname, c.relname) as name
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where format('%I.%I', n.nspname, c.relname) = any($1::text[]) and c.relkind = 'r' and not c.relispartition)
     select t.name as table, 'constraint' as kind, con.conname as name,
            format('alter table only %s add constraint %I %s', t.name, con.conname, pg_get_constraintdef(con.oid)) as sql
       from t join pg_constraint con on con.conrelid = t.oid
      where con.contype in ('p', 'u')
     union all
     select t.name, 'index', format('%I.%I', t.nspname, i.relname), pg_get_indexdef(x.indexrelid)
       from t join pg_index x on x.indrelid = t.oid join pg_class i on i.oid = x.indexrelid
      where not exists (select 1 from pg_constraint k where k.conindid = x.indexrelid and k.contype in ('p', 'u', 'x'))
      order by 1, 2, 3`,
    [plain],
  );
  const byTable = new Map<string, IndexStatement[]>();
  for (const row of rows) byTable.set(row.table, [...(byTable.get(row.table) ?? []), row]);
  return byTable;
}

/** Builds those of `statements` the target does not have yet (a retried copy finds some built); returns how many it built. */
export async function buildIndexes(target: pg.ClientBase, statements: readonly IndexStatement[]): Promise<number> {
  let built = 0;
  for (const statement of statements) {
    const { rows } =
      statement.kind === 'index'
        ? await target.query<{ present: boolean }>('select to_regclass($1) is not null as present', [statement.name])
        : await target.query<{ present: boolean }>(
            'select exists (select 1 from pg_constraint where conrelid = to_regclass($1) and conname = $2) as present',
            [statement.table, statement.name],
          );
    if (rows[0]!.present) continue;
    await target.query(statement.sql);
    built += 1;
  }
  return built;
}
