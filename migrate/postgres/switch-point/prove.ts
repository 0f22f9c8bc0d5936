/**
 * The comparison at a pinned switch point: the tables through both pinned snapshots, owners and
 * privileges through the same snapshots' catalogs (aclexplode of pg_class.relacl as the snapshot
 * sees it), sequences from the positions recorded at the pin; and, while it runs, how far each
 * holder session holds vacuum back.
 */
import type { Finding, StepContext } from '../../core/step.ts';
import { type CompareOptions, compareDatabases } from '../compare/compare.ts';
import { type Sides, SnapshotGoneError, SnapshotReader } from '../compare/session.ts';
import type { PinnedProof, VerifyReport } from '../compare/types.ts';
import { privilegeDifferences } from '../schema-compare/privileges.ts';
import { holderSession, type Sessions } from './holder.ts';
import type { SwitchPoint } from './point.ts';
import { markRewritten } from './rewritten.ts';
import { sequenceFindings } from './sequences.ts';
import { pointStatus } from './status.ts';

/** The switch point can no longer be read, and why (decisionAdvice says what the operator can decide). */
export class PointLostError extends Error {
  constructor(
    point: SwitchPoint,
    readonly reasons: string[],
  ) {
    super(`the switch point pinned at ${point.pinnedAt} can no longer be proven: ${reasons.join('; ')}`);
    this.name = 'PointLostError';
  }
}

/** Samples age(backend_xmin) of the holder's sessions until stopped, keeping each side's maximum. */
function sampleXminAge(pools: Sessions, point: SwitchPoint, everyMs = 1000): { stop(): Promise<PinnedProof['xminAge']> } {
  const max: PinnedProof['xminAge'] = { source: null, target: null };
  const sample = async () => {
    for (const side of ['source', 'target'] as const) {
      const age = (await holderSession(pools[side], point.holder).catch(() => undefined))?.xminAge;
      if (age !== undefined && age !== null) max[side] = Math.max(max[side] ?? 0, age);
    }
  };
  let running = sample();
  const timer = setInterval(() => {
    running = running.then(sample);
  }, everyMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
      await sample();
      return max;
    },
  };
}

async function openPinned(pools: Sessions, point: SwitchPoint, parallelWorkers: number | undefined): Promise<Sides> {
  const [source, target] = await Promise.all([
    SnapshotReader.open(pools.source, { snapshot: point.source.snapshot, label: 'source', parallelWorkers }),
    SnapshotReader.open(pools.target, { snapshot: point.target.snapshot, label: 'target', parallelWorkers }),
  ]);
  return { source, target };
}

export type ProofAtPoint = {
  report: VerifyReport;
  privileges: Finding[];
  sequences: Finding[];
  proof: Omit<PinnedProof, 'released'>;
};

/**
 * Proves `point`, or throws PointLostError when its snapshots no longer import (before or during
 * the comparison): never a comparison of anything but that point.
 */
export async function proveAtPoint(
  ctx: Pick<StepContext, 'now' | 'log' | 'signal'>,
  pools: Sessions,
  point: SwitchPoint,
  options: CompareOptions,
): Promise<ProofAtPoint> {
  const sampler = sampleXminAge(pools, point);
  try {
    const sides = await openPinned(pools, point, options.parallelWorkers);
    const { report, privileges } = await (async () => {
      try {
        const report = await markRewritten(await compareDatabases(ctx, pools, options, sides), sides);
        const bound = (reader: SnapshotReader) => (sql: string, lockTimeoutMs: number) => reader.query(sql, [], { lockTimeoutMs });
        return { report, privileges: await privilegeDifferences(bound(sides.source), bound(sides.target)) };
      } finally {
        await Promise.all([sides.source.close(), sides.target.close()]);
      }
    })();
    const sequences = sequenceFindings(point.sequences.source, point.sequences.target);
    const xminAge = await sampler.stop();
    return {
      report,
      privileges,
      sequences,
      proof: {
        pinnedAt: point.pinnedAt,
        source: { snapshot: point.source.snapshot, lsn: point.source.lsn },
        target: { snapshot: point.target.snapshot, lsn: point.target.lsn },
        holdMs: ctx.now() - point.pinnedAtMs,
        xminAge,
      },
    };
  } catch (error) {
    await sampler.stop().catch(() => {});
    if (error instanceof SnapshotGoneError) throw new PointLostError(point, (await pointStatus(pools, point, ctx.now())).reasons);
    throw error;
  }
}
