/**
 * The write fence: a logical slot created on the source once the application is frozen. Every row
 * change committed after that point is decoded from it, whoever wrote it, so after catch-up a peek
 * proves the freeze held (nothing), or names what was written anyway (a role the freeze did not
 * cover, a background job, a bypass of the advisory mode). Peeking consumes nothing: a rerun sees
 * the same changes again.
 *
 * After the switch the fence keeps watching (split-brain detection): the reverse subscription's apply
 * worker writes on the source under its replication origin, and those changes are set aside; any
 * other write is reported. Such a fence advances its slot past what it proved clean, and reads
 * through its own publication once the forward one is dropped: a publication must exist in the
 * catalog as of every change decoded, so the fence's is created before the position it advances to.
 */
import type pg from 'pg';
import { escapeIdentifier } from 'pg';
import type { Json } from '../core/step.ts';
import { PgoutputDecoder, type RowChange } from './pgoutput.ts';

export const DEFAULT_FENCE_SLOT = 'migrate_fence';
/** The fence's own publication (every table), read through once the forward publication is dropped. */
export const DEFAULT_FENCE_PUBLICATION = 'migrate_fence';

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

/**
 * Decoding reads only WAL already flushed, and commits with synchronous_commit off (the subscription
 * apply worker's default, or a session's own) wait for the WAL writer: a transaction flushed now makes
 * every earlier commit readable, and the position after it bounds them.
 */
export async function flushedPosition(db: pg.Pool): Promise<string> {
  const client = await db.connect();
  try {
    await client.query('begin');
    await client.query('set local synchronous_commit = on');
    await client.query("select pg_logical_emit_message(true, 'migrate', 'write fence')");
    await client.query('commit');
    return (await client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn;
  } finally {
    client.release();
  }
}

export interface FencePeek {
  /** Every row change since the slot was created (or last advanced), in commit order, but those of `ignoreOrigins`. */
  changes: RowChange[];
  /** Changes set aside because their transaction carried one of `ignoreOrigins`. */
  ignored: number;
  /** The peek stopped at `limit` messages: there may be more. */
  truncated: boolean;
}

export interface PeekOptions {
  /** Replication origins whose changes are not the application's (the reverse subscription's `pg_<oid>`). */
  ignoreOrigins?: ReadonlySet<string>;
  /** Read at most up to this position. */
  uptoLsn?: string;
}

/** Row changes of the tables in `publication` committed since the slot was created, without consuming them. */
export async function peekFence(
  db: pg.Pool,
  slot: string,
  publication: string,
  limit: number,
  options: PeekOptions = {},
): Promise<FencePeek> {
  const { rows } = await db.query<{ data: Buffer }>(
    "select data from pg_logical_slot_peek_binary_changes($1, $4::pg_lsn, $2, 'proto_version', '1', 'publication_names', $3)",
    [slot, limit, publication, options.uptoLsn ?? null],
  );
  const decoder = new PgoutputDecoder();
  const all = rows.flatMap((r) => decoder.decode(r.data));
  const changes = all.filter((c) => !(c.origin && options.ignoreOrigins?.has(c.origin)));
  return { changes, ignored: all.length - changes.length, truncated: rows.length >= limit };
}

/**
 * Reads the slot in chunks of `chunk` messages up to `uptoLsn`, moving it past each chunk that holds
 * only ignored changes, and stops at the first chunk with any other: that one stays in the slot, so a
 * rerun reports it again. Only for a fence that is kept: what it passed is proven and not read twice.
 */
export async function drainFence(
  db: pg.Pool,
  slot: string,
  publication: string,
  chunk: number,
  uptoLsn: string,
  ignoreOrigins: ReadonlySet<string>,
): Promise<FencePeek> {
  let ignored = 0;
  let previous = '';
  for (;;) {
    const { rows } = await db.query<{ lsn: string; data: Buffer }>(
      "select lsn::text, data from pg_logical_slot_peek_binary_changes($1, $4::pg_lsn, $2, 'proto_version', '1', 'publication_names', $3)",
      [slot, chunk, publication, uptoLsn],
    );
    const decoder = new PgoutputDecoder();
    const all = rows.flatMap((r) => decoder.decode(r.data));
    const changes = all.filter((c) => !(c.origin && ignoreOrigins.has(c.origin)));
    ignored += all.length - changes.length;
    if (changes.length > 0) return { changes, ignored, truncated: rows.length >= chunk };
    // Decoding stops at transaction boundaries: the last row is a COMMIT, its LSN the end of that transaction.
    const last = rows.at(-1);
    if (!last || rows.length < chunk || last.lsn === previous) {
      await advanceFence(db, slot, uptoLsn);
      return { changes: [], ignored, truncated: false };
    }
    await advanceFence(db, slot, last.lsn);
    previous = last.lsn;
  }
}

/** Moves the slot to `lsn` (never back): what lies before was proven. */
export async function advanceFence(db: pg.Pool, slot: string, lsn: string): Promise<void> {
  await db.query(
    `select pg_replication_slot_advance(slot_name, $2::pg_lsn) from pg_replication_slots
      where slot_name = $1 and confirmed_flush_lsn < $2::pg_lsn`,
    [slot, lsn],
  );
}

export async function publicationExists(db: pg.Pool, name: string): Promise<boolean> {
  return (await db.query('select 1 from pg_publication where pubname = $1', [name])).rows.length > 0;
}

export async function createFencePublication(db: pg.Pool, name: string): Promise<void> {
  const via = (await db.query<{ n: number }>("select current_setting('server_version_num')::int as n")).rows[0]!.n >= 130000;
  await db.query(`create publication ${escapeIdentifier(name)} for all tables${via ? ' with (publish_via_partition_root = true)' : ''}`);
}

export async function dropFencePublication(db: pg.Pool, name: string): Promise<void> {
  await db.query(`drop publication if exists ${escapeIdentifier(name)}`);
}
