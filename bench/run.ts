/**
 * `npm run bench [-- --scale 50 --docs 2000000 --repeat 3 --json FILE]` (or BENCH_SCALE/BENCH_DOCS):
 * the cutover's own step kinds — schema copy and initial sync (text and binary), catch-up after a
 * write burst, verify, sequence sync, and the switch window with writers going through a real
 * PgBouncer, at two database sizes — next to pg_dump/pg_restore, pgcopydb clone, count(*) and
 * sum(hashtext(t::text)) measured in the same run on the same data. Prints a Markdown table; the
 * servers (and any PgBouncer) are removed at the end, also on failure and Ctrl-C.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { redact, registerSecret } from '../migrate/core/secret.ts';
import { type Burst, catchUpAfterBurst, dropDatabase, dumpRestore, pgcopydbClone, replicate, stopReplication } from './copy.ts';
import { measureDdays } from './d-day-table.ts';
import { prepareSequences, timeSequenceSync } from './sequences.ts';
import type { Bench } from './servers.ts';
import { createAppRole, DATABASE, loadSource, startBench } from './servers.ts';
import { measureSwitch, type SwitchResult } from './switch.ts';
import { benchTables, countSql, hashtextSql, perTableBaseline, runVerify } from './verification.ts';

const { values: flags } = parseArgs({
  options: {
    scale: { type: 'string', default: process.env.BENCH_SCALE ?? '50' },
    docs: { type: 'string', default: process.env.BENCH_DOCS ?? '2000000' },
    /** The small database the switch is also measured on: 1/25 of the main one by default. */
    'small-scale': { type: 'string' },
    'small-docs': { type: 'string' },
    sequences: { type: 'string', default: '5000' },
    repeat: { type: 'string', default: '3' },
    'burst-seconds': { type: 'string', default: '10' },
    writers: { type: 'string', default: '4' },
    /** replication-start's synchronousCommit for every subscription: week-prior.yaml's by default. */
    'synchronous-commit': { type: 'string', default: 'local' },
    json: { type: 'string' },
    /** `d-day`: only the D-day measurements (both proofs, the rollback) at both sizes. */
    only: { type: 'string' },
  },
});
const scale = Number(flags.scale);
const docs = Number(flags.docs);
const small = {
  scale: Number(flags['small-scale'] ?? Math.max(1, Math.round(scale / 25))),
  docs: Number(flags['small-docs'] ?? Math.round(docs / 25)),
};
const repeat = Number(flags.repeat);
const writers = Number(flags.writers);
const burstSeconds = Number(flags['burst-seconds']);
const synchronousCommit = flags['synchronous-commit'];

const SMALL_DATABASE = 'bench_small';
const MAIN = { publication: 'bench_pub', subscription: 'bench_sub' };
const BINARY = { publication: 'bench_pub_binary', subscription: 'bench_sub_binary' };
const SUBSCRIPTION = { publication: 'bench_pub_subscription', subscription: 'bench_sub_subscription' };
const SMALL = { publication: 'bench_pub_small', subscription: 'bench_sub_small' };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const s = (seconds: number) => `${seconds.toFixed(seconds < 1 ? 3 : 1)} s`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
const say = (message: string) => process.stderr.write(`[bench] ${message}\n`);

async function repeated<T>(times: number, fn: () => Promise<T>, seconds: (t: T) => number): Promise<{ median: number; runs: T[] }> {
  const runs: T[] = [];
  for (let i = 0; i < times; i++) runs.push(await fn());
  return { median: median(runs.map(seconds)), runs };
}

const STEP_LABELS: Record<string, string> = {
  'pgbouncer.pause': 'pause',
  'postgres.freeze-writes': 'freeze',
  'postgres.catch-up': 'catch-up',
  'postgres.sequence-sync': 'sequences',
  'postgres.replication-stop': 'stop replication',
  'pgbouncer.reload': 'reload',
  'pgbouncer.resume': 'resume',
};
const stepBreakdown = (sw: SwitchResult) => sw.steps.map((x) => `${STEP_LABELS[x.step] ?? x.step} ${s(x.seconds)}`).join(', ');

async function switchAt(bench: Bench, database: string, names: typeof MAIN, accounts: number): Promise<SwitchResult> {
  say(`switch of ${database} with ${writers} writers through PgBouncer`);
  return measureSwitch(bench, { database, names, writers, accounts, warmupMs: 3000, afterMs: 2000 });
}

