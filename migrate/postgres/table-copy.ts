/**
 * Copying published tables from one consistent snapshot of the source into the target, several
 * tables at a time: what a subscription's initial sync does, but in parallel, into tables that have
 * no indexes yet, and with the snapshot shared by every worker (`SET TRANSACTION SNAPSHOT`), which
 * is how pgcopydb clone outruns it.
 */
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg, { escapeIdentifier, escapeLiteral } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { Secret } from '../core/secret.ts';
import { connectionConfig } from './connections.ts';
import { buildIndexes, type IndexStatement } from './table-indexes.ts';

export interface PublishedTable {
  /** `schema.table`, quoted where needed. */
  name: string;
  partitioned: boolean;
  /** Columns the COPY carries: stored, not generated, not dropped; in the source's order. */
  columns: string[];
  /** On-disk size on the source (all partitions of a partitioned table), for ordering and progress. */
  bytes: number;
}

/**
 * The tables `publication` replicates, as the subscription would copy them: a partitioned table
 * published via its root is one table (its rows are routed into the target's partitions).
 */
export async function publishedTables(source: pg.Pool, publication: string): Promise<PublishedTable[]> {
  const { rows } = await source.query<{ name: string; partitioned: boolean; columns: string[]; bytes: string }>(
    `select format('%I.%I', pt.schemaname, pt.tablename) as name,
            c.relkind = 'p' as partitioned,
            array(select quote_ident(a.attname) from pg_attribute a
                   where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
                   order by a.attnum) as columns,
            (select coalesce(sum(pg_table_size(p.relid)), 0) from pg_partition_tree(c.oid) p)::int8 as bytes
       from pg_publication_tables pt
       join pg_namespace n on n.nspname = pt.schemaname
       join pg_class c on c.relnamespace = n.oid and c.relname = pt.tablename
      where pt.pubname = $1
      order by bytes desc, name`,
    [publication],
  );
  return rows.map((r) => ({ name: r.name, partitioned: r.partitioned, columns: r.columns, bytes: Number(r.bytes) }));
}

/** Of `tables`, those missing on the target and those already holding rows. */
export async function targetReadiness(target: pg.Pool, tables: readonly string[]): Promise<{ missing: string[]; notEmpty: string[] }> {
  const { rows } = await target.query<{ name: string }>(`select name from unnest($1::text[]) as name where to_regclass(name) is null`, [
    tables,
  ]);
  const missing = rows.map((r) => r.name);
  const present = tables.filter((t) => !missing.includes(t));
  const notEmpty: string[] = [];
  // One probe per table: `exists` reads at most one row however large the table is.
  for (const name of present) {
    const { rows: found } = await target.query(`select exists (select 1 from ${name}) as has_rows`);
    if (found[0].has_rows) notEmpty.push(name);
  }
  return { missing, notEmpty };
}

export interface CopyProgress {
  tablesDone: number;
  tablesTotal: number;
  bytes: number;
  rows: number;
  copying: string[];
  indexesBuilt: number;
}

export interface CopyResult {
  tables: number;
  rows: number;
  /** Bytes of COPY data streamed from the source to the target. */
  bytes: number;
  indexesBuilt: number;
}

/** Tables whose copy has committed, waiting for their indexes; index workers wait on it. */
class CopiedTables {
  private readonly items: string[] = [];
  private closed = false;
  private wake: (() => void)[] = [];
  push(table: string): void {
    this.items.push(table);
    for (const wake of this.wake.splice(0)) wake();
  }
  close(): void {
    this.closed = true;
    for (const wake of this.wake.splice(0)) wake();
  }
  async next(): Promise<string | undefined> {
    for (;;) {
      if (this.items.length > 0) return this.items.shift();
      if (this.closed) return undefined;
      await new Promise<void>((resolve) => this.wake.push(resolve));
    }
  }
}

/** Counts the COPY data flowing through, for progress. */
function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      onBytes(chunk.length);
      done(null, chunk);
    },
  });
}

