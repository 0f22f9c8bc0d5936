/**
 * Verification speed: the `postgres.verify` step in counts and full mode, against what other tools
 * do: `count(*)` per table on both servers (the scan limit) and `sum(hashtext(t::text))` per table
 * on both servers (pgcopydb compare data), one query at a time and with both servers at once.
 */
import type pg from 'pg';
import { listTables, type Table } from '../migrate/postgres/compare/catalog.ts';
import type { VerifyReport } from '../migrate/postgres/compare/types.ts';
import { verify } from '../migrate/steps/postgres/verify.ts';
import { withSteps } from './context.ts';
import type { Bench } from './servers.ts';
import { DATABASE } from './servers.ts';

export async function runVerify(
  bench: Bench,
  database: string,
  mode: 'counts' | 'full',
): Promise<{ seconds: number; report: VerifyReport }> {
  // Differences fail the step's check, so a run that returns compared equal data.
  return withSteps(bench, { sourceDatabase: DATABASE, targetDatabase: database }, async (steps) => {
    const { seconds, result } = await steps.run(verify, { mode });
    return { seconds, report: result };
  });
}

export async function benchTables(bench: Bench): Promise<Table[]> {
  const client = await bench.source.client(DATABASE);
  try {
    return await listTables(async (sql, params) => (await client.query(sql, params)).rows, {});
  } finally {
    await client.end();
  }
}

/** Runs `sql(table)` for every table on both servers; sides one after the other, or both at once. */
export async function perTableBaseline(
  bench: Bench,
  database: string,
  tables: Table[],
  sql: (table: Table) => string,
  sides: 'sequential' | 'concurrent',
): Promise<{ seconds: number; results: string[] }> {
  const [source, target] = await Promise.all([bench.source.client(DATABASE), bench.target.client(database)]);
  const run = async (client: pg.Client, table: Table) => JSON.stringify((await client.query(sql(table))).rows[0]);
  try {
    const started = performance.now();
    const results: string[] = [];
    for (const table of tables) {
      if (sides === 'sequential') results.push(await run(source, table), await run(target, table));
      else results.push(...(await Promise.all([run(source, table), run(target, table)])));
    }
    return { seconds: (performance.now() - started) / 1000, results };
  } finally {
    await Promise.all([source.end(), target.end()]);
  }
}

export const countSql = (t: Table) => `SELECT count(*) FROM ONLY ${t.qualified}`;
export const hashtextSql = (t: Table) => `SELECT count(*), sum(hashtext(t::text)) FROM ONLY ${t.qualified} t`;
