/** Measure now, find the run to follow, and model: what `migrate forecast` and `forecast.window` share. */
import { listRuns, runState } from '../core/journal.ts';
import type { StepContext } from '../core/step.ts';
import { historyOf, latestWindowRun, windowOfRun } from './history.ts';
import { type MeasureOptions, measure } from './measure.ts';
import { forecast } from './model.ts';
import type { Forecast, Measurements, Order, ProofPlacement, RunHistory } from './types.ts';

export type ForecastRequest = MeasureOptions & {
  order: Order;
  proof: ProofPlacement;
  /** Runs of these runbooks (newest first, with a write window) are followed. */
  runbooks: string[];
  /** The state dir whose journals of this stack are searched; absent: no run is followed unless `journal` names one. */
  stateDir?: string;
  /** A journal file to follow instead (a rehearsal's or staging run's d-day). */
  journal?: string;
};

/** The run to follow, or why there is none (said in the forecast's notes). */
export function findHistory(ctx: Pick<StepContext, 'stack' | 'runId'>, r: ForecastRequest): { history: RunHistory | null; note?: string } {
  if (r.journal) {
    const run = runState(r.journal);
    if (!windowOfRun(run)) return { history: null, note: `journal ${r.journal} (run ${run.runId}) has no write window to follow` };
    return { history: historyOf(run) };
  }
  if (!r.stateDir) return { history: null, note: 'no state dir given: no earlier run followed' };
  const run = latestWindowRun(listRuns(r.stateDir, ctx.stack), r.runbooks, ctx.runId);
  if (!run)
    return { history: null, note: `no run of ${r.runbooks.join(', ')} with a write window in ${r.stateDir} for stack ${ctx.stack}` };
  return { history: historyOf(run) };
}

export async function forecastNow(
  ctx: StepContext,
  r: ForecastRequest,
): Promise<{ forecast: Forecast; measurements: Measurements; history: RunHistory | null }> {
  const { history, note } = findHistory(ctx, r);
  const measurements = await measure(ctx, r);
  const result = forecast(measurements, history, { stack: ctx.stack, order: r.order, proof: r.proof });
  if (note) result.notes.unshift(note);
  return { forecast: result, measurements, history };
}
