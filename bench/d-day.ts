/**
 * D-day's write window with the full proof, measured as the app and its users see it. Four writers
 * commit through a real PgBouncer (the legacy app's pooler), and a user resolves the app's name
 * through a DNS stand-in (TTL 1 s) and writes through a legacy app (that PgBouncer) or, once the
 * record moves, a new app behind a second PgBouncer on the target. Two ways to prove the data:
 *
 * - after-switch (the shipped default): (prepare the pin's holder) pause → freeze → catch-up →
 *   write-fence → sequences → pin → stop replication → reverse replication (no worker wait) →
 *   reload → resume; then (reverse health) verify at the pinned point while
 *   the writers write on the target. With `rollback`, the writers keep writing on the target, then
 *   the rollback: resume's undo (pause) → reload's undo (back to the source) → reverse replication's
 *   undo (the source applies everything, sequences carried back) → freeze's undo → pause's undo
 *   (resume), and every write either side took must be on the source.
 * - before-switch: verify (full) inside the window, between the fence and the sequences.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Json, StepKind } from '../migrate/core/step.ts';
import { startAppStandin } from '../migrate/local/app-standin.ts';
import { startDnsServer } from '../migrate/local/dns-standin.ts';
import { startPgbouncer } from '../migrate/local/pgbouncer.ts';
import type { ReplicationNames } from '../migrate/postgres/replication-names.ts';
import { longestUserGap, UserClient } from '../migrate/rehearse/user-client.ts';
import { longestWriteGap } from '../migrate/rehearse/workload.ts';
import { pgbouncerPause } from '../migrate/steps/pgbouncer/pause.ts';
import { pgbouncerReload } from '../migrate/steps/pgbouncer/reload.ts';
import { pgbouncerResume } from '../migrate/steps/pgbouncer/resume.ts';
import { catchUp } from '../migrate/steps/postgres/catch-up.ts';
import { freezeWrites } from '../migrate/steps/postgres/freeze-writes.ts';
import { pinSwitchPoint } from '../migrate/steps/postgres/pin-switch-point.ts';
import { prepareSwitchPoint } from '../migrate/steps/postgres/prepare-switch-point.ts';
import { replicationStop } from '../migrate/steps/postgres/replication-stop.ts';
import { reverseHealth, reverseReplication, reverseReplicationStop } from '../migrate/steps/postgres/reverse-replication.ts';
import { sequenceSync } from '../migrate/steps/postgres/sequence-sync.ts';
import { unfreeze } from '../migrate/steps/postgres/unfreeze.ts';
import { verify } from '../migrate/steps/postgres/verify.ts';
import { writeFence } from '../migrate/steps/postgres/write-fence.ts';
import { withSteps } from './context.ts';
import type { Bench } from './servers.ts';
import { APP_ROLE, withClient } from './servers.ts';
import { Writers } from './switch.ts';

export interface DdayResult {
  database: string;
  proof: 'after-switch' | 'before-switch';
  /** Longest gap between two commits of the writers, from just before the pause until after the resume. */
  windowSeconds: number;
  steps: { step: string; seconds: number }[];
  /** The proof itself: inside the window (before-switch) or after it (after-switch). */
  proofSeconds: number;
  rowsProved: number;
  differences: number;
  /** after-switch: how long the two snapshots were held, and the xmin age they pinned. */
  snapshotHoldSeconds: number | null;
  xminAge: { source: number | null; target: number | null } | null;
  /** The longest gap between a DNS-following user's successful writes, from before the pause to the end. */
  userGapSeconds: number;
  userFailed: number;
  /** The user's distinct errors (app and address), first few. */
  userErrors: string[];
  /** The user during the rollback: the new app scaled down while the user still holds its address (TTL 1 s). */
  rollbackUser: { gapSeconds: number; failed: number } | null;
  rollback: { windowSeconds: number; steps: { step: string; seconds: number }[]; writesOnTarget: number } | null;
  failedWrites: number;
  /** Writes a writer or the user saw commit that the database ending up primary does not have. */
  lostWrites: number;
  /** Of those, the user's. */
  lostUserWrites: number;
}

const LEGACY = '127.0.0.1';
const NEW = '127.0.0.2';
const APP_NAME = 'app.bench.test';

