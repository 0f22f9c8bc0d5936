/**
 * The publication (source), subscription (target) and replication slot (source) of the cutover:
 * reading their state and dropping them. Creating them is replication-start's business; dropping
 * is shared by its undo and by replication-stop.
 */
import type pg from 'pg';
import { escapeIdentifier } from 'pg';
import type { StepContext } from '../core/step.ts';
import { waitFor } from '../core/wait.ts';
import { serverInfo } from './server.ts';

export interface SubscriptionInfo {
  oid: number;
  enabled: boolean;
  /** null after `SET (slot_name = NONE)`. */
  slotName: string | null;
  publications: string[];
}

export async function subscriptionInfo(target: pg.Pool, name: string): Promise<SubscriptionInfo | null> {
  // pg_subscription is readable by superusers only on some versions; pg_stat_subscription is not enough.
  const { rows } = await target.query<{ oid: number; subenabled: boolean; subslotname: string | null; subpublications: string[] }>(
    `select oid::int as oid, subenabled, subslotname, subpublications from pg_subscription
      where subname = $1 and subdbid = (select oid from pg_database where datname = current_database())`,
    [name],
  );
  const row = rows[0];
  return row ? { oid: row.oid, enabled: row.subenabled, slotName: row.subslotname, publications: row.subpublications } : null;
}

export async function publicationExists(source: pg.Pool, name: string): Promise<boolean> {
  const { rows } = await source.query('select 1 from pg_publication where pubname = $1', [name]);
  return rows.length > 0;
}

export interface SlotInfo {
  active: boolean;
  activePid: number | null;
  confirmedFlushLsn: string | null;
  /** null on PostgreSQL < 13. */
  walStatus: string | null;
  safeWalSize: number | null;
  /** WAL the slot holds back on the source, in bytes. */
  retainedBytes: number;
  /** Source's current WAL position minus confirmed_flush_lsn. */
  lagBytes: number | null;
  currentLsn: string;
}

export async function slotInfo(source: pg.Pool, slot: string): Promise<SlotInfo | null> {
  const { rows } = await source.query('select current_setting($1)::int >= 130000 as has_wal_status', ['server_version_num']);
  const walColumns = rows[0].has_wal_status ? 'wal_status, safe_wal_size' : 'null::text as wal_status, null::bigint as safe_wal_size';
  const result = await source.query(
    `select active, active_pid, confirmed_flush_lsn::text, ${walColumns}, pg_current_wal_lsn()::text as current_lsn,
            pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint as retained,
            pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint as lag
       from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  const row = result.rows[0];
  if (!row) return null;
  const num = (v: string | null) => (v === null ? null : Number(v));
  return {
    active: row.active,
    activePid: row.active_pid,
    confirmedFlushLsn: row.confirmed_flush_lsn,
    walStatus: row.wal_status,
    safeWalSize: num(row.safe_wal_size),
    retainedBytes: num(row.retained) ?? 0,
    lagBytes: num(row.lag),
    currentLsn: row.current_lsn,
  };
}

/** Errors that mean the target could not reach the source while dropping a subscription. */
function publisherUnreachable(error: unknown): boolean {
  return /could not connect to (the )?publisher/i.test(String((error as Error)?.message ?? error));
}

/**
 * Drops the subscription and, through it, its slot on the source. When the source cannot be reached
 * the slot is detached first so the drop succeeds; the caller learns that the slot was left behind.
 */
export async function dropSubscription(
  ctx: StepContext,
  target: pg.Pool,
  name: string,
): Promise<{ dropped: boolean; slotLeftBehind: string | null }> {
  const info = await subscriptionInfo(target, name);
  if (!info) return { dropped: false, slotLeftBehind: null };
  try {
    await target.query(`drop subscription if exists ${escapeIdentifier(name)}`);
    return { dropped: true, slotLeftBehind: null };
  } catch (error) {
    if (!publisherUnreachable(error)) throw error;
    ctx.log.warn(
      `the target cannot reach the source to drop slot ${info.slotName}; detaching it from subscription ${name} and dropping the subscription`,
    );
    await target.query(`alter subscription ${escapeIdentifier(name)} disable`);
    await target.query(`alter subscription ${escapeIdentifier(name)} set (slot_name = none)`);
    await target.query(`drop subscription if exists ${escapeIdentifier(name)}`);
    return { dropped: true, slotLeftBehind: info.slotName };
  }
}

/** Drops a slot left on the source, waiting (up to `deadline`) for its walsender to let go of it. */
export async function dropSlot(ctx: StepContext, source: pg.Pool, slot: string, deadline: number): Promise<void> {
  await waitFor(ctx, {
    label: `dropping replication slot ${slot} on the source`,
    deadline,
    intervalMs: 100,
    poll: async () => {
      const { rows } = await source.query<{ active: boolean }>('select active from pg_replication_slots where slot_name = $1', [slot]);
      if (rows.length === 0) return { ready: true, value: undefined };
      if (rows[0]!.active) return { ready: false, detail: 'slot still in use by a walsender' };
      await source.query('select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active', [
        slot,
      ]);
      return { ready: false, detail: 'dropped; confirming' };
    },
    timedOut: () =>
      new Error(
        `replication slot ${slot} on the source is still in use; find its walsender with ` +
          `select active_pid from pg_replication_slots where slot_name = '${slot}', terminate it, then select pg_drop_replication_slot('${slot}')`,
      ),
  });
}

export async function dropPublication(source: pg.Pool, name: string): Promise<void> {
  await source.query(`drop publication if exists ${escapeIdentifier(name)}`);
}

/**
 * The publication of every table, created unless it exists (an existing one is used as it is). The
 * change is recorded before the CREATE, so an undo after a crash knows the publication is this run's.
 */
export async function ensurePublication(ctx: StepContext, source: pg.Pool, name: string): Promise<void> {
  if (await publicationExists(source, name)) return;
  await ctx.record({ action: 'create-publication', name });
  // Without publish_via_partition_root a partitioned table is published leaf by leaf, and the
  // target must have the same partitions.
  const via = (await serverInfo(source)).major >= 13 ? ' with (publish_via_partition_root = true)' : '';
  await source.query(`create publication ${escapeIdentifier(name)} for all tables${via}`);
  ctx.log.info(`created publication ${name} on the source`);
}
