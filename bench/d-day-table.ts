/**
 * D-day with the full proof at two database sizes, each measured both ways on freshly replicated
 * data: the proof inside the window (before-switch) and pinned to the switch point after writes
 * resume (after-switch, the default), followed by a rollback with the writers writing on the target.
 */
import { replicate } from './copy.ts';
import { type DdayResult, measureDday } from './d-day.ts';
import type { Bench } from './servers.ts';
import { withClient } from './servers.ts';

export interface DdaySize {
  label: string;
  database: string;
  names: { publication: string; subscription: string };
  accounts: number;
}

const s = (seconds: number) => `${seconds.toFixed(seconds < 1 ? 3 : 1)} s`;

export async function measureDdays(
  bench: Bench,
  sizes: DdaySize[],
  options: { writers: number; synchronousCommit: string; say: (message: string) => void },
): Promise<{ lines: string[]; results: { size: string; before: DdayResult; after: DdayResult }[] }> {
  const results: { size: string; before: DdayResult; after: DdayResult }[] = [];
  for (const size of sizes) {
    const measure = async (proof: DdayResult['proof']) => {
      options.say(`d-day of ${size.database} (${size.label}), proof ${proof}: replicating afresh`);
      await withClient(bench.target, 'postgres', (c) => c.query(`DROP DATABASE IF EXISTS ${size.database} WITH (FORCE)`));
      // Each measurement's writers number their writes from 0 again.
      await withClient(bench.source, size.database, (c) => c.query('TRUNCATE bench_writes'));
      await replicate(bench, {
        sourceDatabase: size.database,
        targetDatabase: size.database,
        names: size.names,
        method: 'snapshot',
        binary: false,
        synchronousCommit: options.synchronousCommit,
      });
      options.say(`d-day of ${size.database}, proof ${proof}, ${options.writers} writers and a DNS-following user`);
      return measureDday(bench, {
        database: size.database,
        names: size.names,
        writers: options.writers,
        accounts: size.accounts,
        proof,
        rollback: proof === 'after-switch',
        warmupMs: 3000,
        afterMs: 2000,
      });
    };
    const before = await measure('before-switch');
    const after = await measure('after-switch');
    results.push({ size: size.label, before, after });
  }
  const window = (r: DdayResult) => r.steps.slice(0, r.steps.findIndex((x) => x.step === 'pgbouncer.resume') + 1);
  const breakdown = (r: DdayResult) =>
    window(r)
      .map((x) => `${x.step.replace(/^(postgres|pgbouncer)\./, '')} ${s(x.seconds)}`)
      .join(', ');
  const lines = [
    '',
    '| D-day with the full proof | size | write window (writers) | longest gap a DNS-following user saw | the proof | failed / lost | steps in the window |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const { size, before, after } of results) {
    lines.push(
      `| proof after the switch, pinned (default) | ${size} | **${s(after.windowSeconds)}** | ${s(after.userGapSeconds)} (${after.userFailed} failed) | ${s(after.proofSeconds)} after writes resumed, ${after.rowsProved} rows, ${after.differences} differing; snapshots held ${after.snapshotHoldSeconds === null ? '?' : s(after.snapshotHoldSeconds)}, xmin age ${after.xminAge?.source ?? '?'} / ${after.xminAge?.target ?? '?'} tx | ${after.failedWrites} / ${after.lostWrites} | ${breakdown(after)} |`,
      `| proof inside the window | ${size} | ${s(before.windowSeconds)} | ${s(before.userGapSeconds)} (${before.userFailed} failed) | ${s(before.proofSeconds)} inside the window, ${before.rowsProved} rows | ${before.failedWrites} / ${before.lostWrites} | ${breakdown(before)} |`,
    );
    if (after.rollback)
      lines.push(
        `| rollback after the switch (${after.rollback.writesOnTarget} writes made on the target) | ${size} | **${s(after.rollback.windowSeconds)}** | ${after.rollbackUser ? `${s(after.rollbackUser.gapSeconds)} (${after.rollbackUser.failed} failed: the new app scaled down while the user still held its address)` : ''} | | every write on the source: ${after.lostWrites} lost (${after.lostUserWrites} of the user's) | ${after.rollback.steps.map((x) => `${x.step.replace(/^(postgres|pgbouncer)\./, '')} ${s(x.seconds)}`).join(', ')} |`,
      );
  }
  for (const { size, after, before } of results)
    for (const [label, r] of [
      ['after', after],
      ['before', before],
    ] as const)
      if (r.userErrors.length) lines.push(`user errors (${size}, proof ${label}): ${r.userErrors.join(' | ')}`);
  if (results.length === 2) {
    const [a, b] = results.map((r) => r.after.windowSeconds);
    lines.push('', `Window ratio between the sizes, proof after the switch: ${(b! / a!).toFixed(2)} (${s(a!)} → ${s(b!)}).`);
  }
  return { lines, results };
}
