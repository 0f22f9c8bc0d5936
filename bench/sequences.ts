/**
 * postgres.sequence-sync on many sequences: a database of its own on both servers holding only
 * `count` sequences (schema copied by postgres.schema-copy), so the switch's databases keep their
 * few real sequences and the two measurements do not mix.
 */
import { schemaCopy } from '../migrate/steps/postgres/schema-copy.ts';
import { sequenceSync } from '../migrate/steps/postgres/sequence-sync.ts';
import { withSteps } from './context.ts';
import type { Bench } from './servers.ts';
import { createDatabase, withClient } from './servers.ts';

export const SEQUENCE_DATABASE = 'bench_sequences';

export interface SequenceRun {
  sequences: number;
  /** Probe, apply and check, as `migrate run` runs the step. */
  seconds: number;
  /** The step's apply alone (its result.elapsedMs). */
  applyMs: number;
}

/** Moves every source sequence forward by a different amount, so that each run has all of them to set. */
async function advanceSource(bench: Bench): Promise<void> {
  await withClient(bench.source, SEQUENCE_DATABASE, (c) =>
    c.query(`DO $$
      DECLARE s record;
      BEGIN
        FOR s IN SELECT schemaname, sequencename, last_value FROM pg_sequences WHERE schemaname = 'seqs' LOOP
          PERFORM setval(format('%I.%I', s.schemaname, s.sequencename), coalesce(s.last_value, 0) + 1 + (random() * 1000)::int);
        END LOOP;
      END $$`),
  );
}

export async function prepareSequences(bench: Bench, count: number): Promise<void> {
  await createDatabase(bench.source, SEQUENCE_DATABASE);
  await withClient(bench.source, SEQUENCE_DATABASE, (c) =>
    c.query(`CREATE SCHEMA seqs;
      DO $$ BEGIN
        FOR i IN 1..${count} LOOP EXECUTE format('CREATE SEQUENCE seqs.s%s', i); END LOOP;
      END $$`),
  );
  await createDatabase(bench.target, SEQUENCE_DATABASE);
  await withSteps(bench, { sourceDatabase: SEQUENCE_DATABASE }, (steps) => steps.run(schemaCopy, {}));
}

export async function timeSequenceSync(bench: Bench): Promise<SequenceRun> {
  await advanceSource(bench);
  return withSteps(bench, { sourceDatabase: SEQUENCE_DATABASE }, async (steps) => {
    const { seconds, result, alreadyDone } = await steps.run(sequenceSync, {});
    if (alreadyDone) throw new Error('postgres.sequence-sync found nothing to do after the source sequences moved');
    return { sequences: result.sequences, seconds, applyMs: result.elapsedMs };
  });
}
