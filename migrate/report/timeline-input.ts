/**
 * A timeline picture's input from journals: the runs' steps as the journal timed them, the write
 * window as history.ts finds it, and the forecast a `forecast.window` step of the run made (or one
 * given), set beside it. Clients' series come from whoever watched them (the rehearsal).
 */
import type { RunState } from '../core/journal.ts';
import { windowOfRun } from '../forecast/history.ts';
import type { Forecast } from '../forecast/types.ts';
import type { ClientSeries, TimelineInput } from './timeline-svg.ts';

/** The result of the run's forecast.window step, when it has one. */
export function forecastOfRun(run: RunState): Forecast | undefined {
  const step = run.steps.find((s) => s.kind === 'forecast.window' && (s.status === 'applied' || s.status === 'already-done'));
  const result = step?.result as Forecast | undefined;
  return result?.databaseWindow ? result : undefined;
}

export function timelineInput(
  runs: RunState[],
  options: { clients?: ClientSeries[]; forecast?: Forecast; title?: string } = {},
): TimelineInput {
  const steps = runs.flatMap((run) =>
    run.steps
      .filter((s) => s.startedAt !== undefined && s.finishedAt !== undefined)
      .map((s) => ({
        id: s.id,
        kind: s.kind ?? '',
        lane: `${run.runbook.name} (${run.runId})`,
        start: s.startedAt!,
        end: s.finishedAt!,
        outcome: s.status,
        ...(s.reason || s.error ? { note: s.reason ?? s.error } : {}),
      })),
  );
  // Clients watched the whole rehearsal; the picture is of these runs (a little before and after).
  const from = Math.min(...steps.map((s) => s.start)) - 2000;
  const to = Math.max(...steps.map((s) => s.end)) + 5000;
  const clients = options.clients?.map((c) => ({
    ...c,
    ...(c.events ? { events: c.events.filter((e) => e.t >= from && e.t <= to) } : {}),
    ...(c.perSecond ? { perSecond: c.perSecond.filter((b) => b.t >= from && b.t <= to) } : {}),
  }));
  const windowRun = [...runs].reverse().find((r) => windowOfRun(r));
  const window = windowRun ? windowOfRun(windowRun)! : undefined;
  const forecast = options.forecast ?? runs.map(forecastOfRun).find(Boolean);
  const measured = window
    ? `write window ${((window.end - window.start) / 1000).toFixed(2)} s (${window.from} → ${window.to})`
    : 'no write window';
  const predicted = forecast
    ? `; forecast ${forecast.databaseWindow.seconds.toFixed(2)} ± ${forecast.databaseWindow.tolerance.toFixed(2)} s${forecast.basedOnRun ? ` from run ${forecast.basedOnRun}` : ''}`
    : '';
  return {
    title: options.title ?? `Timeline of ${runs.map((r) => r.runId).join(', ')}`,
    subtitle: `${measured}${predicted}`,
    steps,
    ...(window ? { window: { start: window.start, end: window.end, label: 'write window' } } : {}),
    ...(clients ? { clients } : {}),
    ...(forecast
      ? {
          forecast: {
            label: 'forecast database window',
            parts: forecast.databaseWindow.parts.map((p) => ({
              id: p.id,
              label: p.label,
              seconds: p.seconds,
              tolerance: p.tolerance,
              source: p.source,
            })),
          },
        }
      : {}),
  };
}
