/**
 * Read-only readings of how busy the source is right now: the rate it writes WAL at (how much
 * catch-up has to apply after the freeze), how far the subscription is behind, and the longest
 * running transaction (PgBouncer's PAUSE, and the freeze, wait for it).
 */
import type pg from 'pg';
import type { StepContext } from '../core/step.ts';
import { slotInfo, subscriptionInfo } from '../postgres/replication.ts';
import type { LongestTransaction } from './types.ts';

/** WAL bytes per second between two `pg_current_wal_lsn()` readings `intervalMs` apart (on the context's clock). */
export async function walRate(
  ctx: Pick<StepContext, 'now' | 'sleep'>,
  source: pg.Pool,
  intervalMs: number,
): Promise<{ bytesPerSecond: number; intervalMs: number }> {
  const first = (await source.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn;
  const t0 = ctx.now();
  await ctx.sleep(intervalMs);
  const { rows } = await source.query<{ bytes: string }>('select pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::text as bytes', [
    first,
  ]);
  const elapsed = Math.max(1, ctx.now() - t0);
  return { bytesPerSecond: (Number(rows[0]!.bytes) * 1000) / elapsed, intervalMs: elapsed };
}

/**
 * The oldest open transaction of a client session, other than this CLI's own (application_name
 * `migrate`). Sessions of other roles show no xact_start unless this role has pg_read_all_stats
 * (RDS's master user has it): such a reading says so rather than reporting nothing as nothing.
 */
export async function longestTransaction(source: pg.Pool): Promise<LongestTransaction | null> {
  const { rows } = await source.query<{
    pid: number;
    role: string | null;
    application: string | null;
    state: string | null;
    seconds: number;
  }>(
    `select pid, usename::text as role, nullif(application_name, '') as application, state,
            extract(epoch from clock_timestamp() - xact_start)::float8 as seconds
       from pg_stat_activity
      where xact_start is not null and pid <> pg_backend_pid()
        and backend_type = 'client backend' and application_name <> 'migrate'
      order by xact_start limit 1`,
  );
  const row = rows[0];
  return row ? { seconds: row.seconds, pid: row.pid, role: row.role, application: row.application, state: row.state } : null;
}

/** Whether the sessions of other roles are visible at all (else "no long transaction" means nothing). */
export async function seesOtherSessions(source: pg.Pool): Promise<boolean> {
  const { rows } = await source.query<{ sees: boolean }>(
    `select coalesce((select rolsuper from pg_roles where rolname = current_user), false)
            or pg_has_role(current_user, 'pg_read_all_stats', 'member') as sees`,
  );
  return rows[0]!.sees;
}

/**
 * Lag of the cutover's subscription: WAL the target has not received yet (the source's position
 * minus the apply worker's received_lsn), and seconds since the target last confirmed a position.
 * Not the slot's confirmed_flush_lsn: the subscriber confirms only every few seconds, so that lag
 * is mostly the feedback interval, not work catch-up has to do.
 */
export async function replicationLag(
  source: pg.Pool,
  target: pg.Pool,
  subscription: string,
): Promise<{ bytes: number | null; seconds: number | null } | null> {
  const info = await subscriptionInfo(target, subscription);
  if (!info) return null;
  const { rows } = await target.query<{ received: string | null; seconds: number | null }>(
    `select received_lsn::text as received, extract(epoch from now() - latest_end_time)::float8 as seconds
       from pg_stat_subscription where subid = $1 and relid is null`,
    [info.oid],
  );
  const worker = rows[0];
  if (worker?.received) {
    const lag = await source.query<{ bytes: string }>(
      'select greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn), 0)::text as bytes',
      [worker.received],
    );
    return { bytes: Number(lag.rows[0]!.bytes), seconds: worker.seconds };
  }
  const slot = await slotInfo(source, info.slotName ?? subscription);
  return { bytes: slot?.lagBytes ?? null, seconds: worker?.seconds ?? null };
}
