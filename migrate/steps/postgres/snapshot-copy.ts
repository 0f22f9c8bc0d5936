/**
 * postgres.snapshot-copy: the initial copy done pgcopydb's way instead of by the subscription. The
 * slot the subscription will use is created first, exporting its snapshot; every published table
 * is then copied from that snapshot, several at a time, into target tables that have no indexes yet
 * (schema-copy with section pre-data), and each table's indexes and keys are built as soon as its
 * copy commits, overlapping the other copies; schema-copy post-data adds the rest afterwards, and
 * replication-start with copyData: false attaches the subscription to the slot, which streams every
 * change made since the snapshot. Nothing is missed and nothing is applied twice.
 *
 * The exported snapshot lives only as long as this step's replication connection: a copy
 * interrupted by a crash cannot be continued, so a rerun drops the slot and copies every table again
 * from a new snapshot; each table is emptied in the same transaction that fills it, so the tables the
 * interrupted attempt had filled (recorded before it began, and so not refused as foreign rows) are
 * replaced, never doubled.
 */
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type Finding, type Json, type StepContext, unable } from '../../core/step.ts';
import { pool, sourceUrl, targetUrl } from '../../postgres/connections.ts';
import { dropPublication, dropSlot, ensurePublication, publicationExists, slotInfo, subscriptionInfo } from '../../postgres/replication.ts';
import { replicationNames } from '../../postgres/replication-names.ts';
import { serverInfo } from '../../postgres/server.ts';
import {
  copyTables,
  createSlotExportingSnapshot,
  type PublishedTable,
  publishedTables,
  targetReadiness,
} from '../../postgres/table-copy.ts';
import { copyTimeIndexes } from '../../postgres/table-indexes.ts';

const params = z
  .object({
    ...replicationNames,
    /** Tables copied at once (each with one connection to either server). */
    jobs: z.number().int().min(1).max(64).default(4),
    /**
     * Binary COPY: faster for numeric-heavy tables, but needs identical column types on both sides;
     * used only between servers of the same major version (the binary format is not promised to
     * carry across versions), text otherwise.
     */
    binary: z.boolean().default(false),
    /**
     * Build each plain table's indexes and primary/unique keys as soon as its copy has committed,
     * while the other tables are still copying (up to `jobs` builds at once); foreign keys,
     * triggers and the rest are left to schema-copy post-data.
     */
    buildIndexes: z.boolean().default(true),
  })
  .strict();
type Params = z.infer<typeof params>;

type Result = {
  publication: string;
  /** The slot the subscription attaches to; named like the subscription. */
  slot: string;
  /** The source WAL position of the snapshot; the subscription streams from here. */
  consistentPoint: string | null;
  tables: number;
  rows: number | null;
  bytes: number | null;
  format: 'text' | 'binary';
  /** Indexes and keys built right after their table's copy. */
  indexesBuilt: number | null;
};

interface SlotChange {
  action: 'create-slot';
  slot: string;
  /** Every table this attempt will fill: rows a rerun finds there are this run's own, replaced by the new copy. */
  tables: string[];
}
interface CopiedChange {
  action: 'copy-complete';
  result: Result;
}

const changesOf = <T extends { action: string }>(changes: readonly Json[], action: T['action']) =>
  (changes as readonly Partial<T>[]).filter((c): c is T => c?.action === action);

const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;

interface Assessment {
  state: 'done' | 'ready' | 'blocked';
  findings: Finding[];
  tables: PublishedTable[];
  format: 'text' | 'binary';
  result?: Result;
  /** Tables an interrupted attempt was filling: their rows are replaced by the new copy, not refused. */
  toEmpty: string[];
  slotExists: boolean;
}

