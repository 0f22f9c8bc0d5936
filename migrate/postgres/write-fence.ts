/**
 * The write fence: a logical slot created on the source once the application is frozen. Every row
 * change committed after that point is decoded from it, whoever wrote it, so after catch-up a peek
 * proves the freeze held (nothing), or names what was written anyway (a role the freeze did not
 * cover, a background job, a bypass of the advisory mode). Peeking consumes nothing: a rerun sees
 * the same changes again.
 */
import type pg from 'pg';
import type { Json } from '../core/step.ts';
import { PgoutputDecoder, type RowChange } from './pgoutput.ts';

export const DEFAULT_FENCE_SLOT = 'migrate_fence';

/** Journalled by freeze-writes before it creates the slot; undo drops it. */
export interface FenceSlotChange {
  action: 'create-fence-slot';
  slot: string;
  [key: string]: Json;
}

export function isFenceSlotChange(change: Json): change is FenceSlotChange {
  return (
    typeof change === 'object' &&
    change !== null &&
    !Array.isArray(change) &&
    change.action === 'create-fence-slot' &&
    typeof change.slot === 'string'
  );
}

export async function fenceSlotExists(db: pg.Pool, slot: string): Promise<boolean> {
  return (await db.query('select 1 from pg_replication_slots where slot_name = $1', [slot])).rows.length > 0;
}

/** Free slots on the source: the fence needs one more besides the subscription's. */
export async function freeSlots(db: pg.Pool): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    "select current_setting('max_replication_slots')::int - (select count(*) from pg_replication_slots)::int as n",
  );
  return rows[0]!.n;
}

/**
 * Creates the slot, waiting at most `timeoutMs`: a logical slot becomes consistent only when every
 * transaction already running on the server (any role, any database) has ended.
 */
export async function createFenceSlot(db: pg.Pool, slot: string, timeoutMs: number): Promise<string> {
  const client = await db.connect();
  try {
    await client.query(`set statement_timeout = ${Math.max(1, Math.round(timeoutMs))}`);
    const { rows } = await client.query<{ lsn: string }>("select lsn::text from pg_create_logical_replication_slot($1, 'pgoutput')", [
      slot,
    ]);
    return rows[0]!.lsn;
  } catch (error) {
    if ((error as { code?: string }).code !== '57014') throw error;
    const { rows } = await db.query<{ pid: number; usename: string; datname: string }>(
      'select pid, usename, datname from pg_stat_activity where backend_xid is not null and pid <> pg_backend_pid() order by pid',
    );
    const holders = rows.map((r) => `pid ${r.pid} (role ${r.usename}, database ${r.datname})`).join(', ');
    throw new Error(
      `the write-fence slot ${slot} waited ${Math.round(timeoutMs / 1000)} s for transactions already running on the source${holders ? `: ${holders}` : ''}`,
    );
  } finally {
    await client.query('reset statement_timeout').catch(() => {});
    client.release();
  }
}

export async function dropFenceSlot(db: pg.Pool, slot: string): Promise<boolean> {
  const { rows } = await db.query<{ dropped: boolean }>(
    'select pg_drop_replication_slot(slot_name) is not null as dropped from pg_replication_slots where slot_name = $1',
    [slot],
  );
  return rows.length > 0;
}

export interface FencePeek {
  /** Every row change since the slot was created, in commit order (at most `limit` messages read). */
  changes: RowChange[];
  /** The peek stopped at `limit` messages: there may be more. */
  truncated: boolean;
}

/** Row changes of the tables in `publication` committed since the slot was created, without consuming them. */
export async function peekFence(db: pg.Pool, slot: string, publication: string, limit: number): Promise<FencePeek> {
  const { rows } = await db.query<{ data: Buffer }>(
    "select data from pg_logical_slot_peek_binary_changes($1, null, $2, 'proto_version', '1', 'publication_names', $3)",
    [slot, limit, publication],
  );
  const decoder = new PgoutputDecoder();
  return { changes: rows.flatMap((r) => decoder.decode(r.data)), truncated: rows.length >= limit };
}
