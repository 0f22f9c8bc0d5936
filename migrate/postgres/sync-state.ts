/**
 * Where the subscription's initial copy stands, table by table (pg_subscription_rel on the target),
 * with the bytes the table-sync workers have copied so far where the server reports them.
 */
import type pg from 'pg';

/** srsubstate: i = init, d = data copy, f = copy finished, s = synchronized, r = ready (streaming). */
const STATE_NAMES: Record<string, string> = { i: 'init', d: 'copying', f: 'copied', s: 'synchronized', r: 'ready' };

export interface TableSync {
  table: string;
  state: string;
}

export interface SyncState {
  tables: TableSync[];
  ready: number;
  total: number;
  /** Bytes copied by COPY operations running now (PostgreSQL 14+ on the target), else null. */
  copyingBytes: number | null;
  /** Table-sync and apply errors since the subscription was created (PostgreSQL 15+), else null. */
  errors: { sync: number; apply: number } | null;
}

export async function syncState(target: pg.Pool, subscriptionOid: number): Promise<SyncState> {
  const { rows } = await target.query<{ table: string; state: string }>(
    `select format('%I.%I', n.nspname, c.relname) as table, r.srsubstate as state
       from pg_subscription_rel r join pg_class c on c.oid = r.srrelid join pg_namespace n on n.oid = c.relnamespace
      where r.srsubid = $1 order by 1`,
    [subscriptionOid],
  );
  const tables = rows.map((r) => ({ table: r.table, state: STATE_NAMES[r.state] ?? r.state }));
  const version = Number((await target.query("select current_setting('server_version_num') as v")).rows[0].v);
  let copyingBytes: number | null = null;
  if (version >= 140000) {
    const copy = await target.query<{ bytes: string | null }>(
      `select sum(p.bytes_processed)::bigint as bytes from pg_stat_progress_copy p
         join pg_stat_activity a using (pid) where a.backend_type like 'logical replication%'`,
    );
    copyingBytes = Number(copy.rows[0]?.bytes ?? 0);
  }
  let errors: SyncState['errors'] = null;
  if (version >= 150000) {
    const stats = await target.query<{ sync: string; apply: string }>(
      'select sync_error_count as sync, apply_error_count as apply from pg_stat_subscription_stats where subid = $1',
      [subscriptionOid],
    );
    const row = stats.rows[0];
    errors = { sync: Number(row?.sync ?? 0), apply: Number(row?.apply ?? 0) };
  }
  return { tables, ready: tables.filter((t) => t.state === 'ready').length, total: tables.length, copyingBytes, errors };
}
