/**
 * The rehearsal's timeline report, as data (for --json), Markdown (written beside the servers) and
 * terminal text. Built from the runs' journals, so it shows what the journal recorded, not what the
 * rehearsal believes happened.
 */
import type { RunState } from '../core/journal.ts';
import { formatDuration } from '../core/report.ts';
import type { ForecastOutcome } from '../forecast/compare.ts';
import type { UsersReport } from './user-facing.ts';

export interface TimelineRow {
  runbook: string;
  step: string;
  kind: string;
  outcome: string;
  startedAt: number | null;
  durationMs: number;
  note: string;
}

export interface RehearsalReport {
  date: string;
  outcome: 'passed' | 'failed';
  failure?: string;
  source: string;
  target: string;
  data: { customers: number; rowsAtStart: number; writers: number };
  timeline: TimelineRow[];
  totalMs: number;
  writes: {
    committed: number;
    foundOnTarget: number;
    lost: number;
    errorsSeenByApp: number;
    unavailableMs: number;
    unavailableFrom: string | null;
    unavailableTo: string | null;
    longestTransactionMs: number;
  };
  verification: {
    tables: number;
    rows: number;
    differences: number;
    /** `prove` (pinned to the switch point, after writes resumed) or `verify` (inside the window). */
    step: string;
    durationMs: number;
    afterSwitch: boolean;
    /** How long the two snapshots were held (vacuum held back), pin to the end of the proof. */
    snapshotHoldMs: number | null;
    xminAge: { source: number | null; target: number | null } | null;
  } | null;
  /** What a user of the app saw, resolving its name through DNS, across the whole D-day (and rollback). */
  users: UsersReport | null;
  /** D-day's go/no-go forecast set beside what the run then did. */
  forecast: ForecastOutcome | null;
  /** The SVG timeline written beside the report. */
  timelineFile: string | null;
  /** --rollback-after-switch: the rollback run, with the app writing throughout. */
  rollback: {
    startedAt: number;
    endedAt: number;
    /** The longest stretch without a committed write during the rollback run. */
    windowMs: number;
    /** Of every transaction the app's database clients committed (before and after the switch), found on the source. */
    onSource: number;
    lost: number;
    /** Writes the user client was told committed, not on the source. */
    userWritesLost: number;
  } | null;
  /** D-day's go/no-go steps, each as the journal recorded it: what was checked before anything changed. */
  goNoGo: { step: string; outcome: string; detail: string }[];
  /** Owners and privileges (ACLs) that differ between the servers after the cutover, from verify. */
  privilegeDifferences: number | null;
  sequencesBehind: number;
  webhooks: { received: number; replayed: number; failed: number; standIn: string } | null;
  standIns: string[];
  skipped: string[];
  /** `stop`: with --keep, where each kept server is and how to stop it. */
  artifacts: { dir: string; outputs: string; stateDir: string; report: string; kept: boolean; stop?: string[] };
}

export function timelineOf(runs: RunState[]): TimelineRow[] {
  return runs.flatMap((run) =>
    run.steps.map((s) => ({
      runbook: run.runbook.name,
      step: s.id,
      kind: s.kind ?? '',
      outcome: s.status,
      startedAt: s.startedAt ?? null,
      durationMs: s.durationMs ?? 0,
      note: s.reason ?? s.error ?? '',
    })),
  );
}

const GO_NO_GO_KINDS = new Set(['postgres.schema-parity', 'postgres.replication-health']);

/** D-day's go/no-go steps with what each checked, in the words an operator reads. */
export function goNoGoOf(run: RunState | undefined): RehearsalReport['goNoGo'] {
  return (run?.steps ?? [])
    .filter((s) => GO_NO_GO_KINDS.has(s.kind ?? ''))
    .map((s) => {
      const r = (s.result ?? {}) as {
        objects?: number;
        changedSinceBaseline?: boolean | null;
        lagBytes?: number | null;
        applyErrors?: number | null;
        observedMs?: number;
      };
      const detail =
        s.kind === 'postgres.schema-parity'
          ? `${r.objects ?? '?'} objects equal on both servers (owners and ACLs included)${r.changedSinceBaseline ? '; the source changed since week-prior' : ''}`
          : `apply errors ${r.applyErrors ?? 'n/a'}, lag ${r.lagBytes ?? 'n/a'} bytes, watched ${formatDuration(r.observedMs ?? 0)}`;
      return { step: s.id, outcome: s.status, detail: s.error ?? s.reason ?? detail };
    });
}

const secs = (x: number | null) => (x === null ? '—' : `${x.toFixed(3)} s`);

