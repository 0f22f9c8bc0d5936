/**
 * A timed sample of the post-switch proof on these servers: the checksum `postgres.verify` computes
 * (the same row hash, the same snapshot session settings, both sides at once), over at most
 * `sampleRows` rows of the largest table. Read-only. The first rows of a table are the likeliest to
 * be cached, so the rate is an optimistic one; the model's tolerance says so.
 */
import type pg from 'pg';
import { listTables, poolQuery } from '../postgres/compare/catalog.ts';
import { fromClause } from '../postgres/compare/queries.ts';
import { columnExpression, hashMethodFor, rowHash } from '../postgres/compare/row-hash.ts';
import { SnapshotReader } from '../postgres/compare/session.ts';
import type { TableSize, VerifyRate } from './types.ts';

export async function sampleVerifyRate(
  pools: { source: pg.Pool; target: pg.Pool },
  largest: TableSize,
  sampleRows: number,
  now: () => number = Date.now,
): Promise<VerifyRate> {
  const { schema, name } = largest;
  const [sourceTables, targetTables] = await Promise.all([
    listTables(poolQuery(pools.source), { schemas: [schema] }),
    listTables(poolQuery(pools.target), { schemas: [schema] }),
  ]);
  const source = sourceTables.find((t) => t.name === name);
  if (!source) throw new Error(`table ${largest.table} is gone from the source`);
  const target = targetTables.find((t) => t.name === name);
  const [sourceReader, targetReader] = await Promise.all([SnapshotReader.open(pools.source), SnapshotReader.open(pools.target)]);
  try {
    const method = hashMethodFor(sourceReader.major, targetReader.major);
    const targetColumns = new Map(target?.columns.map((c) => [c.name, c]));
    const hash = rowHash(
      source.columns.map((c) => columnExpression(c, targetColumns.get(c.name), method)),
      method,
    );
    const limit = Math.max(1, Math.trunc(sampleRows));
    const sample = (reader: SnapshotReader, from: string) =>
      reader.query<{ n: string }>(
        `SELECT count(*) AS n, coalesce(sum(h), 0)::text AS sum FROM (SELECT ${hash} AS h FROM ${from} LIMIT ${limit}) s`,
      );
    const started = now();
    // Before the copy the target may not have the table yet: the source side alone is still the rate of one side.
    const [rows] = await Promise.all([
      sample(sourceReader, fromClause(source)),
      target ? sample(targetReader, fromClause(target)) : Promise.resolve([]),
    ]);
    const durationMs = Math.max(1, now() - started);
    const sampled = Number(rows[0]!.n);
    const bytesPerRow = largest.rows > 0 ? largest.bytes / largest.rows : null;
    const bytes = bytesPerRow === null ? null : Math.round(sampled * bytesPerRow);
    return {
      table: largest.table,
      rows: sampled,
      bytes,
      durationMs,
      rowsPerSecond: (sampled * 1000) / durationMs,
      bytesPerSecond: bytes === null ? null : (bytes * 1000) / durationMs,
    };
  } finally {
    await Promise.all([sourceReader.close(), targetReader.close()]);
  }
}