async function connect(url: Secret, applicationName: string): Promise<pg.Client> {
  const client = new pg.Client({ ...connectionConfig(url, applicationName), connectionTimeoutMillis: 15_000 });
  // A connection dropped mid-copy surfaces through the COPY streams; an unhandled 'error' would crash the CLI.
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** The server's COPY error names neither the table nor, for an encoding error, the cause: add both. */
function copyError(table: string, error: Error & { where?: string }): Error {
  const hint = /invalid byte sequence for encoding/i.test(error.message)
    ? '; on a PostgreSQL source older than 15 a "char" column holding a byte of 128 or more prints it raw (preflight lists such columns)'
    : '';
  const wrapped = new Error(`copying table ${table}: ${error.message}${error.where ? ` (${error.where})` : ''}${hint}`);
  return Object.assign(wrapped, { code: (error as { code?: string }).code });
}

/**
 * Copies every table through `jobs` pairs of connections, largest first, all reading the exported
 * `snapshot`. Each table is emptied and filled in one transaction on the target; as soon as it has
 * committed, up to `jobs` other connections build its `indexes` while the copies go on. The first
 * failure stops every worker and is thrown; tables already committed stay, and the caller decides
 * what to do with them.
 */
export async function copyTables(options: {
  sourceUrl: Secret;
  targetUrl: Secret;
  snapshot: string;
  tables: readonly PublishedTable[];
  jobs: number;
  format: 'text' | 'binary';
  /** Per table, what to build once its copy has committed; none when absent. */
  indexes?: ReadonlyMap<string, readonly IndexStatement[]>;
  signal: AbortSignal;
  onProgress(progress: CopyProgress): void;
}): Promise<CopyResult> {
  const queue = [...options.tables];
  const copied = new CopiedTables();
  const progress: CopyProgress = { tablesDone: 0, tablesTotal: queue.length, bytes: 0, rows: 0, copying: [], indexesBuilt: 0 };
  const clients: pg.Client[] = [];
  let failure: unknown;
  // On the first failure (or an interrupt) every connection is closed, which ends the other COPYs at once.
  const stopAll = (reason: unknown) => {
    failure ??= reason;
    copied.close();
    for (const c of clients) c.end().catch(() => {});
  };
  const onAbort = () => stopAll(new Error('interrupted'));
  options.signal.addEventListener('abort', onAbort, { once: true });
  const with_ = `(format ${options.format})`;

  // Not core/pool.ts: each worker holds one source session bound to the exported snapshot across every table it copies.
  const worker = async () => {
    const source = await connect(options.sourceUrl, 'migrate-copy');
    clients.push(source);
    const target = await connect(options.targetUrl, 'migrate-copy');
    clients.push(target);
    if (failure) return;
    // A copy of a large table is one long statement; a timeout set for the app's roles must not end it.
    await source.query('set statement_timeout = 0; set idle_in_transaction_session_timeout = 0');
    await target.query('set statement_timeout = 0');
    await source.query('begin isolation level repeatable read read only');
    await source.query(`set transaction snapshot ${escapeLiteral(options.snapshot)}`);
    for (let table = queue.shift(); table && !failure; table = queue.shift()) {
      progress.copying.push(table.name);
      // A table can have no stored columns at all (and still have rows): then no column list.
      const columns = table.columns.join(', ');
      const list = columns ? ` (${columns})` : '';
      // COPY cannot read a partitioned table directly; a query over it reads every partition.
      const read = table.partitioned
        ? `copy (select ${columns || '*'} from ${table.name}) to stdout ${with_}`
        : `copy ${table.name}${list} to stdout ${with_}`;
      // Emptied in the COPY's own transaction: a table copied again (a retry) never holds rows twice,
      // and FREEZE writes the rows already frozen and all-visible, so the new database does not face
      // a vacuum of every page it was just given. A partitioned table cannot be frozen this way.
      const freeze = table.partitioned ? '' : ', freeze';
      const write = copyFrom(`copy ${table.name}${list} from stdin (format ${options.format}${freeze})`);
      await target.query('begin');
      await target.query(`truncate ${table.partitioned ? '' : 'only '}${table.name}`);
      await pipeline(
        source.query(copyTo(read)),
        counter((n) => (progress.bytes += n)),
        target.query(write),
      ).catch((error: Error & { where?: string }) => {
        throw copyError(table.name, error);
      });
      await target.query('commit');
      progress.rows += write.rowCount;
      progress.copying = progress.copying.filter((name) => name !== table.name);
      progress.tablesDone += 1;
      if (options.indexes?.get(table.name)?.length) copied.push(table.name);
      options.onProgress({ ...progress, copying: [...progress.copying] });
    }
    await source.query('commit');
  };

  // Not core/pool.ts either: these take tables from a queue the copy workers are still filling.
  const indexWorker = async () => {
    const target = await connect(options.targetUrl, 'migrate-index');
    clients.push(target);
    await target.query('set statement_timeout = 0');
    for (let table = await copied.next(); table && !failure; table = await copied.next()) {
      progress.indexesBuilt += await buildIndexes(target, options.indexes!.get(table)!);
    }
  };

  const timer = setInterval(() => options.onProgress({ ...progress, copying: [...progress.copying] }), 1000);
  try {
    const jobs = Math.max(1, Math.min(options.jobs, queue.length));
    const indexers = options.indexes?.size ? Array.from({ length: jobs }, () => indexWorker().catch(stopAll)) : [];
    await Promise.all(Array.from({ length: jobs }, () => worker().catch(stopAll)));
    copied.close();
    await Promise.all(indexers);
    if (failure) throw failure;
    return { tables: progress.tablesDone, rows: progress.rows, bytes: progress.bytes, indexesBuilt: progress.indexesBuilt };
  } finally {
    clearInterval(timer);
    options.signal.removeEventListener('abort', onAbort);
    await Promise.allSettled(clients.map((c) => c.end()));
  }
}

/**
 * A logical replication slot created on a replication connection, with its snapshot exported: the
 * snapshot is usable by other sessions only while this connection stays open and idle.
 */
export interface ExportedSlot {
  slot: string;
  consistentPoint: string;
  snapshot: string;
  close(): Promise<void>;
}

export async function createSlotExportingSnapshot(sourceUrl: Secret, slot: string): Promise<ExportedSlot> {
  const client = new pg.Client({
    ...connectionConfig(sourceUrl, 'migrate-copy'),
    replication: 'database',
    connectionTimeoutMillis: 15_000,
  } as pg.ClientConfig);
  client.on('error', () => {});
  await client.connect();
  try {
    // The pre-15 spelling, which every server from 10 to 17 accepts.
    const { rows } = await client.query(`CREATE_REPLICATION_SLOT ${escapeIdentifier(slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`);
    const row = rows[0] as { consistent_point: string; snapshot_name: string };
    return { slot, consistentPoint: row.consistent_point, snapshot: row.snapshot_name, close: () => client.end() };
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }
}
