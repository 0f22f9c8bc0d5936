/**
 * postgres.replication-health: D-day's go/no-go on the replication, before the first destructive
 * step. A subscription whose apply worker keeps failing, whose slot is inactive or which lags far
 * behind would let the freeze happen and then stop catch-up inside the write window, with the app
 * frozen. This step refuses instead, while nothing has been changed yet.
 *
 * It emits a logical message on the source (WAL only, no row changes) and requires the slot to
 * confirm it within the window: the one proof of progress that works on every version.
 */
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type StepContext, unable } from '../../core/step.ts';
import { pool } from '../../postgres/connections.ts';
import { type Health, replicationHealth } from '../../postgres/replication-health.ts';
import { replicationNames } from '../../postgres/replication-names.ts';

const params = z
  .object({
    ...replicationNames,
    /** How long to watch the subscription: longer than wal_retrieve_retry_interval (5 s) to see a failing worker restart. */
    observeSeconds: z.number().positive().default(15),
    pollMs: z.number().int().positive().default(200),
    /** The most WAL the target may be behind the source before writes are frozen. */
    maxLagBytes: z
      .number()
      .int()
      .min(0)
      .default(64 * 1024 * 1024),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { lagBytes: number | null; applyErrors: number | null; observedMs: number };

/** Watches the subscription for the observation window: its findings, and what the result reports. */
async function assess(ctx: StepContext, p: Params): Promise<{ health: Health; observedMs: number }> {
  const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
  const started = ctx.now();
  const client = await source.connect();
  let marker: string;
  try {
    // Flushed at once, so the walsender sends it without waiting for the WAL writer.
    await client.query('begin');
    await client.query('set local synchronous_commit = on');
    marker = (await client.query("select pg_logical_emit_message(true, 'migrate', $1)::text as lsn", [`go/no-go ${ctx.runId}`])).rows[0]
      .lsn;
    await client.query('commit');
  } finally {
    client.release();
  }
  const health = await replicationHealth(ctx, source, target, {
    subscription: p.subscription,
    observeMs: p.observeSeconds * 1000,
    intervalMs: p.pollMs,
    maxLagBytes: p.maxLagBytes,
    marker,
  });
  return { health, observedMs: ctx.now() - started };
}

export const replicationHealthStep = defineStep<Params, Result>({
  kind: 'postgres.replication-health',
  summary: 'Go/no-go: the subscription applies changes (no apply errors, a running worker, an active slot, lag within bounds)',
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    try {
      const { health, observedMs } = await assess(ctx, p);
      if (blocks(health.findings)) return { state: 'blocked', findings: health.findings };
      return {
        state: 'done',
        findings: health.findings,
        result: { lagBytes: health.lagBytes, applyErrors: health.applyErrors, observedMs },
      };
    } catch (error) {
      throw unable(`check the health of subscription ${p.subscription}`, error);
    }
  },

  // probe decides: it is 'done' when healthy and 'blocked' otherwise; apply is reached only if the
  // engine is told to run it anyway, and then checks again.
  async apply(ctx, p) {
    const { health, observedMs } = await assess(ctx, p);
    if (blocks(health.findings))
      throw blockedBy(
        health.findings.filter((f) => f.severity === 'error'),
        'replication is not healthy',
      );
    return { lagBytes: health.lagBytes, applyErrors: health.applyErrors, observedMs };
  },

  async check() {
    return [];
  },
});
