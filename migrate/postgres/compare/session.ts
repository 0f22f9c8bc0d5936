/**
 * Read-only access to one side, every query in the same snapshot: a holder transaction exports its
 * snapshot and every later query imports it, so that counts, checksums and the narrowing that
 * follows a mismatch all see one consistent state of the database, even while queries run on
 * several connections at once. The snapshot can also be one held elsewhere (the switch point's
 * holder process): then nothing here exports, and a snapshot that can no longer be imported is a
 * SnapshotGoneError, never a silent read of the present.
 */
import type pg from 'pg';
import { escapeLiteral } from 'pg';
import { serverInfo } from '../server.ts';

/**
 * Session settings that make a value print the same on both servers and across major versions
 * (only the `text` hash method prints values, but key values are always printed).
 */
const OUTPUT_SETTINGS: Record<string, string> = {
  TimeZone: 'UTC',
  DateStyle: 'ISO, YMD',
  IntervalStyle: 'postgres',
  extra_float_digits: '3',
  bytea_output: 'hex',
  // money prints with the server's locale; the amount is what must match.
  lc_monetary: 'C',
  // A verification runs for as long as the data takes; a role default must not cut it short.
  statement_timeout: '0',
};

export interface SnapshotOptions {
  /** `max_parallel_workers_per_gather` for each query; the server's setting when absent. */
  parallelWorkers?: number;
  /** Import this exported snapshot (its exporter must still be open) instead of exporting one. */
  snapshot?: string;
  /** Which server, for errors: `source`, `target`. */
  label?: string;
}

/** The imported snapshot is no longer importable: its exporting transaction ended. */
export class SnapshotGoneError extends Error {
  constructor(
    readonly label: string,
    readonly snapshot: string,
    cause: string,
  ) {
    super(`the ${label}'s snapshot ${snapshot} can no longer be imported (${cause})`);
    this.name = 'SnapshotGoneError';
  }
}

/** PostgreSQL's answer to SET TRANSACTION SNAPSHOT once the exporter has ended. */
function isSnapshotGone(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e?.code === '22023' && /snapshot/i.test(e.message ?? '');
}

export interface QueryOptions {
  /** lock_timeout for this query: a catalog read must say it waited behind a lock rather than hang. */
  lockTimeoutMs?: number;
}

export class SnapshotReader {
  private constructor(
    private readonly pool: pg.Pool,
    /** Absent when the snapshot is held elsewhere. */
    private readonly holder: pg.PoolClient | undefined,
    readonly major: number,
    readonly snapshot: string,
    private readonly label: string,
    private readonly prelude: string,
  ) {}

  static async open(pool: pg.Pool, options: SnapshotOptions = {}): Promise<SnapshotReader> {
    const label = options.label ?? 'server';
    const settings = { ...OUTPUT_SETTINGS };
    if (options.parallelWorkers !== undefined) settings.max_parallel_workers_per_gather = String(options.parallelWorkers);
    const preludeFor = (snapshot: string) =>
      [
        'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
        `SET TRANSACTION SNAPSHOT ${escapeLiteral(snapshot)}`,
        ...Object.entries(settings).map(([name, value]) => `SET LOCAL ${name} = ${escapeLiteral(value)}`),
      ].join('; ');
    if (options.snapshot !== undefined) {
      const { major } = await serverInfo(pool);
      const reader = new SnapshotReader(pool, undefined, major, options.snapshot, label, preludeFor(options.snapshot));
      // Fail now, before any table is read, when the snapshot is already gone.
      await reader.query('SELECT 1');
      return reader;
    }
    const holder = await pool.connect();
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const snapshot: string = (await holder.query('SELECT pg_export_snapshot() AS snapshot')).rows[0].snapshot;
      const { major } = await serverInfo(holder);
      return new SnapshotReader(pool, holder, major, snapshot, label, preludeFor(snapshot));
    } catch (error) {
      await holder.query('ROLLBACK').catch(() => {});
      holder.release();
      throw error;
    }
  }

  /** Runs one read-only query inside the shared snapshot. */
  // biome-ignore lint/suspicious/noExplicitAny: the same default as pg's own query()
  async query<R extends pg.QueryResultRow = any>(sql: string, params: unknown[] = [], options: QueryOptions = {}): Promise<R[]> {
    const client = await this.pool.connect();
    try {
      try {
        await client.query(this.prelude);
      } catch (error) {
        if (isSnapshotGone(error)) throw new SnapshotGoneError(this.label, this.snapshot, (error as Error).message);
        throw error;
      }
      if (options.lockTimeoutMs !== undefined) await client.query(`SET LOCAL lock_timeout = ${Math.round(options.lockTimeoutMs)}`);
      const { rows } = await client.query<R>(sql, params);
      await client.query('COMMIT');
      client.release();
      return rows;
    } catch (error) {
      // The connection may be mid-transaction: drop it rather than hand it back to the shared pool.
      client.release(error as Error);
      throw error;
    }
  }

  async close(): Promise<void> {
    if (!this.holder) return;
    try {
      await this.holder.query('COMMIT');
      this.holder.release();
    } catch (error) {
      this.holder.release(error as Error);
    }
  }
}

/** Both sides of a comparison, each in its own snapshot. */
export interface Sides {
  source: SnapshotReader;
  target: SnapshotReader;
}
