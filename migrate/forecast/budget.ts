/**
 * The go/no-go on a forecast: the window users will see (for the chosen order) against the budget
 * the team agreed to. Over it by the forecast figure: blocked, naming the part at which the running
 * sum crosses the budget and the largest parts. Over it only within the tolerance, or not knowable
 * (a part is unknown): a warning, because refusing D-day on a guess is not the gate's job.
 */
import type { Finding } from '../core/step.ts';
import type { Forecast, Order, Part, Total } from './types.ts';

const secs = (n: number) => `${n < 10 ? n.toFixed(2) : n.toFixed(0)} s`;
const describe = (p: Part) =>
  `${p.label} (${p.id}) ${p.seconds === null ? 'unknown' : `${secs(p.seconds)} ± ${secs(p.tolerance)}`}, ${p.from}`;

/** The part at which the running sum first exceeds the budget. */
export function crossingPart(window: Total, budgetSeconds: number): Part | undefined {
  let sum = 0;
  for (const p of window.parts) {
    sum += p.seconds ?? 0;
    if (sum > budgetSeconds) return p;
  }
  return undefined;
}

export function budgetFindings(f: Forecast, budgetSeconds: number, order: Order = f.order): Finding[] {
  const window = f.userWindow[order];
  const object = `window users see (${order})`;
  const figure = `${window.lowerBound ? 'at least ' : ''}${secs(window.seconds)} ± ${secs(window.tolerance)}`;
  const crossing = crossingPart(window, budgetSeconds);
  // The stop-first window holds the database window as one part: name the database part inside it, too.
  const inner = crossing?.id === 'database-window' ? crossingPart(f.databaseWindow, budgetSeconds) : undefined;
  if (crossing) {
    const largest = [...window.parts.filter((p) => p.seconds !== null)].sort((a, b) => b.seconds! - a.seconds!).slice(0, 3);
    return [
      {
        severity: 'error',
        object,
        message:
          `forecast ${figure} exceeds the budget of ${secs(budgetSeconds)}: it crosses the budget at ${describe(crossing)}` +
          `${inner ? `; inside the database window at ${describe(inner)}` : ''}; largest parts: ${largest.map((p) => `${p.id} ${secs(p.seconds!)}`).join(', ')}`,
        fix:
          order === 'stop-first'
            ? 'keep serving through the switch (order keep-serving), lower the record TTL earlier, or raise the budget'
            : 'find what makes the named part slow (a long transaction, replication lag, a slow step in the run it came from), or raise the budget',
      },
    ];
  }
  const findings: Finding[] = [];
  if (window.seconds + window.tolerance > budgetSeconds)
    findings.push({
      severity: 'warning',
      object,
      message: `forecast ${figure} is within the budget of ${secs(budgetSeconds)} only if it is not at the slow end of its tolerance`,
    });
  const unknown = window.parts.filter((p) => p.seconds === null);
  if (unknown.length > 0)
    findings.push({
      severity: 'warning',
      object,
      message: `the forecast is a lower bound: ${unknown.map((p) => `${p.id} (${p.from})`).join('; ')}`,
      fix: 'give this machine read access to the pods of the app namespaces, or rehearse on a stack that has them',
    });
  return findings;
}