async function assess(ctx: StepContext, p: Params): Promise<Assessment> {
  const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
  const findings: Finding[] = [];
  const slotName = p.subscription;
  const [subscription, slot, published] = await Promise.all([
    subscriptionInfo(target, p.subscription),
    slotInfo(source, slotName),
    publicationExists(source, p.publication),
  ]);
  const [sourceServer, targetServer] = await Promise.all([serverInfo(source), serverInfo(target)]);
  const format = p.binary && sourceServer.major === targetServer.major ? 'binary' : 'text';
  if (p.binary && format === 'text') {
    findings.push({
      severity: 'info',
      object: 'with.binary',
      message: `binary COPY needs the same major version on both sides (source ${sourceServer.major}, target ${targetServer.major}); copying as text`,
    });
  }
  const complete = changesOf<CopiedChange>(ctx.previousChanges, 'copy-complete').at(-1);
  const started = changesOf<SlotChange>(ctx.previousChanges, 'create-slot');
  if (subscription) {
    // The subscription attached to the slot: the copy this step made is being streamed onto.
    const result = complete?.result ?? {
      publication: p.publication,
      slot: slotName,
      consistentPoint: null,
      tables: 0,
      rows: null,
      bytes: null,
      format,
      indexesBuilt: null,
    };
    return { state: 'done', findings, tables: [], format, result, toEmpty: [], slotExists: Boolean(slot) };
  }
  if (slot && complete) return { state: 'done', findings, tables: [], format, result: complete.result, toEmpty: [], slotExists: true };
  if (slot && started.length === 0) {
    findings.push({
      severity: 'error',
      object: `slot ${slotName} (source)`,
      message: 'exists, and this run did not create it: its snapshot is gone, so the tables cannot be copied consistently with it',
      fix: `drop it on the source (select pg_drop_replication_slot('${slotName}')) if it is a leftover, or choose another with.subscription`,
    });
  }
  const toEmpty = [...new Set(started.flatMap((c) => c.tables))];
  const tables = published ? await publishedTables(source, p.publication) : [];
  if (published && tables.length === 0) {
    findings.push({
      severity: 'error',
      object: `publication ${p.publication} (source)`,
      message: 'publishes no tables',
      fix: 'drop it if it is a leftover; this step creates it FOR ALL TABLES',
    });
  }
  if (!published) {
    // Before the publication exists, the tables it will publish are every user table of the source.
    const all = await source.query<{ name: string }>(
      `select format('%I.%I', n.nspname, c.relname) as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and not c.relispartition and c.relpersistence = 'p'
          and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'`,
    );
    tables.push(...all.rows.map((r) => ({ name: r.name, partitioned: false, columns: [], bytes: 0 })));
  }
  const { missing, notEmpty } = await targetReadiness(
    target,
    tables.map((t) => t.name),
  );
  if (missing.length > 0) {
    findings.push({
      severity: 'error',
      object: `target database ${ctx.outputs.database.name}`,
      message: `lacks ${missing.length} table(s) to copy into: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`,
      fix: 'run postgres.schema-copy (section pre-data) first',
      awaitsEarlierStep: true,
    });
  }
  const foreign = notEmpty.filter((t) => !toEmpty.includes(t));
  if (foreign.length > 0) {
    findings.push({
      severity: 'error',
      object: `target database ${ctx.outputs.database.name}`,
      message: `${foreign.length} table(s) already hold rows, which the copy would duplicate: ${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ', …' : ''}`,
      fix: 'copy into an empty target: drop and recreate the target database, then run the schema copy again',
    });
  }
  const state = blocks(findings) ? 'blocked' : 'ready';
  return { state, findings, tables, format, toEmpty, slotExists: Boolean(slot) };
}

