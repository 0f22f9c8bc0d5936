/**
 * An application database as users really have them, for the schema, ownership and privilege
 * tests: a schema and its objects owned by the app's own login role, a read-write and a read-only
 * role with table-, column- and function-level grants, default privileges, row-level security with
 * policies per role, a table owned by the app in a schema it may no longer create in, a statistics
 * object, comments, a table with REPLICA IDENTITY USING INDEX, a view and a materialized view, and
 * sequences owned and free. No foreign keys or triggers: the snapshot copy then builds every index
 * and key itself, which is what once made post-data look done.
 *
 * `capabilities` connects as each role and records what it may do: the same list on the target as
 * on the source means the app can do exactly what it could.
 */
import pg from 'pg';
import type { PostgresServer } from '../../migrate/local/postgres-server.ts';

export const APP_ROLES = ['app_owner', 'app_rw', 'app_ro'] as const;
export const APP_ROLE_PASSWORD = 'hostile-role-pw';

/** On both servers (roles are not part of a schema dump; preflight checks they exist). */
export const HOSTILE_ROLES = APP_ROLES.map((role) => `create role ${role} login password '${APP_ROLE_PASSWORD}';`).join('\n');

/** On the source, as a superuser, in the app database. */
export const HOSTILE_SCHEMA = `
grant create on database app to app_owner;
grant create on schema public to app_owner;
set role app_owner;
create schema shop;
create table shop.products (id bigserial primary key, name text not null, price numeric not null, secret_cost numeric);
create table shop.orders (id bigserial primary key, tenant text not null, product_id bigint not null, qty int not null, note text);
create index orders_tenant on shop.orders (tenant);
create table shop.ledger (tenant text not null, ref text not null, amount numeric not null);
create unique index ledger_ref on shop.ledger (tenant, ref);
alter table shop.ledger replica identity using index ledger_ref;
create sequence shop.invoice_no start 1000;
create function shop.order_value(qty int, price numeric) returns numeric language sql immutable as $$ select qty * price $$;
revoke execute on function shop.order_value(int, numeric) from public;
create view shop.order_counts as select tenant, count(*) as n from shop.orders group by tenant;
create materialized view shop.product_names as select id, name from shop.products;
alter table shop.orders enable row level security;
create policy rw_tenants on shop.orders for all to app_rw using (tenant in ('acme', 'globex')) with check (tenant in ('acme', 'globex'));
create policy ro_acme on shop.orders for select to app_ro using (tenant = 'acme');
create statistics shop.orders_tenant_product (dependencies) on tenant, product_id from shop.orders;
comment on table shop.orders is 'orders, one tenant per row';
comment on column shop.orders.note is 'free text from the customer';
comment on policy ro_acme on shop.orders is 'the read-only role sees one tenant';
comment on statistics shop.orders_tenant_product is 'tenant decides product';
create table public.app_settings (key text primary key, value text);
-- The owner took a right away from itself: the ACL is relative to the owner, and must stay so.
revoke truncate on public.app_settings from app_owner;
grant usage on schema shop to app_rw, app_ro;
grant select, insert, update, delete on shop.orders, shop.ledger to app_rw;
grant select, update (price) on shop.products to app_rw;
grant select (id, name, price) on shop.products to app_ro;
grant select on shop.orders, shop.order_counts, shop.product_names to app_ro;
grant usage, select on all sequences in schema shop to app_rw;
grant execute on function shop.order_value(int, numeric) to app_rw;
grant select on public.app_settings to app_ro;
alter default privileges in schema shop grant select on tables to app_ro;
reset role;
-- The app created its table in public and then lost the right to: owning it there must still arrive.
revoke create on schema public from app_owner;
`;

export const HOSTILE_SEED = `
insert into shop.products (name, price, secret_cost) select 'product ' || i, i * 10, i * 3 from generate_series(1, 5) i;
insert into shop.orders (tenant, product_id, qty, note)
  select (array['acme', 'globex', 'initech'])[1 + i % 3], 1 + i % 5, i, 'note ' || i from generate_series(1, 30) i;
insert into shop.ledger select (array['acme', 'globex'])[1 + i % 2], 'ref-' || i, i * 1.5 from generate_series(1, 10) i;
insert into public.app_settings values ('theme', 'dark'), ('locale', 'en');
select nextval('shop.invoice_no') from generate_series(1, 3);
refresh materialized view shop.product_names;
`;

/** What each role tries; every statement runs in its own transaction, rolled back. */
export const PROBES: Record<string, string> = {
  'select orders': 'select count(*) from shop.orders',
  'select orders of initech': "select count(*) from shop.orders where tenant = 'initech'",
  'select products': 'select count(*) from shop.products',
  'select products.secret_cost': 'select secret_cost from shop.products',
  'select products.price': 'select id, name, price from shop.products',
  'insert order for acme': "insert into shop.orders (tenant, product_id, qty) values ('acme', 1, 1)",
  'insert order for initech': "insert into shop.orders (tenant, product_id, qty) values ('initech', 1, 1)",
  'update orders': 'update shop.orders set qty = qty + 1',
  'delete orders of globex': "delete from shop.orders where tenant = 'globex'",
  'update products.price': 'update shop.products set price = price + 1',
  'update products.name': "update shop.products set name = name || '!'",
  'insert ledger': "insert into shop.ledger values ('acme', 'ref-new', 1)",
  'delete ledger': 'delete from shop.ledger',
  'nextval invoice_no': "select nextval('shop.invoice_no')",
  'nextval orders id': "select nextval('shop.orders_id_seq')",
  'call order_value': 'select shop.order_value(2, 3.5)',
  'select order_counts': 'select count(*) from shop.order_counts',
  'select app_settings': 'select count(*) from public.app_settings',
  'update app_settings': "update public.app_settings set value = 'light'",
  'truncate app_settings': 'truncate public.app_settings',
  'create table in shop': 'create table shop.scratch (x int)',
  'alter orders': 'alter table shop.orders add column extra int',
  'create policy on orders': 'create policy extra on shop.orders for select using (true)',
  'create schema': 'create schema scratch',
};

/** Per role and probe: `ok <rows>` or `denied <SQLSTATE>`. */
export async function capabilities(server: PostgresServer, database: string): Promise<Record<string, Record<string, string>>> {
  const result: Record<string, Record<string, string>> = {};
  for (const role of APP_ROLES) {
    const client = new pg.Client({ connectionString: server.url(database, role, APP_ROLE_PASSWORD) });
    client.on('error', () => {});
    await client.connect();
    result[role] = {};
    try {
      for (const [name, sql] of Object.entries(PROBES)) {
        await client.query('begin');
        try {
          const r = await client.query(sql);
          const rows = r.command === 'SELECT' && r.rows.length === 1 && 'count' in r.rows[0] ? r.rows[0].count : r.rowCount;
          result[role][name] = `ok ${rows ?? ''}`.trim();
        } catch (error) {
          result[role][name] = `denied ${(error as { code?: string }).code}`;
        }
        await client.query('rollback');
      }
    } finally {
      await client.end();
    }
  }
  return result;
}
