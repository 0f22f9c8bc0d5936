/**
 * `npm run bench [-- --scale 50 --docs 2000000 --repeat 3 --json FILE]`: copy, catch-up,
 * verification and switch timings of the cutover on two local servers, next to pg_dump/pg_restore,
 * pgcopydb clone, count(*) and sum(hashtext(t::text)) measured in the same run on the same data.
 * Prints a Markdown table; the servers are removed at the end (also on Ctrl-C).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { redact, registerSecret } from '../migrate/core/secret.ts';
import { catchUpAfterBurst, copySchema, dropDatabase, dropSubscription, dumpRestore, logicalSync, pgcopydbClone } from './copy.ts';
import type { Bench } from './servers.ts';
import { createAppRole, loadSource, startBench } from './servers.ts';
import { measureSwitch } from './switch.ts';
import { benchTables, countSql, hashtextSql, perTableBaseline, runVerify } from './verification.ts';

const { values: flags } = parseArgs({
  options: {
    scale: { type: 'string', default: process.env.BENCH_SCALE ?? '50' },
    docs: { type: 'string', default: process.env.BENCH_DOCS ?? '2000000' },
    repeat: { type: 'string', default: '3' },
    'burst-seconds': { type: 'string', default: '10' },
    writers: { type: 'string', default: '4' },
    json: { type: 'string' },
  },
});
const scale = Number(flags.scale);
const docs = Number(flags.docs);
const repeat = Number(flags.repeat);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const s = (seconds: number) => `${seconds.toFixed(seconds < 1 ? 3 : 1)} s`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
const say = (message: string) => process.stderr.write(`[bench] ${message}\n`);

async function repeated(times: number, fn: () => Promise<number>): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < times; i++) runs.push(await fn());
  return median(runs);
}

async function main(bench: Bench) {
  registerSecret(bench.password);
  await Promise.all([createAppRole(bench.source, bench.password), createAppRole(bench.target, bench.password)]);
  say(`loading pgbench -s ${scale} and ${docs} docs rows`);
  const bytes = await loadSource(bench, { scale, docs });
  const mb = bytes / 1e6;
  say(`source database: ${mb.toFixed(0)} MB`);

  say('pg_dump -Fd -j2 | pg_restore -j2');
  const dump = await dumpRestore(bench, 'bench_dump');
  await dropDatabase(bench, 'bench_dump');
  say('pgcopydb clone');
  const pgcopydb = await pgcopydbClone(bench, 'bench_pgcopydb');
  await dropDatabase(bench, 'bench_pgcopydb');

  say('logical replication, binary = true');
  await copySchema(bench, 'bench_binary');
  const syncBinary = await logicalSync(bench, 'bench_binary', 'bench_sub_binary', { binary: true });
  await dropSubscription(bench, 'bench_binary', 'bench_sub_binary');
  await dropDatabase(bench, 'bench_binary');

  say('logical replication (the target kept for the rest of the run)');
  const schema = await copySchema(bench, 'bench');
  const sync = await logicalSync(bench, 'bench', 'bench_sub', { binary: false });

  say(`write burst of ${flags['burst-seconds']} s, then catch-up`);
  const burst = await catchUpAfterBurst(bench, 'bench', Number(flags['burst-seconds']));

  say('verification');
  const tables = await benchTables(bench);
  let rows = 0;
  const verifyCounts = await repeated(repeat, async () => {
    const { seconds, report } = await runVerify(bench, 'bench', 'counts');
    rows = report.summary.rows;
    return seconds;
  });
  const verifyFull = await repeated(repeat, async () => (await runVerify(bench, 'bench', 'full')).seconds);
  const baseline = async (sql: typeof countSql, sides: 'sequential' | 'concurrent') =>
    repeated(repeat, async () => {
      const { seconds, results } = await perTableBaseline(bench, 'bench', tables, sql, sides);
      // Results alternate source, target: they must agree, or the comparison is of different data.
      for (let i = 0; i < results.length; i += 2) if (results[i] !== results[i + 1]) throw new Error(`baseline disagrees on ${tables[i / 2]!.qualified}`);
      return seconds;
    });
  const countBoth = await baseline(countSql, 'sequential');
  const hashtextSequential = await baseline(hashtextSql, 'sequential');
  const hashtextConcurrent = await baseline(hashtextSql, 'concurrent');

  say(`switch with ${flags.writers} writers running`);
  const accounts = scale * 100_000;
  const sw = await measureSwitch(bench, 'bench', { writers: Number(flags.writers), accounts, warmupMs: 3000, afterMs: 2000 });
  if (sw.lostWrites !== 0) throw new Error(`${sw.lostWrites} writes committed on the source are missing on the target`);

  const lines = [
    `Data: pgbench -s ${scale} + ${docs} docs rows = ${mb.toFixed(0)} MB, ${rows} rows; ${new Date().toISOString().slice(0, 10)}; medians of ${repeat} where repeated.`,
    '',
    '| Measurement | Result | Compared with | Ratio |',
    '|---|---|---|---|',
    `| Initial sync, logical replication (schema copy ${s(schema)} before it) | ${s(sync)}, ${(mb / sync).toFixed(0)} MB/s | pgcopydb clone ${s(pgcopydb)} | ${ratio(sync, pgcopydb)} of pgcopydb's time |`,
    `| Initial sync, logical replication, binary = true | ${s(syncBinary)}, ${(mb / syncBinary).toFixed(0)} MB/s | pg_dump -Fd -j2, pg_restore -j2 ${s(dump)} | ${ratio(syncBinary, pgcopydb)} of pgcopydb's time; pg_dump/restore ${ratio(dump, pgcopydb)} |`,
    `| Catch-up after a ${flags['burst-seconds']} s write burst (${burst.transactions} tx, ${(burst.walBytes / 1e6).toFixed(0)} MB WAL) | ${s(burst.catchUp)} | | |`,
    `| Verify, counts (both servers) | ${s(verifyCounts)}, ${Math.round(rows / verifyCounts)} rows/s | count(*) per table, both servers ${s(countBoth)} | ${ratio(countBoth, verifyCounts)} faster |`,
    `| Verify, full (counts + row checksums) | ${s(verifyFull)}, ${Math.round(rows / verifyFull)} rows/s | sum(hashtext(t::text)) per table, both servers one after the other ${s(hashtextSequential)} | ${ratio(hashtextSequential, verifyFull)} faster |`,
    `| | | same, both servers at once ${s(hashtextConcurrent)} | ${ratio(hashtextConcurrent, verifyFull)} faster |`,
    `| Switch window, ${flags.writers} writers (first failed write → first write on the target) | ${s(sw.windowSeconds)} | freeze ${s(sw.freezeSeconds)}, catch-up ${s(sw.catchUpSeconds)}, ${sw.sequences} sequences ${s(sw.sequencesSeconds)}, first write ${s(sw.firstWriteSeconds)} | ${sw.writesBefore} writes before, ${sw.writesAfter} after, 0 lost |`,
  ];
  console.log(lines.join('\n'));
  if (flags.json) {
    const results = { date: new Date().toISOString(), scale, docs, bytes, rows, repeat, dump, pgcopydb, schema, sync, syncBinary, burst, verifyCounts, verifyFull, countBoth, hashtextSequential, hashtextConcurrent, switch: sw };
    writeFileSync(flags.json, JSON.stringify(results, null, 2) + '\n');
  }
}

const bench = await startBench();
let stopping: Promise<void> | undefined;
const stop = () => (stopping ??= bench.stop());
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: removing the servers`);
    void stop().finally(() => process.exit(130));
  });
}
try {
  await main(bench);
} catch (error) {
  process.stderr.write(`bench failed: ${redact(error instanceof Error ? error.message : String(error))}\n`);
  process.exitCode = 1;
} finally {
  await stop();
}
