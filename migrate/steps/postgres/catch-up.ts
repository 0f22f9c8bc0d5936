/**
 * postgres.catch-up: after the freeze, waits until the subscriber has confirmed (flushed) every
 * change the source wrote. The source's WAL position read now bounds every commit of the frozen
 * application; once the slot's confirmed_flush_lsn passes it, the target holds all of them.
 *
 * The subscriber confirms when the source's walsender tells it about new WAL. A transactional
 * logical message committed with synchronous_commit = on flushes the source's WAL at once, so the
 * walsender sends without waiting for the WAL writer, and the confirmation follows within a
 * round trip instead of at the next keepalive.
 */
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type Finding, type StepContext, StepError, unable } from '../../core/step.ts';
import { waitFor } from '../../core/wait.ts';
import { pool } from '../../postgres/connections.ts';
import { slotInfo, subscriptionInfo } from '../../postgres/replication.ts';
import { replicationNames } from '../../postgres/replication-names.ts';

const params = z
  .object({
    ...replicationNames,
    deadlineSeconds: z.number().positive().default(300),
    /** Short: this wait is inside the write-downtime window. */
    pollMs: z.number().int().positive().default(50),
    /** Emit a flushed logical message on the source to make the subscriber confirm promptly. */
    emitMessage: z.boolean().default(true),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { lsn: string; confirmedLsn: string; waitedMs: number };

async function sourcePosition(ctx: StepContext, p: Params): Promise<string> {
  const source = await pool(ctx, 'source');
  if (p.emitMessage) {
    const client = await source.connect();
    try {
      await client.query('begin');
      await client.query('set local synchronous_commit = on');
      await client.query("select pg_logical_emit_message(true, 'migrate', $1)", [`catch-up ${ctx.runId}`]);
      await client.query('commit');
    } finally {
      client.release();
    }
  }
  return (await source.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn;
}

/** Bytes from `from` to `to`; negative once `from` has passed `to`. */
function lsnDistance(from: string, to: string): bigint {
  const value = (lsn: string) => {
    const [hi, lo] = lsn.split('/');
    return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
  };
  return value(to) - value(from);
}

/** What stops the wait: no subscription, a disabled one, or no slot on the source. */
async function assess(ctx: StepContext, p: Params): Promise<Finding[]> {
  const sub = await subscriptionInfo(await pool(ctx, 'target'), p.subscription);
  if (!sub)
    return [
      {
        severity: 'error',
        object: `subscription ${p.subscription} (target)`,
        message: 'does not exist',
        fix: 'run postgres.replication-start first',
      },
    ];
  const findings: Finding[] = [];
  if (!sub.enabled)
    findings.push({
      severity: 'error',
      object: `subscription ${p.subscription} (target)`,
      message: 'is disabled, so it will not catch up',
      fix: `alter subscription ${p.subscription} enable`,
    });
  if (!(await slotInfo(await pool(ctx, 'source'), sub.slotName ?? p.subscription))) {
    findings.push({
      severity: 'error',
      object: `slot ${sub.slotName ?? p.subscription} (source)`,
      message: 'does not exist',
      fix: 'replication is broken: recreate it (replication-stop, then replication-start)',
    });
  }
  return findings;
}

export const catchUp = defineStep<Params, Result>({
  kind: 'postgres.catch-up',
  summary: "Wait until the target has confirmed the source's WAL position after the freeze",
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    const findings = await assess(ctx, p);
    if (blocks(findings)) return { state: 'blocked', findings };
    return {
      state: 'ready',
      plan: [
        `read the source WAL position${p.emitMessage ? ' (after a flushed logical message)' : ''} and wait up to ${p.deadlineSeconds} s for slot ${p.subscription} to confirm it`,
      ],
    };
  },

  async apply(ctx, p) {
    try {
      const findings = await assess(ctx, p);
      if (blocks(findings)) throw blockedBy(findings);
      const source = await pool(ctx, 'source');
      const started = ctx.now();
      const lsn = await sourcePosition(ctx, p);
      const confirmedLsn = await waitFor(ctx, {
        label: 'catch-up lag',
        deadline: started + p.deadlineSeconds * 1000,
        intervalMs: p.pollMs,
        poll: async () => {
          const slot = await slotInfo(source, p.subscription);
          const confirmed = slot?.confirmedFlushLsn;
          if (!confirmed) throw new Error(`slot ${p.subscription} disappeared from the source`);
          const lag = lsnDistance(confirmed, lsn);
          if (lag <= 0n) return { ready: true, value: confirmed };
          return { ready: false, detail: `${lag} bytes behind ${lsn} (confirmed ${confirmed}${slot.active ? '' : ', slot inactive'})` };
        },
        timedOut: ({ detail }) =>
          new StepError(`the target did not catch up within ${p.deadlineSeconds} s: ${detail}`, [
            {
              severity: 'error',
              object: `subscription ${p.subscription}`,
              message: detail,
              fix: 'check `migrate status` (apply errors, inactive slot) and the target server log, then resume; writes stay frozen meanwhile',
            },
          ]),
      });
      const waitedMs = ctx.now() - started;
      ctx.log.info(`target confirmed ${confirmedLsn} >= source ${lsn} after ${waitedMs} ms`);
      return { lsn, confirmedLsn, waitedMs };
    } catch (error) {
      throw unable('wait for the target to catch up with the source', error);
    }
  },

  async check(ctx, p, result) {
    const slot = await slotInfo(await pool(ctx, 'source'), p.subscription);
    if (slot?.confirmedFlushLsn && lsnDistance(slot.confirmedFlushLsn, result.lsn) <= 0n) return [];
    return [
      {
        severity: 'error',
        object: `slot ${p.subscription} (source)`,
        message: `confirmed ${slot?.confirmedFlushLsn ?? 'nothing'}, expected at least ${result.lsn}`,
      },
    ];
  },
});