/** The go/no-go's forecast beside the measured steps. */
function forecastMarkdown(f: ForecastOutcome): string[] {
  return [
    '## Forecast and what happened',
    '',
    `Forecast ${f.basedOnRun ? `from run ${f.basedOnRun} and` : 'from'} read-only measurements, made before anything changed.`,
    '',
    '| part | forecast | tolerance | measured | within |',
    '|---|---|---|---|---|',
    `| **write window** | ${secs(f.window.predicted)}${f.window.lowerBound ? ' (at least)' : ''} | ± ${secs(f.window.tolerance)} | ${secs(f.window.actual)} | ${f.window.within ?? '—'} |`,
    ...f.parts.map(
      (p) => `| ${p.label} (${p.source}) | ${secs(p.predicted)} | ± ${secs(p.tolerance)} | ${secs(p.actual)} | ${p.within ?? '—'} |`,
    ),
    '',
  ];
}

/** Where the proof ran and what holding its snapshots cost. */
function proofPlace(v: NonNullable<RehearsalReport['verification']>): string {
  if (!v.afterSwitch) return 'inside the write window';
  const age = v.xminAge ? `, xmin age held ${v.xminAge.source ?? '?'} (source) / ${v.xminAge.target ?? '?'} (target) transactions` : '';
  return `after writes resumed, pinned to the switch point (snapshots held ${formatDuration(v.snapshotHoldMs ?? 0)}${age})`;
}

const time = (ms: number | null) => (ms === null ? '' : new Date(ms).toISOString().slice(11, 23));

export function toMarkdown(r: RehearsalReport): string {
  const lines = [
    `# Cutover rehearsal — ${r.date}`,
    '',
    `**${r.outcome === 'passed' ? 'PASSED' : 'FAILED'}**${r.failure ? `: ${r.failure}` : ''} in ${formatDuration(r.totalMs)}.`,
    '',
    `- Source: ${r.source}`,
    `- Target: ${r.target}`,
    `- Data: ${r.data.customers} customers, ${r.data.rowsAtStart} rows at start; ${r.data.writers} writers through PgBouncer for the whole rehearsal`,
    '',
    '## Result',
    '',
    `| measure | value |`,
    `|---|---|`,
    `| write-unavailability window | ${formatDuration(r.writes.unavailableMs)}${r.writes.unavailableFrom ? ` (${r.writes.unavailableFrom} → ${r.writes.unavailableTo})` : ''} |`,
    ...(r.users
      ? [
          `| longest gap a user saw (DNS-following, TTL ${r.users.recordTtlSeconds} s) | ${formatDuration(r.users.longestGapMs)}${r.users.gapFrom ? ` (${r.users.gapFrom} → ${r.users.gapTo})` : ''}, ${r.users.failedInGap} failed requests in it |`,
          `| user writes: served by / failed / lost | ${Object.entries(r.users.servedBy)
            .map(([app, n]) => `${app} ${n}`)
            .join(', ')} / ${r.users.failed} / ${r.users.lost} |`,
        ]
      : []),
    `| longest single transaction (held, not failed) | ${formatDuration(r.writes.longestTransactionMs)} |`,
    `| transactions committed by the app | ${r.writes.committed} |`,
    `| of those found on the target | ${r.writes.foundOnTarget} |`,
    `| lost | ${r.writes.lost} |`,
    `| errors the app saw | ${r.writes.errorsSeenByApp} |`,
    ...(r.verification
      ? [
          `| rows verified (counts + checksums) | ${r.verification.rows} in ${r.verification.tables} tables in ${formatDuration(r.verification.durationMs)}, ${proofPlace(r.verification)} |`,
          `| differences found | ${r.verification.differences} |`,
        ]
      : ['| verification | did not run |']),
    `| owner and privilege differences (every schema, table, sequence, function) | ${r.privilegeDifferences ?? 'not compared'} |`,
    ...r.goNoGo.map(
      (g) =>
        `| go/no-go \`${g.step}\` | ${g.outcome === 'applied' || g.outcome === 'already-done' ? 'go' : g.outcome}: ${g.detail.replace(/\|/g, '\\|')} |`,
    ),
    `| sequences behind the ${r.rollback ? 'target (on the source, after the rollback)' : 'source'} | ${r.sequencesBehind} |`,
    ...(r.rollback
      ? [
          `| rollback after the switch: write window | ${formatDuration(r.rollback.windowMs)} (rollback run ${formatDuration(r.rollback.endedAt - r.rollback.startedAt)}) |`,
          `| rollback: committed transactions on the source / lost | ${r.rollback.onSource} / ${r.rollback.lost} (user writes lost: ${r.rollback.userWritesLost}) |`,
        ]
      : []),
    ...(r.webhooks
      ? [
          `| webhooks received / replayed / failed | ${r.webhooks.received} / ${r.webhooks.replayed} / ${r.webhooks.failed} (${r.webhooks.standIn}) |`,
        ]
      : []),
    '',
    ...(r.forecast ? forecastMarkdown(r.forecast) : []),
    '## Timeline',
    '',
    ...(r.timelineFile ? [`Picture: ${r.timelineFile}`, ''] : []),
    '| runbook | step | kind | outcome | started | duration | note |',
    '|---|---|---|---|---|---|---|',
    ...r.timeline.map(
      (t) =>
        `| ${t.runbook} | ${t.step} | ${t.kind} | ${t.outcome} | ${time(t.startedAt)} | ${formatDuration(t.durationMs)} | ${t.note.replace(/\|/g, '\\|')} |`,
    ),
    '',
    '## Stand-ins and skipped steps',
    '',
    ...r.standIns.map((s) => `- stand-in: ${s}`),
    ...r.skipped.map((s) => `- skipped: ${s}`),
    '',
    `Servers, outputs and journals: ${r.artifacts.kept ? r.artifacts.dir : 'removed (pass --keep to keep them)'}`,
    ...(r.artifacts.stop ?? []).map((l) => `- ${l}`),
    '',
  ];
  return lines.join('\n');
}

