/**
 * postgres.write-fence: after catch-up, proves that nothing was written on the source since the
 * freeze. It peeks the slot freeze-writes created once the application was frozen: every row
 * change committed since, by any role (the replication machinery writes none on the source), is in
 * it. None: the slot is dropped and the run goes on. Any: the step fails before the switch, with
 * the application still frozen, naming each table and the keys written; the slot stays, so a rerun
 * sees the same changes, and rollback (freeze-writes' undo) drops it.
 *
 * keepSlot (default false, so a runbook that does not plan for it keeps today's behaviour): the slot
 * stays after a pass, so the fence holds for the rest of D-day (split-brain detection): D-day runs
 * this step inside the window and again at its end, both with keepSlot. A kept fence moves its slot
 * past what it proved, creates its own publication (every table) so it can still read once
 * replication-stop drops the forward one, and sets aside the changes the reverse subscription
 * (postgres.reverse-replication) applies on the source: they carry its replication origin. Anything
 * else written on the source is split-brain and fails the step as above. reverse-replication's undo
 * and reverse-replication-stop drop the slot and the publication.
 */
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type Finding, type Json, type StepContext, StepError, unable } from '../../core/step.ts';
import { pool } from '../../postgres/connections.ts';
import type { RowChange } from '../../postgres/pgoutput.ts';
import { replicationNames } from '../../postgres/replication-names.ts';
import { DEFAULT_REVERSE_NAME, subscriptionOrigin } from '../../postgres/reverse-replication.ts';
import { REPLICATION_NAME } from '../../postgres/sql.ts';
import {
  createFencePublication,
  DEFAULT_FENCE_PUBLICATION,
  DEFAULT_FENCE_SLOT,
  drainFence,
  dropFencePublication,
  dropFenceSlot,
  type FencePeek,
  fenceSlotExists,
  flushedPosition,
  peekFence,
  publicationExists,
} from '../../postgres/write-fence.ts';

