/**
 * Read-only access to one side, every query in the same snapshot: a holder transaction exports its
 * snapshot and every later query imports it, so that counts, checksums and the narrowing that
 * follows a mismatch all see one consistent state of the database, even while queries run on
 * several connections at once.
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
}

export class SnapshotReader {
  private constructor(
    private readonly pool: pg.Pool,
    private readonly holder: pg.PoolClient,
    readonly major: number,
    private readonly prelude: string,
  ) {}

  static async open(pool: pg.Pool, options: SnapshotOptions = {}): Promise<SnapshotReader> {
    const holder = await pool.connect();
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const snapshot: string = (await holder.query('SELECT pg_export_snapshot() AS snapshot')).rows[0].snapshot;
      const { major } = await serverInfo(holder);
      const settings = { ...OUTPUT_SETTINGS };
      if (options.parallelWorkers !== undefined) settings.max_parallel_workers_per_gather = String(options.parallelWorkers);
      const prelude = [
        'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
        `SET TRANSACTION SNAPSHOT ${escapeLiteral(snapshot)}`,
        ...Object.entries(settings).map(([name, value]) => `SET LOCAL ${name} = ${escapeLiteral(value)}`),
      ].join('; ');
      return new SnapshotReader(pool, holder, major, prelude);
    } catch (error) {
      await holder.query('ROLLBACK').catch(() => {});
      holder.release();
      throw error;
    }
  }

  /** Runs one read-only query inside the shared snapshot. */
  // biome-ignore lint/suspicious/noExplicitAny: the same default as pg's own query()
  async query<R extends pg.QueryResultRow = any>(sql: string, params: unknown[] = []): Promise<R[]> {
    const client = await this.pool.connect();
    try {
      await client.query(this.prelude);
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
