/**
 * postgres.write-fence: after catch-up, proves that nothing was written on the source since the
 * freeze. It peeks the slot freeze-writes created once the application was frozen: every row
 * change committed since, by any role (the replication machinery writes none on the source), is in
 * it. None: the slot is dropped and the run goes on. Any: the step fails before the switch, with
 * the application still frozen, naming each table and the keys written; the slot stays, so a rerun
 * sees the same changes, and rollback (freeze-writes' undo) drops it.
 */
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type Finding, type Json, type StepContext, StepError, unable } from '../../core/step.ts';
import { pool } from '../../postgres/connections.ts';
import type { RowChange } from '../../postgres/pgoutput.ts';
import { replicationNames } from '../../postgres/replication-names.ts';
import { REPLICATION_NAME } from '../../postgres/sql.ts';
import { DEFAULT_FENCE_SLOT, dropFenceSlot, fenceSlotExists, peekFence } from '../../postgres/write-fence.ts';

const params = z
  .object({
    slot: z
      .string()
      .regex(REPLICATION_NAME, 'must be a lower-case identifier (a-z, 0-9, _; at most 63 characters)')
      .default(DEFAULT_FENCE_SLOT),
    /** The publication whose tables are watched: the replicated ones (every table, as replication-start creates it). */
    publication: replicationNames.publication,
    /** Messages read at most: enough to name the writer, bounded so a runaway one cannot stall the window. */
    maxMessages: z.number().int().positive().default(10_000),
    /** Keys listed per table in the report. */
    keysPerTable: z.number().int().positive().default(10),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { slot: string; lsn: string };

interface FencePassed {
  action: 'fence-passed';
  slot: string;
  lsn: string;
  [key: string]: Json;
}

const isFencePassed = (change: Json): change is FencePassed =>
  typeof change === 'object' &&
  change !== null &&
  !Array.isArray(change) &&
  change.action === 'fence-passed' &&
  typeof change.slot === 'string';

/** An earlier attempt proved the fence and was killed after dropping the slot. */
const passedBefore = (ctx: StepContext, p: Params) => ctx.previousChanges.filter(isFencePassed).find((c) => c.slot === p.slot);

function writtenFindings(changes: RowChange[], truncated: boolean, p: Params): Finding[] {
  const byTable = new Map<string, RowChange[]>();
  for (const change of changes) byTable.set(change.table, [...(byTable.get(change.table) ?? []), change]);
  return [...byTable].map(([table, list]) => {
    const counts = (['insert', 'update', 'delete', 'truncate'] as const)
      .map((action) => [action, list.filter((c) => c.action === action).length] as const)
      .filter(([, n]) => n > 0)
      .map(([action, n]) => `${n} ${action}`);
    const keys = [...new Set(list.filter((c) => c.key).map((c) => `${c.action} ${c.key}`))];
    const shown = keys.slice(0, p.keysPerTable).join('; ');
    const more = keys.length > p.keysPerTable ? `; and ${keys.length - p.keysPerTable} more` : '';
    return {
      severity: 'error',
      object: `table ${table}`,
      message: `written on the source since the freeze (${counts.join(', ')}${truncated ? ', at least' : ''})${shown ? `: ${shown}${more}` : ''}`,
      fix: 'find the writer (a role the freeze did not cover, a superuser, a background job, an advisory-mode bypass) and stop it; then roll back (`migrate rollback --runbook d-day`) and run D-day again — writes stay frozen meanwhile',
    };
  });
}

/** Whether an earlier attempt passed, and the slot is there to read (it blocks when neither). */
async function assess(ctx: StepContext, p: Params): Promise<{ findings: Finding[]; passed: FencePassed | undefined; exists: boolean }> {
  const passed = passedBefore(ctx, p);
  const exists = await fenceSlotExists(await pool(ctx, 'source'), p.slot);
  const findings: Finding[] =
    exists || passed
      ? []
      : [
          {
            severity: 'error',
            object: `replication slot ${p.slot} (source)`,
            message: 'the write-fence slot does not exist',
            fix: 'postgres.freeze-writes creates it (with.fence: true, the default) with the same slot name',
            awaitsEarlierStep: true,
          },
        ];
  return { findings, passed, exists };
}

export const writeFence = defineStep<Params, Result>({
  kind: 'postgres.write-fence',
  summary: 'Prove that nothing was written on the source since the freeze (else name the tables and keys)',
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    const { findings, passed, exists } = await assess(ctx, p);
    if (!exists && passed) return { state: 'done', result: { slot: passed.slot, lsn: passed.lsn } };
    if (blocks(findings)) return { state: 'blocked', findings };
    return {
      state: 'ready',
      plan: [
        `read every row change of publication ${p.publication}'s tables committed since the freeze from slot ${p.slot}; none: drop the slot; any: stop before the switch and name them`,
      ],
    };
  },

  async apply(ctx, p) {
    try {
      const source = await pool(ctx, 'source');
      const { findings, passed, exists } = await assess(ctx, p);
      if (!exists && passed) return { slot: passed.slot, lsn: passed.lsn };
      if (blocks(findings)) throw blockedBy(findings);
      const lsn = (await source.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn;
      const { changes, truncated } = await peekFence(source, p.slot, p.publication, p.maxMessages);
      if (changes.length > 0) {
        const found = writtenFindings(changes, truncated, p);
        throw new StepError(
          `${changes.length}${truncated ? '+' : ''} row change(s) in ${found.length} table(s) were written on the source after the freeze`,
          found,
        );
      }
      await ctx.record({ action: 'fence-passed', slot: p.slot, lsn } satisfies FencePassed);
      await dropFenceSlot(source, p.slot);
      ctx.log.info(`nothing written on the source since the freeze (checked up to ${lsn}); dropped slot ${p.slot}`);
      return { slot: p.slot, lsn };
    } catch (error) {
      throw unable('prove that the source was not written since the freeze', error);
    }
  },

  async check(ctx, _p, result) {
    if (!(await fenceSlotExists(await pool(ctx, 'source'), result.slot))) return [];
    return [
      {
        severity: 'error',
        object: `replication slot ${result.slot} (source)`,
        message: 'still exists after the fence passed; it holds WAL on the source',
        fix: `select pg_drop_replication_slot('${result.slot}')`,
      },
    ];
  },

  // The fence changes nothing a rollback must put back: freeze-writes' undo drops a slot left behind.
  async undo() {},
});
