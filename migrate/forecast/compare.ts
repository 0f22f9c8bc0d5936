/**
 * The forecast set beside what the run then did: each predicted part of the database window with
 * the duration the journal recorded for the same step, and whether it fell within the part's own
 * tolerance. For the report after a rehearsal or a D-day.
 */
import type { RunState } from '../core/journal.ts';
import { windowOfRun } from './history.ts';
import type { Forecast } from './types.ts';

export type PartOutcome = {
  part: string;
  label: string;
  predicted: number | null;
  tolerance: number;
  source: string;
  /** Seconds the run's step of that id took; null when the run has no such step (a part the model added). */
  actual: number | null;
  within: boolean | null;
};

export type ForecastOutcome = {
  basedOnRun: string | null;
  window: { predicted: number; tolerance: number; lowerBound: boolean; actual: number | null; within: boolean | null };
  parts: PartOutcome[];
};

const within = (actual: number | null, predicted: number | null, tolerance: number) =>
  actual === null || predicted === null ? null : Math.abs(actual - predicted) <= tolerance + 1e-9;

export function compareWithRun(forecast: Forecast, run: RunState): ForecastOutcome {
  const w = windowOfRun(run);
  const db = forecast.databaseWindow;
  const parts = db.parts
    .filter((p) => p.id !== 'gaps')
    .map((p) => {
      const step = run.steps.find((s) => s.id === p.id && s.durationMs !== undefined);
      const actual = step ? step.durationMs! / 1000 : null;
      return {
        part: p.id,
        label: p.label,
        predicted: p.seconds,
        tolerance: p.tolerance,
        source: p.source,
        actual,
        within: within(actual, p.seconds, p.tolerance),
      };
    });
  return {
    basedOnRun: forecast.basedOnRun,
    window: {
      predicted: db.seconds,
      tolerance: db.tolerance,
      lowerBound: db.lowerBound,
      actual: w?.seconds ?? null,
      within: within(w?.seconds ?? null, db.seconds, db.tolerance),
    },
    parts,
  };
}