export const snapshotCopy = defineStep<Params, Result>({
  kind: 'postgres.snapshot-copy',
  summary: 'Create the replication slot exporting a snapshot and copy every published table from it, in parallel',
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    const a = await assess(ctx, p);
    if (a.state === 'done') return { state: 'done', findings: a.findings, result: a.result };
    const bytes = a.tables.reduce((sum, t) => sum + t.bytes, 0);
    const plan = [
      `CREATE PUBLICATION ${p.publication} FOR ALL TABLES on the source, unless it exists`,
      ...(a.slotExists
        ? [
            `drop slot ${p.subscription}, left by an interrupted copy, and empty the ${a.toEmpty.length} table(s) that copy was filling, each in the transaction that copies it again`,
          ]
        : []),
      `create the logical replication slot ${p.subscription} on the source, exporting its snapshot`,
      `copy ${a.tables.length} table(s)${bytes ? ` (${mb(bytes)} on the source)` : ''} from that snapshot, ${p.jobs} at a time, COPY format ${a.format}`,
      ...(p.buildIndexes
        ? [`build each table's indexes and primary/unique keys as soon as its copy has committed, ${p.jobs} at a time`]
        : []),
    ];
    return { state: a.state, findings: a.findings, plan };
  },

  async apply(ctx, p) {
    let exported: Awaited<ReturnType<typeof createSlotExportingSnapshot>> | undefined;
    try {
      const source = await pool(ctx, 'source');
      const a = await assess(ctx, p);
      if (a.state === 'done') return a.result!;
      if (a.state === 'blocked') throw blockedBy(a.findings);
      await ensurePublication(ctx, source, p.publication);
      const tables = await publishedTables(source, p.publication);
      if (a.slotExists) {
        ctx.log.info(
          `an earlier attempt of this copy was interrupted: dropping slot ${p.subscription}; the ${a.toEmpty.length} table(s) it was filling are emptied and copied again`,
        );
        await dropSlot(ctx, source, p.subscription, ctx.now() + 30_000);
      }

      await ctx.record({ action: 'create-slot', slot: p.subscription, tables: tables.map((t) => t.name) });
      exported = await createSlotExportingSnapshot(await sourceUrl(ctx), p.subscription);
      ctx.log.info(
        `created slot ${p.subscription} on the source at ${exported.consistentPoint}; copying ${tables.length} table(s) from its snapshot`,
      );
      const total = tables.reduce((sum, t) => sum + t.bytes, 0);
      const indexes = p.buildIndexes ? await copyTimeIndexes(source, tables) : undefined;
      const copied = await copyTables({
        sourceUrl: await sourceUrl(ctx),
        targetUrl: await targetUrl(ctx),
        snapshot: exported.snapshot,
        tables,
        jobs: p.jobs,
        format: a.format,
        indexes,
        signal: ctx.signal,
        onProgress: (x) =>
          ctx.log.progress({
            label: 'initial copy',
            done: x.tablesDone,
            total: x.tablesTotal,
            unit: 'tables',
            detail: `${mb(x.bytes)} streamed (source tables ${mb(total)} on disk), ${x.rows} rows, ${x.indexesBuilt} indexes built${x.copying.length ? `; copying ${x.copying.slice(0, 4).join(', ')}` : ''}`,
          }),
      });
      const result: Result = {
        publication: p.publication,
        slot: p.subscription,
        consistentPoint: exported.consistentPoint,
        ...copied,
        format: a.format,
      };
      await ctx.record({ action: 'copy-complete', result });
      ctx.log.info(
        `copied ${copied.tables} table(s), ${copied.rows} rows, ${mb(copied.bytes)}; built ${copied.indexesBuilt} indexes and keys`,
      );
      return result;
    } catch (error) {
      throw unable(`copy the tables from a snapshot of the source (slot ${p.subscription})`, error);
    } finally {
      // Closing the replication connection ends the snapshot; the slot stays and keeps the WAL since.
      await exported?.close().catch(() => {});
    }
  },

  async check(ctx, p) {
    const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
    if (await subscriptionInfo(target, p.subscription)) return [];
    const findings: Finding[] = [];
    if (!(await slotInfo(source, p.subscription)))
      findings.push({
        severity: 'error',
        object: `slot ${p.subscription} (source)`,
        message: 'does not exist: the changes since the copy would be lost',
      });
    if (!(await publicationExists(source, p.publication)))
      findings.push({ severity: 'error', object: `publication ${p.publication} (source)`, message: 'does not exist' });
    return findings;
  },

  async undo(ctx, _p, changes) {
    const slots = new Set(changesOf<SlotChange>(changes, 'create-slot').map((c) => c.slot));
    const publications = new Set(
      changesOf<{ action: 'create-publication'; name: string }>(changes, 'create-publication').map((c) => c.name),
    );
    try {
      const source = await pool(ctx, 'source');
      for (const slot of slots) {
        await dropSlot(ctx, source, slot, ctx.now() + 30_000);
        ctx.log.info(`dropped slot ${slot}`);
      }
      for (const name of publications) {
        await dropPublication(source, name);
        ctx.log.info(`dropped publication ${name}`);
      }
      const tables = new Set(changesOf<SlotChange>(changes, 'create-slot').flatMap((c) => c.tables));
      // Deleting rows is not an undo anyone should get by surprise: the copied rows stay.
      if (tables.size > 0)
        ctx.log.info(`the ${tables.size} copied table(s) keep their rows on the target; recreate the target database to copy again`);
    } catch (error) {
      throw unable(`drop the slot and publication this copy created (${[...slots, ...publications].join(', ')})`, error);
    }
  },
});