const params = z
  .object({
    slot: z
      .string()
      .regex(REPLICATION_NAME, 'must be a lower-case identifier (a-z, 0-9, _; at most 63 characters)')
      .default(DEFAULT_FENCE_SLOT),
    /** The publication whose tables are watched: the replicated ones (every table, as replication-start creates it). */
    publication: replicationNames.publication,
    /** Keep the slot after a pass, so a later run of this step checks again (D-day runs it twice: in the window and at its end). */
    keepSlot: z.boolean().default(false),
    /** A kept fence's own publication of every table, read through once `publication` is dropped. */
    fencePublication: z
      .string()
      .regex(REPLICATION_NAME, 'must be a lower-case identifier (a-z, 0-9, _; at most 63 characters)')
      .default(DEFAULT_FENCE_PUBLICATION),
    /** The reverse subscription on the source: what its apply worker writes is not split-brain. */
    reverseSubscription: z
      .string()
      .regex(REPLICATION_NAME, 'must be a lower-case identifier (a-z, 0-9, _; at most 63 characters)')
      .default(DEFAULT_REVERSE_NAME),
    /** Messages read at most: enough to name the writer, bounded so a runaway one cannot stall the window. */
    maxMessages: z.number().int().positive().default(10_000),
    /** Keys listed per table in the report. */
    keysPerTable: z.number().int().positive().default(10),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { slot: string; lsn: string; kept?: boolean; reverseApplied?: number };

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

/**
 * Tables a publication of every table makes un-updatable: no key and no replica identity. The forward
 * publication already required them to have one (preflight sets FULL), so normally there is none.
 */
async function keylessTables(source: Awaited<ReturnType<typeof pool>>): Promise<string[]> {
  const { rows } = await source.query<{ t: string }>(
    `select format('%I.%I', n.nspname, c.relname) as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind = 'r' and c.relpersistence = 'p' and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'
        and (c.relreplident = 'n' or (c.relreplident = 'd' and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary)))
      order by 1`,
  );
  return rows.map((r) => r.t);
}

const keylessFinding = (table: string): Finding => ({
  severity: 'error',
  object: `table ${table} (source)`,
  message:
    'has no primary key and no replica identity: in the fence publication (every table) its UPDATE and DELETE would fail on the source, the reverse replication’s included',
  fix: `alter table ${table} replica identity full (on the source), then run this step again`,
});

/**
 * Whether an earlier attempt passed, whether the slot is there to read (it blocks when neither), and
 * the publication to read it through: the forward one while it exists (it has since before the
 * freeze), else the fence's own.
 */
async function assess(
  ctx: StepContext,
  p: Params,
): Promise<{ findings: Finding[]; passed: FencePassed | undefined; exists: boolean; readThrough: string | null }> {
  const source = await pool(ctx, 'source');
  const passed = passedBefore(ctx, p);
  const exists = await fenceSlotExists(source, p.slot);
  const readThrough = (await publicationExists(source, p.publication))
    ? p.publication
    : (await publicationExists(source, p.fencePublication))
      ? p.fencePublication
      : null;
  const findings: Finding[] = [];
  if (!exists && !passed)
    findings.push({
      severity: 'error',
      object: `replication slot ${p.slot} (source)`,
      message: 'the write-fence slot does not exist',
      fix: 'postgres.freeze-writes creates it (with.fence: true, the default) with the same slot name',
      awaitsEarlierStep: true,
    });
  else if (exists && !readThrough)
    findings.push({
      severity: 'error',
      object: `publication ${p.publication} (source)`,
      message: `neither it nor the fence's own publication ${p.fencePublication} exists, so the fence cannot be read`,
      fix: 'run this step with keepSlot before replication-stop drops the forward publication (it creates the fence publication); or roll back',
    });
  return { findings, passed, exists, readThrough };
}

export const writeFence = defineStep<Params, Result>({
  kind: 'postgres.write-fence',
  summary: 'Prove that nothing was written on the source since the freeze (else name the tables and keys)',
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    const { findings, passed, exists, readThrough } = await assess(ctx, p);
    if (!exists && passed) return { state: 'done', result: { slot: passed.slot, lsn: passed.lsn } };
    if (blocks(findings)) return { state: 'blocked', findings };
    return {
      state: 'ready',
      plan: [
        p.keepSlot
          ? `read every row change committed on the source since the freeze (or the last pass) from slot ${p.slot} through publication ${readThrough}, setting aside those of reverse subscription ${p.reverseSubscription}; none other: keep the slot, moved past them${readThrough === p.publication ? `, and create publication ${p.fencePublication} to read through once ${p.publication} is dropped` : ''}; any: fail naming them`
          : `read every row change of publication ${readThrough}'s tables committed since the freeze from slot ${p.slot}; none: drop the slot; any: stop before the switch and name them`,
      ],
    };
  },

  async apply(ctx, p) {
    try {
      const source = await pool(ctx, 'source');
      const { findings, passed, exists, readThrough } = await assess(ctx, p);
      if (!exists && passed) return { slot: passed.slot, lsn: passed.lsn };
      if (blocks(findings)) throw blockedBy(findings);
      const origin = await subscriptionOrigin(source, p.reverseSubscription);
      const ignoreOrigins = new Set(origin ? [origin] : []);
      if (p.keepSlot && readThrough === p.publication && !(await publicationExists(source, p.fencePublication))) {
        const keyless = await keylessTables(source);
        if (keyless.length > 0) throw blockedBy(keyless.map(keylessFinding));
        // Created before the position the slot moves to, so it exists for every change read through it later.
        await ctx.record({ action: 'create-fence-publication', name: p.fencePublication });
        await createFencePublication(source, p.fencePublication);
      }
      const lsn = await flushedPosition(source);
      const peek: FencePeek = p.keepSlot
        ? await drainFence(source, p.slot, readThrough!, p.maxMessages, lsn, ignoreOrigins)
        : await peekFence(source, p.slot, readThrough!, p.maxMessages, { ignoreOrigins });
      const { changes, truncated } = peek;
      if (peek.ignored > 0)
        ctx.log.info(`${peek.ignored} row change(s) applied by reverse subscription ${p.reverseSubscription} set aside`);
      if (changes.length > 0) {
        const found = writtenFindings(changes, truncated, p);
        throw new StepError(
          `${changes.length}${truncated ? '+' : ''} row change(s) in ${found.length} table(s) were written on the source after the freeze`,
          found,
        );
      }
      await ctx.record({ action: 'fence-passed', slot: p.slot, lsn, kept: p.keepSlot } satisfies FencePassed);
      if (p.keepSlot) {
        ctx.log.info(
          `nothing written on the source since the freeze but by the reverse subscription (checked up to ${lsn}); slot ${p.slot} kept`,
        );
        return { slot: p.slot, lsn, kept: true, reverseApplied: peek.ignored };
      }
      await dropFenceSlot(source, p.slot);
      ctx.log.info(`nothing written on the source since the freeze (checked up to ${lsn}); dropped slot ${p.slot}`);
      return { slot: p.slot, lsn };
    } catch (error) {
      throw unable('prove that the source was not written since the freeze', error);
    }
  },

  async check(ctx, p, result) {
    const exists = await fenceSlotExists(await pool(ctx, 'source'), result.slot);
    if (p.keepSlot)
      return exists
        ? []
        : [
            {
              severity: 'error',
              object: `replication slot ${result.slot} (source)`,
              message: 'was kept to watch for split-brain writes, but is gone',
              fix: 'nothing watches the source for writes now; find who dropped it',
            },
          ];
    if (!exists) return [];
    return [
      {
        severity: 'error',
        object: `replication slot ${result.slot} (source)`,
        message: 'still exists after the fence passed; it holds WAL on the source',
        fix: `select pg_drop_replication_slot('${result.slot}')`,
      },
    ];
  },

  // freeze-writes' undo drops a slot left behind; the fence's own publication is this step's.
  async undo(ctx, _p, changes) {
    const names = new Set(
      changes.flatMap((c) =>
        typeof c === 'object' && c !== null && !Array.isArray(c) && c.action === 'create-fence-publication' && typeof c.name === 'string'
          ? [c.name]
          : [],
      ),
    );
    try {
      for (const name of names) await dropFencePublication(await pool(ctx, 'source'), name);
    } catch (error) {
      throw unable(`drop the write-fence publication (${[...names].join(', ')})`, error);
    }
  },
});