export async function measureDday(
  bench: Bench,
  options: {
    database: string;
    names: ReplicationNames;
    writers: number;
    accounts: number;
    proof: 'after-switch' | 'before-switch';
    rollback: boolean;
    warmupMs: number;
    afterMs: number;
  },
): Promise<DdayResult> {
  const { database } = options;
  const pooler = (backend: { host: string; port: number }) =>
    startPgbouncer({ database, backend, user: APP_ROLE, password: bench.password });
  const legacyPool = await pooler(bench.source);
  bench.onStop(() => legacyPool.stop());
  const newPool = await pooler(bench.target);
  bench.onStop(() => newPool.stop());
  let userN = 0;
  const userWrite = async (pool: import('pg').Pool) => {
    const n = ++userN;
    await pool.query('INSERT INTO bench_writes (writer, n) VALUES (1000, $1)', [n]);
    return n;
  };
  const legacyApp = await startAppStandin({
    name: 'legacy',
    address: LEGACY,
    port: 0,
    connectionString: legacyPool.url(),
    customers: 1,
    serving: true,
    write: userWrite,
  });
  const newApp = await startAppStandin({
    name: 'new',
    address: NEW,
    port: legacyApp.port,
    connectionString: newPool.url(),
    customers: 1,
    serving: true,
    write: userWrite,
  });
  const dns = await startDnsServer();
  dns.set(APP_NAME, 'A', [LEGACY], 1);
  const user = new UserClient({ name: APP_NAME, dnsServer: dns.address, port: legacyApp.port, thinkMs: 5, timeoutMs: 60_000 });
  const writers = new Writers(legacyPool.url());
  const steps: DdayResult['steps'] = [];
  let frozen: { previous: Json } | undefined;
  let reverseStarted = false;
  try {
    writers.start(options.writers, options.accounts);
    user.start();
    await delay(options.warmupMs);
    if (writers.commits.length === 0)
      throw new Error(`the writers committed nothing during the warm-up: ${writers.errors.slice(0, 3).join('; ')}`);
    const from = performance.now();
    const fromEpoch = Date.now();
    let proof: { seconds: number; rows: number; differences: number; hold: number | null; xmin: DdayResult['xminAge'] } | undefined;
    let rollback: DdayResult['rollback'] = null;
    // The cutover measured to here (the proof and the wait for DNS included), the rollback after it.
    let cutoverEnd: { perf: number; epoch: number } | undefined;
    await withSteps(bench, { sourceDatabase: database, pgbouncer: legacyPool }, async (run) => {
      const step = async <P, R extends Json>(kind: StepKind<P, R>, params: unknown, label = kind.kind): Promise<R> => {
        const { result, seconds } = await run.run(kind, params);
        steps.push({ step: label, seconds });
        return result;
      };
      const pgbouncer = { configFile: legacyPool.configFile };
      const verifyParams = { mode: 'full', onDifference: 'report' };
      // Before the window, as d-day's prepare-pin: the holder started and connected, idle.
      const prepared = options.proof === 'after-switch' ? (await run.run(prepareSwitchPoint, {})).result.holder : undefined;
      await step(pgbouncerPause, pgbouncer);
      frozen = await step(freezeWrites, {});
      await step(catchUp, options.names);
      await step(writeFence, { publication: options.names.publication, keepSlot: options.proof === 'after-switch' });
      if (options.proof === 'before-switch') {
        const t0 = performance.now();
        const report = await step(verify, verifyParams);
        proof = {
          seconds: (performance.now() - t0) / 1000,
          rows: report.summary.rows,
          differences: report.summary.tablesDiffering,
          hold: null,
          xmin: null,
        };
      }
      await step(sequenceSync, {});
      const pinned = options.proof === 'after-switch' ? await step(pinSwitchPoint, { prepared }) : undefined;
      await step(replicationStop, options.names);
      if (options.proof === 'after-switch') {
        reverseStarted = true;
        await step(reverseReplication, { forwardSubscription: options.names.subscription, waitForWorker: false });
      }
      const toTarget = { backend: { host: bench.target.host, port: bench.target.port }, ...pgbouncer };
      await step(pgbouncerReload, toTarget);
      await step(pgbouncerResume, pgbouncer);
      // After the window, as d-day's reverse-health: the worker the reverse step no longer waits for.
      if (options.proof === 'after-switch') await run.run(reverseHealth, {});
      // Users follow: the record moves once the new app is up, the legacy app stops once its TTL ran out.
      dns.set(APP_NAME, 'A', [NEW], 1);
      if (pinned) {
        const t0 = performance.now();
        const report = await run.run(verify, { ...verifyParams, at: pinned.switchPoint });
        const pin = report.result.switchPoint;
        proof = {
          seconds: (performance.now() - t0) / 1000,
          rows: report.result.summary.rows,
          differences: report.result.summary.tablesDiffering,
          hold: pin ? pin.holdMs / 1000 : null,
          xmin: pin?.xminAge ?? null,
        };
      }
      await delay(Math.max(options.afterMs, 2500));
      legacyApp.setServing(false);
      cutoverEnd = { perf: performance.now(), epoch: Date.now() };
      if (options.rollback && options.proof === 'after-switch') {
        // Back: users first (the legacy app up, the record moved back, the new app scaled down, as
        // the rollback's undo of scale-up does before it pauses), then the database.
        legacyApp.setServing(true);
        dns.set(APP_NAME, 'A', [LEGACY], 1);
        newApp.setServing(false);
        await newApp.drain();
        const back: { step: string; seconds: number }[] = [];
        const undo = async <P, R extends Json>(kind: StepKind<P, R>, params: unknown, result?: R) =>
          back.push({ step: `${kind.kind} undo`, seconds: await run.undo(kind, params, result) });
        const onTargetBefore = writers.commits.filter((c) => c.port === bench.target.port).length;
        const r0 = performance.now();
        await undo(pgbouncerResume, pgbouncer);
        await undo(pgbouncerReload, toTarget);
        await undo(reverseReplication, { forwardSubscription: options.names.subscription });
        reverseStarted = false;
        await undo(freezeWrites, {}, frozen as never);
        frozen = undefined;
        await undo(pgbouncerPause, pgbouncer);
        const r1 = performance.now();
        await delay(options.afterMs);
        rollback = {
          windowSeconds:
            longestWriteGap(
              writers.commits.map((c) => c.at),
              r0,
              r1 + 1,
            ).ms / 1000,
          steps: back,
          writesOnTarget: onTargetBefore,
        };
      }
    });
    await writers.stop();
    const log = await user.stop();
    const to = performance.now();
    const primary = rollback ? bench.source : bench.target;
    const committed = await withClient(primary, database, async (c) => {
      const { rows } = await c.query('SELECT writer, n FROM bench_writes');
      return new Set(rows.map((r) => `${r.writer}/${r.n}`));
    });
    const times = writers.commits.map((c) => c.at);
    const lastBefore = times.reduce((last, t) => (t <= from && t > last ? t : last), -Infinity);
    const userIds = log.filter((w) => w.ok && w.id !== undefined).map((w) => `1000/${w.id}`);
    // Whole-cutover gaps: from the last commit before the pause through the proof, to the rollback (if any).
    const gap = longestUserGap(log, fromEpoch, cutoverEnd?.epoch ?? Date.now());
    const rollbackUserGap = rollback && cutoverEnd ? longestUserGap(log, cutoverEnd.epoch, Date.now()) : undefined;
    return {
      database,
      proof: options.proof,
      windowSeconds: longestWriteGap(times, lastBefore, cutoverEnd?.perf ?? to).ms / 1000,
      steps,
      proofSeconds: proof?.seconds ?? 0,
      rowsProved: proof?.rows ?? 0,
      differences: proof?.differences ?? 0,
      snapshotHoldSeconds: proof?.hold ?? null,
      xminAge: proof?.xmin ?? null,
      userGapSeconds: gap.ms / 1000,
      userFailed: log.filter((w) => !w.ok && w.at <= (cutoverEnd?.epoch ?? Infinity)).length,
      rollbackUser: rollbackUserGap ? { gapSeconds: rollbackUserGap.ms / 1000, failed: rollbackUserGap.failures } : null,
      userErrors: [...new Set(log.filter((w) => !w.ok).map((w) => `${w.app} +${Math.round(w.at - fromEpoch)} ms: ${w.error}`))].slice(0, 5),
      rollback,
      failedWrites: writers.errors.length,
      lostWrites:
        writers.commits.filter((c) => !committed.has(`${c.writer}/${c.n}`)).length + userIds.filter((id) => !committed.has(id)).length,
      lostUserWrites: userIds.filter((id) => !committed.has(id)).length,
    };
  } finally {
    await writers.stop();
    await user.stop();
    await Promise.allSettled([legacyApp.stop(), newApp.stop(), dns.close()]);
    await Promise.allSettled([legacyPool.stop(), newPool.stop()]);
    await withSteps(bench, { sourceDatabase: database }, async (run) => {
      if (reverseStarted) await run.run(reverseReplicationStop, {});
      else await run.run(reverseReplicationStop, {}).catch(() => {});
      if (frozen) await run.run(unfreeze, { previous: frozen.previous });
    });
  }
}
