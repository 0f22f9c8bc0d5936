/**
 * What earlier runs took, from their journals: each step's duration and the database write window
 * (pause → resume) of a D-day run. Read by step kind, not step id, so a re-ordered or renamed
 * runbook still counts.
 */
import type { RunState } from '../core/journal.ts';
import type { HistoryStep, RunHistory } from './types.ts';

/** Where the window starts: PgBouncer's pause, or the freeze where there is no PgBouncer console. */
const WINDOW_START = ['pgbouncer.pause', 'postgres.freeze-writes'];
/**
 * Where it ends: PgBouncer's resume; else new PgBouncer pods (EKS, restart-only); else, without
 * PgBouncer, the last step of the switch itself.
 */
const WINDOW_END = ['pgbouncer.resume', 'kube.restart'];
const SWITCH_KINDS = new Set([
  'postgres.freeze-writes',
  'postgres.catch-up',
  'postgres.write-fence',
  'postgres.verify',
  'postgres.pin-switch-point',
  'postgres.sequence-sync',
  'postgres.replication-stop',
  'postgres.reverse-replication',
  'rds.create-replicas',
  'ssm.swap',
  'pgbouncer.reload',
]);

const ran = (s: { status: string }) => s.status === 'applied';

function historyStep(s: RunState['steps'][number]): HistoryStep {
  const result = (s.result ?? {}) as { sequences?: unknown; summary?: { rows?: unknown } };
  return {
    id: s.id,
    kind: s.kind ?? '',
    status: s.status,
    startedAt: s.startedAt ?? null,
    seconds: s.durationMs === undefined ? null : s.durationMs / 1000,
    reason: s.reason ?? s.error ?? null,
    sequences: typeof result.sequences === 'number' ? result.sequences : null,
    rowsVerified: typeof result.summary?.rows === 'number' ? result.summary.rows : null,
  };
}

/** The write window of a run, from the journal's own timestamps; null when the run did not get through one. */
export function windowOfRun(run: RunState): RunHistory['window'] {
  const steps = run.steps.filter((s) => ran(s) && s.startedAt !== undefined && s.finishedAt !== undefined);
  const first = WINDOW_START.map((kind) => steps.find((s) => s.kind === kind)).find(Boolean);
  if (!first) return null;
  const after = steps.filter((s) => s.startedAt! >= first.startedAt!);
  const last =
    WINDOW_END.map((kind) => after.find((s) => s.kind === kind)).find(Boolean) ??
    after.filter((s) => SWITCH_KINDS.has(s.kind ?? '')).at(-1);
  if (!last) return null;
  return {
    start: first.startedAt!,
    end: last.finishedAt!,
    seconds: (last.finishedAt! - first.startedAt!) / 1000,
    from: first.id,
    to: last.id,
  };
}

export function historyOf(run: RunState): RunHistory {
  return {
    runId: run.runId,
    runbook: run.runbook.name,
    stack: run.stack,
    window: windowOfRun(run),
    steps: run.steps.map(historyStep),
  };
}

/** The newest run of one of `runbooks` that got through a write window, other than `exceptRunId`. */
export function latestWindowRun(runs: RunState[], runbooks: string[], exceptRunId?: string): RunState | undefined {
  return runs
    .filter((r) => r.runId !== exceptRunId && runbooks.includes(r.runbook.name))
    .sort((a, b) => a.startedAt - b.startedAt)
    .reverse()
    .find((r) => windowOfRun(r) !== null);
}
