/**
 * postgres.replication-start: a publication of every table on the source and a subscription on the
 * target that copies the existing rows and then streams changes; waits for the initial copy. Each
 * object is journalled before it is created, so undo (and a resumed run) knows what this run owns;
 * an object that existed before the run is used, never dropped by undo.
 */

import { escapeIdentifier, escapeLiteral } from 'pg';
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type Finding, type Json, type StepContext, StepError, unable } from '../../core/step.ts';
import { waitFor } from '../../core/wait.ts';
import { pool, subscriptionSourceUrl } from '../../postgres/connections.ts';
import {
  dropPublication,
  dropSlot,
  dropSubscription,
  ensurePublication,
  publicationExists,
  type SubscriptionInfo,
  slotInfo,
  subscriptionInfo,
} from '../../postgres/replication.ts';
import { replicationNames } from '../../postgres/replication-names.ts';
import { serverInfo } from '../../postgres/server.ts';
import { type SyncState, syncState } from '../../postgres/sync-state.ts';

const params = z
  .object({
    ...replicationNames,
    /**
     * false: postgres.snapshot-copy has already copied every table from the snapshot of the slot named
     * like the subscription; the subscription attaches to that slot and streams from its position.
     */
    copyData: z.boolean().default(true),
    /** Wait until every table's initial copy is done (state ready). */
    waitForSync: z.boolean().default(true),
    syncDeadlineSeconds: z
      .number()
      .int()
      .positive()
      .default(6 * 3600),
    /** Binary transfer when both servers are 14+: faster, but needs identical column types on both sides. */
    binary: z.boolean().default(false),
    /** Stream large in-progress transactions instead of spilling them to disk on the source (both 14+). */
    streaming: z.boolean().default(true),
    /**
     * The subscription's synchronous_commit. 'off' (PostgreSQL's default) applies fastest; 'local'
     * flushes each applied transaction, so the subscriber confirms at once and catch-up after a
     * burst drops from about 0.3-0.8 s to 0.05-0.2 s (measured locally), at the cost of one WAL
     * flush per replicated transaction on the target.
     */
    synchronousCommit: z.enum(['off', 'local', 'remote_write', 'remote_apply', 'on']).default('off'),
    pollMs: z.number().int().positive().default(1000),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { publication: string; subscription: string; slot: string; tables: number; binary: boolean; streaming: boolean };

interface CreateChange {
  action: 'create-publication' | 'create-subscription';
  name: string;
  [key: string]: Json;
}

/** Names this run created (recorded before creating), as opposed to objects it found in place. */
function createdByRun(changes: readonly Json[], action: CreateChange['action']): Set<string> {
  return new Set((changes as readonly Partial<CreateChange>[]).filter((c) => c?.action === action && c.name).map((c) => c.name!));
}

async function options(ctx: StepContext, p: Params) {
  const [source, target] = await Promise.all([serverInfo(await pool(ctx, 'source')), serverInfo(await pool(ctx, 'target'))]);
  const both14 = source.major >= 14 && target.major >= 14;
  return {
    source,
    target,
    binary: p.binary && both14,
    streaming: p.streaming && both14,
    // Without it a partitioned table is published leaf by leaf, and the target must have the same partitions.
    viaRoot: source.major >= 13,
  };
}

async function waitForSync(ctx: StepContext, p: Params, subscriptionOid: number): Promise<SyncState> {
  const target = await pool(ctx, 'target');
  const deadline = ctx.now() + p.syncDeadlineSeconds * 1000;
  let last: SyncState | undefined;
  return waitFor(ctx, {
    label: `initial sync of subscription ${p.subscription}`,
    deadline,
    intervalMs: p.pollMs,
    poll: async () => {
      const state = await syncState(target, subscriptionOid);
      if (state.errors && last?.errors && state.errors.sync > last.errors.sync) {
        ctx.log.warn(
          `table sync failed ${state.errors.sync - last.errors.sync} more time(s); the target's server log says why (it retries)`,
        );
      }
      last = state;
      if (state.total > 0 && state.ready === state.total) return { ready: true, value: state };
      const busy = state.tables
        .filter((t) => t.state !== 'ready')
        .slice(0, 4)
        .map((t) => `${t.table} ${t.state}`);
      const bytes = state.copyingBytes ? `, ${(state.copyingBytes / 1048576).toFixed(1)} MB being copied` : '';
      return { ready: false, detail: `${busy.join(', ')}${bytes}`, done: state.ready, total: state.total };
    },
    timedOut: ({ detail }) =>
      new StepError(`initial sync not finished after ${p.syncDeadlineSeconds} s (${detail})`, [
        {
          severity: 'error',
          object: `subscription ${p.subscription}`,
          message: `${last?.ready ?? 0} of ${last?.total ?? '?'} tables ready${last?.errors?.sync ? `, ${last.errors.sync} table-sync errors` : ''}`,
          fix: 'resume the run to keep waiting (nothing is created twice); if table sync keeps failing, read the target server log (duplicate keys mean the target tables were not empty)',
        },
      ]),
  });
}

async function createSubscription(ctx: StepContext, p: Params, o: Awaited<ReturnType<typeof options>>, copy: string[]): Promise<void> {
  const settings = [
    ...copy,
    `slot_name = ${escapeLiteral(p.subscription)}`,
    `synchronous_commit = ${escapeLiteral(p.synchronousCommit)}`,
    ...(o.target.major >= 14 ? [`binary = ${o.binary}`, `streaming = ${o.streaming}`] : []),
  ];
  const conninfo = (await subscriptionSourceUrl(ctx)).reveal();
  await (await pool(ctx, 'target')).query(
    `create subscription ${escapeIdentifier(p.subscription)} connection ${escapeLiteral(conninfo)} publication ${escapeIdentifier(p.publication)} with (${settings.join(', ')})`,
  );
  ctx.log.info(`created subscription ${p.subscription} on the target (${copy[0]}, binary ${o.binary}, streaming ${o.streaming})`);
}

/** What is in place on both sides, the options both allow, and what stops replication from starting. */
async function assess(
  ctx: StepContext,
  p: Params,
): Promise<{ findings: Finding[]; published: boolean; sub: SubscriptionInfo | null; o: Awaited<ReturnType<typeof options>> }> {
  const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
  const [published, sub, o] = await Promise.all([
    publicationExists(source, p.publication),
    subscriptionInfo(target, p.subscription),
    options(ctx, p),
  ]);
  const findings: Finding[] = [];
  if (sub && !sub.publications.includes(p.publication)) {
    findings.push({
      severity: 'error',
      object: `subscription ${p.subscription}`,
      message: `exists on the target but subscribes to ${sub.publications.join(', ')}, not ${p.publication}`,
      fix: 'choose other names (with.subscription), or drop that subscription on the target if it is a leftover',
    });
  } else if (!sub && !p.copyData && !(await slotInfo(source, p.subscription))) {
    findings.push({
      severity: 'error',
      object: `slot ${p.subscription} (source)`,
      message: 'does not exist, and with copyData false the subscription attaches to it instead of copying the tables itself',
      fix: 'run postgres.snapshot-copy first (it creates the slot and copies the tables from its snapshot), or set copyData: true',
      awaitsEarlierStep: true,
    });
  }
  if (p.binary && !o.binary)
    findings.push({
      severity: 'info',
      object: 'with.binary',
      message: `binary transfer needs PostgreSQL 14+ on both sides (source ${o.source.major}, target ${o.target.major}); using text`,
    });
  return { findings, published, sub, o };
}

export const replicationStart = defineStep<Params, Result>({
  kind: 'postgres.replication-start',
  summary: 'Publish every table on the source, subscribe from the target, and wait for the initial copy',
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    const { findings, published: pub, sub, o } = await assess(ctx, p);
    if (blocks(findings)) return { state: 'blocked', findings };
    if (pub && sub) {
      const state = await syncState(await pool(ctx, 'target'), sub.oid);
      if (!p.waitForSync || (state.total > 0 && state.ready === state.total)) {
        return {
          state: 'done',
          findings,
          result: {
            publication: p.publication,
            subscription: p.subscription,
            slot: sub.slotName ?? p.subscription,
            tables: state.total,
            binary: o.binary,
            streaming: o.streaming,
          },
        };
      }
    }
    const plan = [
      pub
        ? `publication ${p.publication} exists on the source: used as it is`
        : `CREATE PUBLICATION ${p.publication} FOR ALL TABLES${o.viaRoot ? ' WITH (publish_via_partition_root = true)' : ''} on the source`,
      sub
        ? `subscription ${p.subscription} exists on the target: used as it is`
        : p.copyData
          ? `CREATE SUBSCRIPTION ${p.subscription} on the target (copy_data, slot ${p.subscription} on the source, binary ${o.binary}, streaming ${o.streaming})`
          : `CREATE SUBSCRIPTION ${p.subscription} on the target attached to the existing slot ${p.subscription} (no copy: the tables were copied from its snapshot; binary ${o.binary}, streaming ${o.streaming})`,
    ];
    if (p.waitForSync) plan.push(`wait up to ${p.syncDeadlineSeconds} s for every table's initial copy`);
    return { state: 'ready', findings, plan };
  },

  async apply(ctx, p) {
    try {
      const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
      const assessed = await assess(ctx, p);
      if (blocks(assessed.findings)) throw blockedBy(assessed.findings);
      const { o } = assessed;
      await ensurePublication(ctx, source, p.publication);
      let sub = assessed.sub;
      if (!sub && !p.copyData) {
        await ctx.record({ action: 'create-subscription', name: p.subscription, slot: p.subscription, attached: true });
        await createSubscription(ctx, p, o, ['copy_data = false', 'create_slot = false']);
        sub = (await subscriptionInfo(target, p.subscription))!;
      }
      if (!sub) {
        let existingSlot = await slotInfo(source, p.subscription);
        if (existingSlot && createdByRun(ctx.previousChanges, 'create-subscription').has(p.subscription)) {
          // An earlier attempt died between creating the slot on the source and committing the subscription.
          ctx.log.info(`dropping slot ${p.subscription} left on the source by an interrupted earlier attempt`);
          await dropSlot(ctx, source, p.subscription, ctx.now() + 30_000);
          existingSlot = null;
        }
        if (existingSlot) {
          throw new StepError(`a replication slot named ${p.subscription} already exists on the source`, [
            {
              severity: 'error',
              object: `slot ${p.subscription} (source)`,
              message: 'exists, and the subscription would create a slot of that name',
              fix: `drop it on the source (select pg_drop_replication_slot('${p.subscription}')) if it is a leftover, or choose another with.subscription`,
            },
          ]);
        }
        await ctx.record({ action: 'create-subscription', name: p.subscription, slot: p.subscription });
        await createSubscription(ctx, p, o, ['copy_data = true', 'create_slot = true']);
        sub = (await subscriptionInfo(target, p.subscription))!;
      }
      const state = p.waitForSync ? await waitForSync(ctx, p, sub.oid) : await syncState(target, sub.oid);
      return {
        publication: p.publication,
        subscription: p.subscription,
        slot: sub.slotName ?? p.subscription,
        tables: state.total,
        binary: o.binary,
        streaming: o.streaming,
      };
    } catch (error) {
      throw unable(`start replication from the source to the target (publication ${p.publication}, subscription ${p.subscription})`, error);
    }
  },

  async check(ctx, p) {
    const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
    const findings: Finding[] = [];
    if (!(await publicationExists(source, p.publication)))
      findings.push({ severity: 'error', object: `publication ${p.publication} (source)`, message: 'does not exist' });
    const sub = await subscriptionInfo(target, p.subscription);
    if (!sub) return [...findings, { severity: 'error', object: `subscription ${p.subscription} (target)`, message: 'does not exist' }];
    if (!sub.enabled)
      findings.push({
        severity: 'error',
        object: `subscription ${p.subscription} (target)`,
        message: 'is disabled',
        fix: `alter subscription ${p.subscription} enable`,
      });
    if (!(await slotInfo(source, sub.slotName ?? p.subscription)))
      findings.push({ severity: 'error', object: `slot ${sub.slotName} (source)`, message: 'does not exist' });
    if (p.waitForSync) {
      const state = await syncState(target, sub.oid);
      if (state.ready !== state.total)
        findings.push({
          severity: 'error',
          object: `subscription ${p.subscription}`,
          message: `${state.ready} of ${state.total} tables ready`,
        });
    }
    return findings;
  },

  async undo(ctx, _p, changes) {
    const subscriptions = createdByRun(changes, 'create-subscription');
    const publications = createdByRun(changes, 'create-publication');
    try {
      for (const name of subscriptions) {
        const { slotLeftBehind } = await dropSubscription(ctx, await pool(ctx, 'target'), name);
        // The drop removes the slot when it reaches the source; a slot left by a crash mid-create is dropped here.
        await dropSlot(ctx, await pool(ctx, 'source'), slotLeftBehind ?? name, ctx.now() + 30_000);
        ctx.log.info(`dropped subscription ${name} and its slot`);
      }
      for (const name of publications) {
        await dropPublication(await pool(ctx, 'source'), name);
        ctx.log.info(`dropped publication ${name}`);
      }
    } catch (error) {
      throw unable(`drop the replication objects this run created (${[...subscriptions, ...publications].join(', ')})`, error);
    }
  },
});
