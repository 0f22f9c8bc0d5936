/**
 * `migrate status`: the replication state of a cutover as JSON, read-only, from both servers.
 * Each side is read independently, so a source that is down still leaves the target's view.
 */

import { redact } from '../core/secret.ts';
import { blocks, type Json, type StepContext } from '../core/step.ts';
import { pool } from './connections.ts';
import { publicationExists, slotInfo, subscriptionInfo } from './replication.ts';
import { replicationHealth } from './replication-health.ts';
import { DEFAULT_PUBLICATION, DEFAULT_SUBSCRIPTION, type ReplicationNames } from './replication-names.ts';
import { DEFAULT_REVERSE_NAME, type ReverseNames, reverseStatus } from './reverse-replication.ts';
import { syncState } from './sync-state.ts';

async function attempt<T>(read: () => Promise<T>): Promise<T | { error: string }> {
  try {
    return await read();
  } catch (error) {
    return { error: redact((error as Error).message) };
  }
}

const DEFAULT_REVERSE: ReverseNames = { publication: DEFAULT_REVERSE_NAME, slot: DEFAULT_REVERSE_NAME, subscription: DEFAULT_REVERSE_NAME };

export async function replicationStatus(
  ctx: StepContext,
  names: Partial<ReplicationNames> = {},
  reverseNames: ReverseNames = DEFAULT_REVERSE,
): Promise<Json> {
  const publication = names.publication ?? DEFAULT_PUBLICATION;
  const subscription = names.subscription ?? DEFAULT_SUBSCRIPTION;

  const target = attempt(async () => {
    const db = await pool(ctx, 'target');
    const info = await subscriptionInfo(db, subscription);
    if (!info) return { subscription, exists: false };
    const sync = await syncState(db, info.oid);
    // The apply worker is the row with no relid; table-sync workers have one.
    const { rows } = await db.query(
      `select received_lsn::text, latest_end_lsn::text,
              extract(epoch from now() - latest_end_time)::float8 as since_latest_end_s,
              extract(epoch from now() - last_msg_receipt_time)::float8 as since_last_message_s
         from pg_stat_subscription where subid = $1 and relid is null`,
      [info.oid],
    );
    const worker = rows[0];
    // Time since the subscriber last confirmed a position to the source: grows while it falls behind.
    const lagSeconds: number | null = worker ? worker.since_latest_end_s : null;
    return {
      lagSeconds,
      subscription,
      exists: true,
      enabled: info.enabled,
      slot: info.slotName,
      publications: info.publications,
      tables: { ready: sync.ready, total: sync.total, byTable: Object.fromEntries(sync.tables.map((t) => [t.table, t.state])) },
      copyingBytes: sync.copyingBytes,
      errors: sync.errors,
      applyWorker: worker
        ? {
            running: true,
            receivedLsn: worker.received_lsn,
            latestEndLsn: worker.latest_end_lsn,
            secondsSinceLatestEnd: worker.since_latest_end_s,
            secondsSinceLastMessage: worker.since_last_message_s,
          }
        : { running: false },
    };
  });

  const source = attempt(async () => {
    const db = await pool(ctx, 'source');
    const slotName = subscription;
    const slot = await slotInfo(db, slotName);
    return {
      publication,
      publicationExists: await publicationExists(db, publication),
      currentLsn: slot?.currentLsn ?? (await db.query('select pg_current_wal_lsn()::text as lsn')).rows[0].lsn,
      slot: slot
        ? {
            name: slotName,
            active: slot.active,
            confirmedFlushLsn: slot.confirmedFlushLsn,
            walStatus: slot.walStatus,
            safeWalSizeBytes: slot.safeWalSize,
            retainedBytes: slot.retainedBytes,
          }
        : null,
      lagBytes: slot?.lagBytes ?? null,
    };
  });

  // Sampled over a short window: a failing apply worker is restarted every few seconds and looks alive in a single reading.
  const health = attempt(async () => {
    const db = await pool(ctx, 'target');
    if (!(await subscriptionInfo(db, subscription))) return { healthy: true, findings: [], logError: null };
    const h = await replicationHealth(ctx, await pool(ctx, 'source'), db, {
      subscription,
      observeMs: 2500,
      intervalMs: 100,
      maxLagBytes: Number.MAX_SAFE_INTEGER,
    });
    return { healthy: !blocks(h.findings), findings: h.findings as unknown as Json, logError: h.logError };
  });

  // After the switch: the target publishing back to the source (what makes a rollback lossless).
  const reverse = attempt(async () => {
    const r = await reverseStatus(await pool(ctx, 'source'), await pool(ctx, 'target'), reverseNames);
    return { ...reverseNames, ...r };
  });

  const [targetView, sourceView, healthView, reverseView] = await Promise.all([target, source, health, reverse]);
  return {
    health:
      'error' in healthView
        ? {
            healthy: false,
            findings: [{ severity: 'error', object: 'replication health', message: `could not be checked: ${healthView.error}` }],
            logError: null,
          }
        : healthView,
    lag: {
      bytes: 'lagBytes' in sourceView ? sourceView.lagBytes : null,
      seconds: 'lagSeconds' in targetView ? targetView.lagSeconds : null,
    },
    source: sourceView,
    target: targetView,
    reverse: reverseView,
  } as Json;
}
