/**
 * Whether a pinned switch point can still be read, and if not, why: the snapshots import only while
 * the holder's transactions are open, so the answer is the import itself; the holder's process, its
 * sessions and its maximum hold say why it ended.
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import { SnapshotGoneError, SnapshotReader } from '../compare/session.ts';
import { holderRunning, holderSession, type Sessions } from './holder.ts';
import type { SwitchPoint } from './point.ts';

export type PointStatus = { importable: boolean; reasons: string[] };

async function imports(db: pg.Pool, side: 'source' | 'target', snapshot: string): Promise<string | undefined> {
  try {
    await (await SnapshotReader.open(db, { snapshot, label: side })).close();
    return undefined;
  } catch (error) {
    if (error instanceof SnapshotGoneError) return `the ${side}'s snapshot ${snapshot} no longer imports`;
    throw error;
  }
}

export async function pointStatus(pools: Sessions, point: SwitchPoint, now: number): Promise<PointStatus> {
  const gone = (
    await Promise.all([imports(pools.source, 'source', point.source.snapshot), imports(pools.target, 'target', point.target.snapshot)])
  ).filter((r): r is string => r !== undefined);
  if (gone.length === 0) return { importable: true, reasons: [] };
  return { importable: false, reasons: [...gone, ...(await whyGone(pools, point, now))] };
}

/** What became of the holder, as far as can be seen from here. */
async function whyGone(pools: Sessions, point: SwitchPoint, now: number): Promise<string[]> {
  const reasons: string[] = [];
  if (now >= point.releaseByMs)
    reasons.push(`its maximum hold ended at ${point.releaseBy} (maxHoldMinutes of the pin step), and the holder let go`);
  const ref = point.holder;
  if (ref.host !== hostname()) reasons.push(`the holder ran on ${ref.host}, not on this machine: its process cannot be checked from here`);
  else if (!holderRunning(ref))
    reasons.push(`the holder process ${ref.pid} is no longer running (released, killed, or the machine restarted)`);
  for (const side of ['source', 'target'] as const) {
    const session = await holderSession(pools[side], ref).catch(() => undefined);
    if (!session)
      reasons.push(`the holder's session on the ${side} (backend ${point[side].backendPid}) is gone (terminated, or the server restarted)`);
  }
  return reasons;
}

/** What the operator can do when the switch point can no longer be proven. */
export function decisionAdvice(point: SwitchPoint): string {
  return (
    `Decide between: (1) roll back without losing writes ` +
    `(migrate rollback --runbook d-day: reverse replication has carried the writes made on the target since the switch back to the source), ` +
    `then run D-day again; or (2) accept a proof at a later point: pause PgBouncer, wait until reverse replication has caught up, ` +
    `pin again (postgres.pin-switch-point), run postgres.verify at that pin, then resume PgBouncer. ` +
    `A later proof shows that source and target are equal at that later moment. It does not show they were equal at the switch ` +
    `(${point.pinnedAt}): a row that differed then and that the app has since updated or deleted on the target (and so, through reverse ` +
    `replication, on the source) no longer shows, and the app may have read it wrong in between.`
  );
}
