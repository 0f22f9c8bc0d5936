/** The forecast as a table a person reads: each window, its parts, and where each figure came from. */
import type { Forecast, Part, Total } from './types.ts';

export type Paint = (style: 'bold' | 'dim' | 'yellow' | 'red', text: string) => string;

const plain: Paint = (_style, text) => text;

export function formatSeconds(n: number | null): string {
  if (n === null) return 'unknown';
  if (n < 10) return `${n.toFixed(2)} s`;
  if (n < 120) return `${n.toFixed(1)} s`;
  if (n < 7200) return `${(n / 60).toFixed(1)} min`;
  return `${(n / 3600).toFixed(1)} h`;
}

const figure = (seconds: number | null, tolerance: number, lowerBound = false) =>
  seconds === null ? 'unknown' : `${lowerBound ? '≥ ' : ''}${formatSeconds(seconds)} ± ${formatSeconds(tolerance)}`;

function partLine(p: Part, paint: Paint): string {
  const value = figure(p.seconds, p.tolerance).padEnd(22);
  const source = p.source === 'unknown' ? paint('yellow', p.source) : p.source;
  return `    ${p.label.padEnd(38)} ${p.seconds === null ? paint('yellow', value) : value} ${source.padEnd(8)} ${paint('dim', p.from)}`;
}

function totalLines(title: string, t: Total, paint: Paint, budget?: number): string[] {
  const over = budget !== undefined && t.seconds > budget;
  const head = `${title.padEnd(42)} ${figure(t.seconds, t.tolerance, t.lowerBound)}`;
  return [
    over ? paint('red', `${head}  over the budget of ${formatSeconds(budget)}`) : paint('bold', head),
    ...t.parts.map((p) => partLine(p, paint)),
  ];
}

export function formatForecast(f: Forecast, options: { paint?: Paint; budgetSeconds?: number } = {}): string {
  const paint = options.paint ?? plain;
  const lines = [
    paint(
      'bold',
      `Forecast for stack ${f.stack} (order ${f.order}, proof ${f.proof}), ${f.basedOnRun ? `based on run ${f.basedOnRun}` : 'no earlier run to follow'}`,
    ),
    ...totalLines('Database write window (pause → resume)', f.databaseWindow, paint),
    ...totalLines(
      'Window users see, keep-serving',
      f.userWindow['keep-serving'],
      paint,
      f.order === 'keep-serving' ? options.budgetSeconds : undefined,
    ),
    ...totalLines(
      'Window users see, stop-first',
      f.userWindow['stop-first'],
      paint,
      f.order === 'stop-first' ? options.budgetSeconds : undefined,
    ),
    paint('bold', `${'Post-switch proof'.padEnd(42)} ${figure(f.proofRun.seconds, f.proofRun.tolerance)}`),
    `    ${paint('dim', f.proofRun.from)}`,
    paint('bold', `${'Snapshots held (vacuum held back)'.padEnd(42)} ${figure(f.snapshotHold.seconds, f.snapshotHold.tolerance)}`),
    `    ${paint('dim', f.snapshotHold.from)}`,
    ...f.notes.map((n) => paint('yellow', `note: ${n}`)),
  ];
  return lines.join('\n');
}
