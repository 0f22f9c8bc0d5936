/**
 * postgres.sequence-sync: logical replication does not carry sequence values, so after the freeze
 * every sequence of the source (column-owned or not) is set on the target to where the source is,
 * `is_called` included, in one statement whatever their number.
 *
 * No undo: it only moves target sequences forward, on a target that serves no one until the
 * switch; a rollback goes back to the source, whose sequences this step never touches.
 */

import type pg from 'pg';
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type Finding, type StepContext, unable } from '../../core/step.ts';
import { pool } from '../../postgres/connections.ts';
import { qualified } from '../../postgres/sql.ts';

const params = z
  .object({
    /** Extra values to skip on the target, in increments (headroom for anything written after the read). */
    margin: z.number().int().min(0).default(0),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { sequences: number; elapsedMs: number };

interface SequenceValue {
  name: string;
  schema: string;
  sequence: string;
  /** The sequence relation's own last_value and is_called (pg_sequences hides last_value while is_called is false). */
  last: bigint;
  called: boolean;
  increment: bigint;
  min: bigint;
  max: bigint;
  cycle: boolean;
  readable: boolean;
}

const CHUNK = 500;

async function readSequences(db: pg.Pool): Promise<SequenceValue[]> {
  const { rows } = await db.query(
    `select schemaname, sequencename, increment_by::text, min_value::text, max_value::text, cycle,
            has_sequence_privilege(format('%I.%I', schemaname, sequencename), 'SELECT') as readable
       from pg_sequences where schemaname not in ('pg_catalog', 'information_schema') order by 1, 2`,
  );
  const state = new Map<string, { last: bigint; called: boolean }>();
  const readable = rows.filter((r) => r.readable);
  // One statement per chunk: every sequence is a relation of its own, read by name.
  for (let i = 0; i < readable.length; i += CHUNK) {
    const chunk = readable.slice(i, i + CHUNK);
    const sql = chunk
      .map((r, j) => `select ${j}::int as i, last_value::text, is_called from ${qualified(r.schemaname, r.sequencename)}`)
      .join(' union all ');
    for (const v of (await db.query(sql)).rows)
      state.set(`${chunk[v.i].schemaname}.${chunk[v.i].sequencename}`, { last: BigInt(v.last_value), called: v.is_called });
  }
  return rows.map((r) => {
    const name = `${r.schemaname}.${r.sequencename}`;
    const s = state.get(name);
    return {
      name,
      schema: r.schemaname,
      sequence: r.sequencename,
      last: s?.last ?? 0n,
      called: s?.called ?? false,
      increment: BigInt(r.increment_by),
      min: BigInt(r.min_value),
      max: BigInt(r.max_value),
      cycle: r.cycle,
      readable: r.readable,
    };
  });
}

/** What nextval would return, without calling it: null when the sequence is exhausted (no CYCLE). */
export function nextValue(s: Pick<SequenceValue, 'last' | 'called' | 'increment' | 'min' | 'max' | 'cycle'>): bigint | null {
  if (!s.called) return s.last;
  const next = s.last + s.increment;
  if (next > s.max || next < s.min) return s.cycle ? (s.increment > 0n ? s.min : s.max) : null;
  return next;
}

/** What setval gets on the target: the source's state exactly, or moved `margin` increments on, within bounds (a cycling one exactly). */
export function targetSetting(source: SequenceValue, margin: number): { value: bigint; called: boolean } {
  // Skipping ahead on a cycling sequence would wrap it around onto values already handed out.
  if (margin === 0 || source.cycle) return { value: source.last, called: source.called };
  const handedOut = source.called ? source.last : source.last - source.increment;
  const wanted = handedOut + BigInt(margin) * source.increment;
  const value = wanted > source.max ? source.max : wanted < source.min ? source.min : wanted;
  return { value, called: true };
}

/** The target hands out no value the source may already have handed out: its next value is the source's or beyond. */
function ahead(target: SequenceValue, source: SequenceValue): boolean {
  const [t, s] = [nextValue(target), nextValue(source)];
  if (s === null) return t === null;
  if (t === null) return true;
  // A cycling sequence hands its values out again: only the very same position is safe.
  if (source.cycle) return t === s;
  return source.increment > 0n ? t >= s : t <= s;
}

const describeNext = (s: SequenceValue) => {
  const next = nextValue(s);
  return next === null ? 'exhausted' : `nextval ${next}`;
};

function problems(source: SequenceValue[], target: Map<string, SequenceValue>): Finding[] {
  const findings: Finding[] = [];
  const unreadable = source.filter((s) => !s.readable);
  if (unreadable.length > 0) {
    findings.push({
      severity: 'error',
      object: `sequences ${unreadable
        .slice(0, 5)
        .map((s) => s.name)
        .join(', ')}${unreadable.length > 5 ? ', …' : ''}`,
      message: `${unreadable.length} sequences cannot be read by the migration user on the source`,
      fix: 'grant SELECT on them (or on all sequences in their schemas) to the migration user',
    });
  }
  const missing = source.filter((s) => !target.has(s.name));
  if (missing.length > 0) {
    findings.push({
      severity: 'error',
      object: `sequences ${missing
        .slice(0, 5)
        .map((s) => s.name)
        .join(', ')}${missing.length > 5 ? ', …' : ''}`,
      message: `${missing.length} source sequences do not exist on the target`,
      fix: 'run postgres.schema-copy (onPartialTarget: complete) to create them',
    });
  }
  return findings;
}

/** Both sides' sequences, what stops a sync, and the source sequences the target is behind. */
async function assess(
  ctx: StepContext,
): Promise<{ findings: Finding[]; source: SequenceValue[]; target: Map<string, SequenceValue>; behind: SequenceValue[] }> {
  const [source, onTarget] = await Promise.all([readSequences(await pool(ctx, 'source')), readSequences(await pool(ctx, 'target'))]);
  const target = new Map(onTarget.map((s) => [s.name, s]));
  const findings = problems(source, target);
  const behind = source.filter((s) => target.has(s.name) && !ahead(target.get(s.name)!, s));
  return { findings, source, target, behind };
}

export const sequenceSync = defineStep<Params, Result>({
  kind: 'postgres.sequence-sync',
  summary: 'Set every target sequence to its source value (after the freeze)',
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    const { findings, source, behind } = await assess(ctx);
    if (blocks(findings)) return { state: 'blocked', findings };
    if (behind.length === 0 && p.margin === 0) return { state: 'done', result: { sequences: source.length, elapsedMs: 0 } };
    return {
      state: 'ready',
      plan: [
        `setval on the target for ${source.length} sequences (${behind.length} behind the source)${p.margin ? `, ${p.margin} increments ahead` : ''}`,
      ],
    };
  },

  async apply(ctx, p) {
    try {
      const started = ctx.now();
      const { findings, source } = await assess(ctx);
      if (blocks(findings)) throw blockedBy(findings);
      const settings = source.map((s) => targetSetting(s, p.margin));
      await ctx.record({ action: 'sync-sequences', sequences: source.length, margin: p.margin });
      await (await pool(ctx, 'target')).query(
        `select count(setval(format('%I.%I', s, n)::regclass, v, c))
           from unnest($1::text[], $2::text[], $3::bigint[], $4::bool[]) as u(s, n, v, c)`,
        [
          source.map((s) => s.schema),
          source.map((s) => s.sequence),
          settings.map((s) => s.value.toString()),
          settings.map((s) => s.called),
        ],
      );
      const elapsedMs = ctx.now() - started;
      ctx.log.info(`set ${source.length} sequences on the target in ${elapsedMs} ms`);
      return { sequences: source.length, elapsedMs };
    } catch (error) {
      throw unable('synchronise sequences from the source to the target', error);
    }
  },

  async check(ctx) {
    const { findings, target, behind } = await assess(ctx);
    for (const s of behind) {
      findings.push({
        severity: 'error',
        object: `sequence ${s.name}`,
        message: `target would hand out ${describeNext(target.get(s.name)!)}, the source ${describeNext(s)}`,
        fix: 'run this step again',
      });
    }
    return findings;
  },
});
