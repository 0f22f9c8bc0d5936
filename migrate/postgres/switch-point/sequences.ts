/**
 * Sequence positions at the switch point. A sequence is not transactional: reading it inside the
 * pinned snapshot shows where it is now, not where it was. So the pin reads both sides' positions
 * at the pin itself, while the source is fenced and nothing writes to the target yet, and the proof
 * compares those recorded numbers: what the target would hand out next must not be a value the
 * source may already have handed out (sequence-sync's rule).
 */
import type pg from 'pg';
import type { Finding } from '../../core/step.ts';
import { qualified } from '../sql.ts';

/** One sequence as of the pin; bigints as text (JSON). `last`/`called` null: not readable by the migration user. */
export type PinnedSequence = {
  name: string;
  last: string | null;
  called: boolean;
  increment: string;
  min: string;
  max: string;
  cycle: boolean;
};

const CHUNK = 500;

export async function readSequences(db: pg.Pool): Promise<PinnedSequence[]> {
  const { rows } = await db.query(
    `SELECT schemaname, sequencename, increment_by::text, min_value::text, max_value::text, cycle,
            has_sequence_privilege(format('%I.%I', schemaname, sequencename), 'SELECT') AS readable
       FROM pg_sequences WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`,
  );
  const state = new Map<string, { last: string; called: boolean }>();
  const readable = rows.filter((r) => r.readable);
  for (let i = 0; i < readable.length; i += CHUNK) {
    const chunk = readable.slice(i, i + CHUNK);
    const sql = chunk
      .map((r, j) => `SELECT ${j}::int AS i, last_value::text, is_called FROM ${qualified(r.schemaname, r.sequencename)}`)
      .join(' UNION ALL ');
    for (const v of (await db.query(sql)).rows)
      state.set(`${chunk[v.i].schemaname}.${chunk[v.i].sequencename}`, { last: v.last_value, called: v.is_called });
  }
  return rows.map((r) => {
    const name = `${r.schemaname}.${r.sequencename}`;
    const s = state.get(name);
    return {
      name,
      last: s?.last ?? null,
      called: s?.called ?? false,
      increment: r.increment_by,
      min: r.min_value,
      max: r.max_value,
      cycle: r.cycle,
    };
  });
}

/** What nextval would return; null when exhausted (no CYCLE). The same rule as sequence-sync's nextValue. */
function nextValue(s: PinnedSequence): bigint | null {
  const [last, increment, min, max] = [BigInt(s.last ?? 0), BigInt(s.increment), BigInt(s.min), BigInt(s.max)];
  if (!s.called) return last;
  const next = last + increment;
  if (next > max || next < min) return s.cycle ? (increment > 0n ? min : max) : null;
  return next;
}

const describe = (next: bigint | null) => (next === null ? 'exhausted' : `nextval ${next}`);

/** The sequences whose target position at the pin could hand out a value the source already had. */
export function sequenceFindings(source: readonly PinnedSequence[], target: readonly PinnedSequence[]): Finding[] {
  const onTarget = new Map(target.map((s) => [s.name, s]));
  const findings: Finding[] = [];
  for (const s of source) {
    const t = onTarget.get(s.name);
    const object = `sequence ${s.name}`;
    if (!t) {
      findings.push({ severity: 'error', object, message: 'exists on the source but not on the target at the switch point' });
      continue;
    }
    if (s.last === null || t.last === null) {
      findings.push({
        severity: 'error',
        object,
        message: `the migration user could not read it on the ${s.last === null ? 'source' : 'target'} at the switch point`,
      });
      continue;
    }
    const [ns, nt] = [nextValue(s), nextValue(t)];
    const ahead = ns === null ? nt === null : nt === null || (s.cycle ? nt === ns : BigInt(s.increment) > 0n ? nt >= ns : nt <= ns);
    if (!ahead)
      findings.push({
        severity: 'error',
        object,
        message: `at the switch point the target would hand out ${describe(nt)}, the source ${describe(ns)}: the target could reuse values the source handed out`,
        fix: 'setval the target sequence past the source position (postgres.sequence-sync); rows inserted since the switch may already hold reused values',
      });
  }
  return findings;
}
