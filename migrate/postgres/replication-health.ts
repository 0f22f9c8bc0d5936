/**
 * Is the replication healthy, i.e. will catch-up finish once writes are frozen? Shared by
 * `migrate status` (read-only, exits non-zero when not) and the `postgres.replication-health`
 * go/no-go step of D-day.
 *
 * A failing apply worker (e.g. "could not identify an equality operator for type json") exits and is
 * restarted every wal_retrieve_retry_interval, forever, while the subscription still looks enabled.
 * So the state is sampled over a short window, and these signals work from 13 to 17 and on RDS:
 * apply_error_count (15+; counted since the subscription's stats were last reset), the apply worker
 * missing from pg_stat_subscription in any sample, the slot inactive in every sample, the lag in
 * bytes, and, where the caller emitted a marker on the source, whether the slot confirms it in time.
 * The error's text is only in the target's server log, read when this role may (not on RDS).
 */
import type pg from 'pg';
import { blocks, type Finding, type StepContext } from '../core/step.ts';
import { slotInfo, subscriptionInfo } from './replication.ts';
import { syncState } from './sync-state.ts';

export interface HealthOptions {
  subscription: string;
  /** Sampling window; at least one wal_retrieve_retry_interval (5 s by default) to see a restarting worker go. */
  observeMs: number;
  intervalMs: number;
  maxLagBytes: number;
  /** A source WAL position (e.g. of a logical message emitted for this check) the slot must confirm within the window. */
  marker?: string;
}

export interface Health {
  findings: Finding[];
  /** The last replication error found in the target's server log, when it is readable. */
  logError: string | null;
  applyErrors: number | null;
  samples: number;
  workerSeen: number;
  slotActiveSeen: number;
  lagBytes: number | null;
}

function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

/** The last ERROR of a logical replication worker in the target's current log file, with its CONTEXT line. */
export async function lastReplicationError(target: pg.Pool): Promise<string | null> {
  try {
    const { rows } = await target.query<{ tail: string | null }>(
      `select case when f is null then null else pg_read_file(f, greatest(0, (pg_stat_file(f)).size - 262144), 262144) end as tail
         from pg_current_logfile() as f`,
    );
    const lines = (rows[0]?.tail ?? '').split('\n');
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i]!;
      const at = line.indexOf('ERROR:');
      if (at < 0) continue;
      const context = lines[i + 1]?.includes('CONTEXT:') ? lines[i + 1]! : '';
      if (!/logical replication|replication (origin|target)/.test(line + context)) continue;
      return `${line.slice(at).replace(/\s+/g, ' ')}${context ? ` (${context.slice(context.indexOf('CONTEXT:') + 9).trim()})` : ''}`;
    }
    return null;
  } catch {
    // Not a superuser (or pg_read_server_files), or no logging collector: the operator reads the log.
    return null;
  }
}

export async function replicationHealth(
  ctx: Pick<StepContext, 'now' | 'sleep' | 'signal'>,
  source: pg.Pool,
  target: pg.Pool,
  o: HealthOptions,
): Promise<Health> {
  const subject = `subscription ${o.subscription} (target)`;
  const health: Health = { findings: [], logError: null, applyErrors: null, samples: 0, workerSeen: 0, slotActiveSeen: 0, lagBytes: null };
  const sub = await subscriptionInfo(target, o.subscription);
  if (!sub) {
    health.findings.push({
      severity: 'error',
      object: subject,
      message: 'does not exist: nothing replicates to the target',
      fix: 'run week-prior.yaml (postgres.replication-start)',
    });
    return health;
  }
  if (!sub.enabled)
    health.findings.push({
      severity: 'error',
      object: subject,
      message: 'is disabled: changes on the source are not applied',
      fix: `find why in the target's server log, fix it, then ALTER SUBSCRIPTION ${o.subscription} ENABLE`,
    });
  const slotName = sub.slotName ?? o.subscription;
  const deadline = ctx.now() + o.observeMs;
  let confirmed: string | null = null;
  let slotMissing = false;
  for (;;) {
    const [workers, slot] = await Promise.all([
      target.query('select pid from pg_stat_subscription where subid = $1 and relid is null and pid is not null', [sub.oid]),
      slotInfo(source, slotName),
    ]);
    health.samples++;
    if (workers.rows.length > 0) health.workerSeen++;
    if (!slot) slotMissing = true;
    else {
      if (slot.active) health.slotActiveSeen++;
      health.lagBytes = slot.lagBytes;
      confirmed = slot.confirmedFlushLsn;
    }
    const markerConfirmed = !o.marker || (confirmed !== null && lsnValue(confirmed) >= lsnValue(o.marker));
    // Healthy so far and the marker is through: no need to wait out the window.
    if (ctx.now() >= deadline || ctx.signal.aborted || slotMissing) break;
    if (markerConfirmed && o.marker && health.workerSeen === health.samples && health.samples >= 2) break;
    await ctx.sleep(Math.min(o.intervalMs, Math.max(0, deadline - ctx.now())));
  }
  const sync = await syncState(target, sub.oid);
  health.applyErrors = sync.errors?.apply ?? null;

  if (slotMissing)
    health.findings.push({
      severity: 'error',
      object: `replication slot ${slotName} (source)`,
      message: 'does not exist: the subscription has nothing to stream from',
      fix: 'replication is broken: recreate it (replication-stop, then week-prior.yaml)',
    });
  if (health.applyErrors !== null && health.applyErrors > 0) {
    health.findings.push({
      severity: 'error',
      object: subject,
      message: `its apply worker has failed ${health.applyErrors} times (pg_stat_subscription_stats.apply_error_count)`,
      fix: `read the error in the target's server log and fix its cause (a table whose replica identity the target cannot match, a conflicting row, a missing column), then reset the count: select pg_stat_reset_subscription_stats(${sub.oid})`,
    });
  }
  if (sub.enabled && health.workerSeen < health.samples) {
    health.findings.push({
      severity: 'error',
      object: subject,
      message:
        health.workerSeen === 0
          ? `no apply worker is running (none in ${health.samples} samples)`
          : `its apply worker keeps exiting (missing in ${health.samples - health.workerSeen} of ${health.samples} samples)`,
      fix: "read the target's server log for the worker's error and fix its cause; check max_logical_replication_workers",
    });
  }
  if (!slotMissing && health.slotActiveSeen === 0) {
    health.findings.push({
      severity: 'error',
      object: `replication slot ${slotName} (source)`,
      message: 'is inactive: no walsender streams it to the target',
      fix: "the target is not connected: see the target's server log (network, password, apply errors)",
    });
  }
  if (health.lagBytes !== null && health.lagBytes > o.maxLagBytes) {
    health.findings.push({
      severity: 'error',
      object: `replication slot ${slotName} (source)`,
      message: `the target is ${health.lagBytes} bytes behind (bound ${o.maxLagBytes})`,
      fix: 'wait for the lag to shrink (migrate status) before freezing writes, or raise the bound',
    });
  }
  if (o.marker && !slotMissing && (confirmed === null || lsnValue(confirmed) < lsnValue(o.marker))) {
    health.findings.push({
      severity: 'error',
      object: `replication slot ${slotName} (source)`,
      message: `did not confirm ${o.marker} within ${Math.round(o.observeMs / 1000)} s (confirmed ${confirmed ?? 'nothing'}): catch-up would not finish`,
      fix: 'see the other findings and the target server log',
    });
  }
  if (blocks(health.findings)) {
    health.logError = await lastReplicationError(target);
    if (health.logError) health.findings.push({ severity: 'error', object: `${subject} server log`, message: health.logError });
  }
  return health;
}