async function main(bench: Bench) {
  registerSecret(bench.password);
  await Promise.all([createAppRole(bench.source, bench.password), createAppRole(bench.target, bench.password)]);

  if (flags.only === 'd-day') {
    say(`small database: pgbench -s ${small.scale} and ${small.docs} docs rows; main: pgbench -s ${scale} and ${docs} docs rows`);
    const smallMb = (await loadSource(bench, SMALL_DATABASE, small)) / 1e6;
    const mainMb = (await loadSource(bench, DATABASE, { scale, docs })) / 1e6;
    const dday = await measureDdays(
      bench,
      [
        { label: `${smallMb.toFixed(0)} MB`, database: SMALL_DATABASE, names: SMALL, accounts: small.scale * 100_000 },
        { label: `${mainMb.toFixed(0)} MB`, database: DATABASE, names: MAIN, accounts: scale * 100_000 },
      ],
      { writers, synchronousCommit, say },
    );
    console.log(dday.lines.join('\n'));
    if (flags.json) writeFileSync(flags.json, `${JSON.stringify({ date: new Date().toISOString(), dday: dday.results }, null, 2)}\n`);
    const lost = dday.results.reduce((n, r) => n + r.before.lostWrites + r.after.lostWrites, 0);
    if (lost !== 0) throw new Error(`${lost} writes a writer or the user saw commit are missing`);
    return;
  }
  if (flags.only !== undefined) throw new Error(`--only ${flags.only}: the only subset is d-day`);

  // The small database first: a short end-to-end pass that fails fast, and the switch's first size.
  say(`small database: pgbench -s ${small.scale} and ${small.docs} docs rows`);
  const smallMb = (await loadSource(bench, SMALL_DATABASE, small)) / 1e6;
  const smallSync = await replicate(bench, {
    sourceDatabase: SMALL_DATABASE,
    targetDatabase: SMALL_DATABASE,
    names: SMALL,
    method: 'snapshot',
    binary: false,
    synchronousCommit,
  });
  const smallSwitch = await switchAt(bench, SMALL_DATABASE, SMALL, small.scale * 100_000);

  say(`${flags.sequences} sequences`);
  await prepareSequences(bench, Number(flags.sequences));
  const sequences = await repeated(
    repeat,
    () => timeSequenceSync(bench),
    (r) => r.seconds,
  );

  say(`main database: pgbench -s ${scale} and ${docs} docs rows`);
  const bytes = await loadSource(bench, DATABASE, { scale, docs });
  const mb = bytes / 1e6;
  say(`source database: ${mb.toFixed(0)} MB`);

  say('pg_dump -Fd -j2 | pg_restore -j2');
  const dump = await dumpRestore(bench, 'bench_dump');
  await dropDatabase(bench, 'bench_dump');
  say('pgcopydb clone');
  const pgcopydb = await pgcopydbClone(bench, 'bench_pgcopydb');
  await dropDatabase(bench, 'bench_pgcopydb');

  say('the subscription copying the tables itself: postgres.schema-copy + postgres.replication-start');
  const subscriptionTarget = { sourceDatabase: DATABASE, targetDatabase: 'bench_subscription', names: SUBSCRIPTION };
  const syncSubscription = await replicate(bench, { ...subscriptionTarget, method: 'subscription', binary: false, synchronousCommit });
  await stopReplication(bench, subscriptionTarget);
  await dropDatabase(bench, 'bench_subscription');

  say('week-prior.yaml with binary COPY: schema pre-data, snapshot-copy, schema post-data, replication-start');
  const binaryTarget = { sourceDatabase: DATABASE, targetDatabase: 'bench_binary', names: BINARY };
  const syncBinary = await replicate(bench, { ...binaryTarget, method: 'snapshot', binary: true, synchronousCommit });
  await stopReplication(bench, binaryTarget);
  await dropDatabase(bench, 'bench_binary');

  say('week-prior.yaml as shipped (text; the target kept for the rest of the run)');
  const sync = await replicate(bench, {
    sourceDatabase: DATABASE,
    targetDatabase: DATABASE,
    names: MAIN,
    method: 'snapshot',
    binary: false,
    synchronousCommit,
  });

  say(`${repeat} write bursts of ${burstSeconds} s, each followed by postgres.catch-up`);
  const burst = await repeated(
    repeat,
    () => catchUpAfterBurst(bench, MAIN, burstSeconds),
    (b: Burst) => b.catchUpSeconds,
  );
  const burstMedian = burst.runs.find((b) => b.catchUpSeconds === burst.median)!;

  say('verification');
  const tables = await benchTables(bench);
  const verifyCounts = await repeated(
    repeat,
    () => runVerify(bench, DATABASE, 'counts'),
    (v) => v.seconds,
  );
  const rows = verifyCounts.runs[0]!.report.summary.rows;
  const verifyFull = await repeated(
    repeat,
    () => runVerify(bench, DATABASE, 'full'),
    (v) => v.seconds,
  );
  const baseline = async (sql: typeof countSql, sides: 'sequential' | 'concurrent') =>
    (
      await repeated(
        repeat,
        async () => {
          const { seconds, results } = await perTableBaseline(bench, DATABASE, tables, sql, sides);
          // Results alternate source, target: they must agree, or the comparison is of different data.
          for (let i = 0; i < results.length; i += 2)
            if (results[i] !== results[i + 1]) throw new Error(`baseline disagrees on ${tables[i / 2]!.qualified}`);
          return seconds;
        },
        (x) => x,
      )
    ).median;
  const countBoth = await baseline(countSql, 'sequential');
  const hashtextSequential = await baseline(hashtextSql, 'sequential');
  const hashtextConcurrent = await baseline(hashtextSql, 'concurrent');

  const mainSwitch = await switchAt(bench, DATABASE, MAIN, scale * 100_000);

  const phases = (r: typeof sync) => r.phases.map(([label, seconds]) => `${label} ${s(seconds)}`).join(' + ');
  const syncRow = (what: string, r: typeof sync, compared: string, against: number) =>
    `| ${what}: ${phases(r)} | ${s(r.seconds)}, ${(mb / r.seconds).toFixed(0)} MB/s | ${compared} | ${ratio(r.seconds, against)} of its time |`;
  const switchRow = (sw: SwitchResult, size: string) =>
    `| Switch window, ${size}, ${writers} writers through PgBouncer (longest gap between commits) | ${s(sw.windowSeconds)} | steps ${s(sw.stepsSeconds)}: ${stepBreakdown(sw)} | ${sw.writesOnSource} writes on the source, ${sw.writesOnTarget} on the target, ${sw.failedWrites} failed, ${sw.lostWrites} lost; longest write ${s(sw.longestWriteSeconds)} |`;
  const lines = [
    `Data: pgbench -s ${scale} + ${docs} docs rows = ${mb.toFixed(0)} MB, ${rows} rows; small database pgbench -s ${small.scale} + ${small.docs} docs rows = ${smallMb.toFixed(0)} MB; ${new Date().toISOString().slice(0, 10)}; medians of ${repeat} where repeated; subscriptions with synchronous_commit = ${synchronousCommit}.`,
    '',
    '| Measurement | Result | Compared with | Ratio |',
    '|---|---|---|---|',
    syncRow('Initial sync as week-prior.yaml runs it (text)', sync, `pgcopydb clone ${s(pgcopydb)}`, pgcopydb),
    syncRow('Same with binary COPY', syncBinary, `pgcopydb clone ${s(pgcopydb)}`, pgcopydb),
    syncRow('The subscription copying the tables itself', syncSubscription, `pgcopydb clone ${s(pgcopydb)}`, pgcopydb),
    `| pg_dump -Fd -j2, pg_restore -j2 | ${s(dump)} | pgcopydb clone ${s(pgcopydb)} | ${ratio(dump, pgcopydb)} of its time |`,
    `| postgres.catch-up after a ${burstSeconds} s write burst (${burstMedian.transactions} tx, ${(burstMedian.walBytes / 1e6).toFixed(0)} MB WAL) | ${s(burst.median)} | its wait for the slot ${(burstMedian.waitedMs / 1000).toFixed(3)} s; runs ${burst.runs.map((b) => s(b.catchUpSeconds)).join(', ')} | |`,
    `| postgres.verify, counts | ${s(verifyCounts.median)}, ${Math.round(rows / verifyCounts.median)} rows/s | count(*) per table, both servers ${s(countBoth)} | ${ratio(countBoth, verifyCounts.median)} faster |`,
    `| postgres.verify, full (counts + row checksums) | ${s(verifyFull.median)}, ${Math.round(rows / verifyFull.median)} rows/s | sum(hashtext(t::text)) per table, both servers one after the other ${s(hashtextSequential)} | ${ratio(hashtextSequential, verifyFull.median)} faster |`,
    `| | | same, both servers at once ${s(hashtextConcurrent)} | ${ratio(hashtextConcurrent, verifyFull.median)} faster |`,
    `| postgres.sequence-sync, ${sequences.runs[0]!.sequences} sequences | ${s(sequences.median)} | its apply ${(median(sequences.runs.map((r) => r.applyMs)) / 1000).toFixed(3)} s | |`,
    switchRow(smallSwitch, `${smallMb.toFixed(0)} MB`),
    switchRow(mainSwitch, `${mb.toFixed(0)} MB`),
  ];
  console.log(lines.join('\n'));
  for (const sw of [smallSwitch, mainSwitch])
    if (sw.firstErrors.length) say(`writer errors during the switch of ${sw.database}: ${sw.firstErrors.join(' | ')}`);
  if (flags.json) {
    const results = {
      date: new Date().toISOString(),
      scale,
      docs,
      bytes,
      rows,
      repeat,
      small: { ...small, bytes: smallMb * 1e6, sync: smallSync },
      dump,
      pgcopydb,
      sync,
      syncBinary,
      syncSubscription,
      burst: burst.runs,
      verifyCounts: verifyCounts.runs.map((r) => r.seconds),
      verifyFull: verifyFull.runs.map((r) => r.seconds),
      countBoth,
      hashtextSequential,
      hashtextConcurrent,
      sequences: sequences.runs,
      switch: { small: smallSwitch, main: mainSwitch },
    };
    writeFileSync(flags.json, `${JSON.stringify(results, null, 2)}\n`);
  }
  const lost = smallSwitch.lostWrites + mainSwitch.lostWrites;
  if (lost !== 0) throw new Error(`${lost} writes a writer saw commit are missing on the target`);
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