export function toText(r: RehearsalReport): string {
  const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
  const rows = r.timeline.map(
    (t) => `  ${pad(t.runbook, 11)} ${pad(t.step, 22)} ${pad(t.outcome, 12)} ${pad(formatDuration(t.durationMs), 9)} ${t.note}`,
  );
  return [
    '',
    `Rehearsal ${r.outcome === 'passed' ? 'PASSED' : 'FAILED'}${r.failure ? `: ${r.failure}` : ''} in ${formatDuration(r.totalMs)}`,
    '',
    'Timeline:',
    ...rows,
    '',
    `Write-unavailability window: ${formatDuration(r.writes.unavailableMs)} (longest transaction held: ${formatDuration(r.writes.longestTransactionMs)})`,
    `Transactions committed: ${r.writes.committed}, on target: ${r.writes.foundOnTarget}, lost: ${r.writes.lost}, errors seen by the app: ${r.writes.errorsSeenByApp}`,
    r.verification
      ? `Rows verified: ${r.verification.rows} in ${r.verification.tables} tables in ${formatDuration(r.verification.durationMs)}, ${proofPlace(r.verification)}; differences: ${r.verification.differences}`
      : 'Verification did not run',
    `Owner and privilege differences: ${r.privilegeDifferences ?? 'not compared'}`,
    ...r.goNoGo.map(
      (g) => `Go/no-go ${g.step}: ${g.outcome === 'applied' || g.outcome === 'already-done' ? 'go' : g.outcome} (${g.detail})`,
    ),
    ...(r.users
      ? [
          `Longest gap a user saw (DNS-following, TTL ${r.users.recordTtlSeconds} s): ${formatDuration(r.users.longestGapMs)}, ${r.users.failedInGap} failed requests in it; user writes ${r.users.writes} (${Object.entries(
            r.users.servedBy,
          )
            .map(([app, n]) => `${app} ${n}`)
            .join(', ')}), failed ${r.users.failed}, lost ${r.users.lost}`,
        ]
      : []),
    `Sequences behind the ${r.rollback ? 'target (on the source, after the rollback)' : 'source'}: ${r.sequencesBehind}`,
    ...(r.rollback
      ? [
          `Rollback after the switch: write window ${formatDuration(r.rollback.windowMs)}, run ${formatDuration(r.rollback.endedAt - r.rollback.startedAt)}; on the source ${r.rollback.onSource}, lost ${r.rollback.lost}, user writes lost ${r.rollback.userWritesLost}`,
        ]
      : []),
    ...(r.webhooks
      ? [
          `Webhooks received: ${r.webhooks.received}, replayed: ${r.webhooks.replayed}, failed: ${r.webhooks.failed} (${r.webhooks.standIn})`,
        ]
      : []),
    ...(r.skipped.length > 0 ? [`Skipped: ${r.skipped.length - 1} steps that need AWS (see the report)`] : []),
    ...(r.forecast
      ? [
          `Forecast write window: ${secs(r.forecast.window.predicted)} ± ${secs(r.forecast.window.tolerance)}, measured ${secs(r.forecast.window.actual)} (within: ${r.forecast.window.within ?? '—'})`,
        ]
      : []),
    `Report: ${r.artifacts.report}${r.timelineFile ? `, timeline picture: ${r.timelineFile}` : ''}`,
    ...(r.artifacts.stop ? ['', `Kept (--keep) in ${r.artifacts.dir}:`, ...r.artifacts.stop.map((l) => `  ${l}`)] : []),
    '',
  ].join('\n');
}
