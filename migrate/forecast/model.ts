/**
 * The forecast: pure functions from what was measured now (`Measurements`) and, when there is one,
 * an earlier run's journal (`RunHistory`) to the predicted parts of each window.
 *
 * Each part takes its figure from, in order of preference:
 * - measured now, where a reading decides it: catch-up cannot be faster than the time the
 *   subscription is behind (lag bytes ÷ WAL rate); PgBouncer's PAUSE waits for the longest running
 *   transaction; the proof reads the tables' bytes at the sampled verification rate; clients keep the
 *   old DNS answer for the record's cutover TTL; the app's pods take their measured start-up time;
 * - an earlier run: the step of the same kind took that long (scaled by the sequence count for
 *   sequence sync); a step that run skipped is skipped again when its `if:` was false or the run
 *   was this stack's, and assumed to run (at its default figure) when it lacked a capability on
 *   another stack (an AWS step in a rehearsal's journal, used to forecast prod);
 * - a default assumption (DEFAULTS below), said as such;
 * - unknown (pod start-up with no Kubernetes reading and no run): the total is then a lower bound.
 *
 * Tolerance of a part: `fraction × seconds + floor`, by source (TOLERANCE). Totals add the parts'
 * tolerances: a slow day is slow at every step, so they are not treated as independent.
 */
import type { FigureSource, Forecast, HistoryStep, Measurements, Order, Part, ProofPlacement, RunHistory, Total } from './types.ts';

export const TOLERANCE: Record<FigureSource, { fraction: number; floor: number }> = {
  measured: { fraction: 0.25, floor: 0.25 },
  run: { fraction: 0.5, floor: 0.25 },
  default: { fraction: 1, floor: 1 },
  unknown: { fraction: 0, floor: 0 },
};

/** Default figures (seconds) for steps no run has timed: local rehearsals' order of magnitude, AWS calls rounded up. */
export const DEFAULTS: Record<string, { label: string; seconds: number }> = {
  'source.stop': { label: 'stop the legacy app', seconds: 2 },
  'pgbouncer.pause': { label: 'PgBouncer PAUSE', seconds: 0.1 },
  'postgres.freeze-writes': { label: 'freeze writes on the source', seconds: 0.3 },
  'postgres.catch-up': { label: 'catch-up', seconds: 0.5 },
  'postgres.write-fence': { label: 'write fence', seconds: 0.1 },
  'postgres.verify': { label: 'verify (in the window)', seconds: 5 },
  'postgres.pin-switch-point': { label: 'pin the switch point', seconds: 0.2 },
  'postgres.sequence-sync': { label: 'sequences', seconds: 0.1 },
  'postgres.replication-stop': { label: 'stop replication', seconds: 0.3 },
  'postgres.reverse-replication': { label: 'reverse replication', seconds: 0.5 },
  'rds.create-replicas': { label: 'replicas (found ready)', seconds: 1 },
  'ssm.swap': { label: 'swap secrets (Parameter Store)', seconds: 1 },
  'pgbouncer.reload': { label: 'repoint PgBouncer', seconds: 0.1 },
  'pgbouncer.resume': { label: 'PgBouncer RESUME', seconds: 0.1 },
  'kube.restart': { label: 'new PgBouncer pods', seconds: 30 },
  'kube.restore': { label: 'EKS app pods ready', seconds: 60 },
  'dns.switch': { label: 'DNS switch (Route53 INSYNC)', seconds: 30 },
  gaps: { label: 'between steps (engine, journal fsyncs)', seconds: 0.02 },
};

/** The database window's steps in D-day order, for a forecast with no run to follow (and to place steps a run lacked). */
const WINDOW_ORDER = [
  'pgbouncer.pause',
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
  'pgbouncer.resume',
  'kube.restart',
];

export type ModelOptions = { stack: string; order: Order; proof: ProofPlacement; at?: string };

const round = (n: number) => Math.round(n * 1000) / 1000;
const secs = (n: number) => `${n < 10 ? n.toFixed(2) : n.toFixed(0)} s`;

export function part(id: string, label: string, seconds: number | null, source: FigureSource, from: string): Part {
  const { fraction, floor } = TOLERANCE[source];
  return {
    id,
    label,
    seconds: seconds === null ? null : round(seconds),
    tolerance: seconds === null ? 0 : round(fraction * seconds + floor),
    source: seconds === null ? 'unknown' : source,
    from,
  };
}

export function total(parts: Part[]): Total {
  return {
    seconds: round(parts.reduce((sum, p) => sum + (p.seconds ?? 0), 0)),
    tolerance: round(parts.reduce((sum, p) => sum + p.tolerance, 0)),
    lowerBound: parts.some((p) => p.seconds === null),
    parts,
  };
}

const labelOf = (kind: string) => DEFAULTS[kind]?.label ?? kind;

/** A step's own figure: the run's, else the default; undefined when the run skipped it on this same stack. */
function baseFigure(kind: string, id: string, step: HistoryStep | undefined, history: RunHistory | null, stack: string): Part | undefined {
  const label = labelOf(kind);
  if (step && history && step.status === 'applied' && step.seconds !== null)
    return part(id, label, step.seconds, 'run', `run ${history.runId}: step ${step.id} took ${secs(step.seconds)}`);
  // A condition is the runbook's own choice, and a capability missing on this stack is missing again.
  if (step && history && step.status === 'skipped' && (history.stack === stack || step.reason?.startsWith('condition'))) return undefined;
  const why =
    step && history
      ? `default assumption (run ${history.runId} of stack ${history.stack} ${step.status === 'skipped' ? `skipped it: ${step.reason ?? ''}` : 'did not time it'})`
      : 'default assumption (no earlier run timed it)';
  const seconds = DEFAULTS[kind]?.seconds ?? 1;
  return part(id, label, seconds, 'default', why);
}

function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

/**
 * How long the full proof takes: the tables' bytes at the sampled rate, plus what a verification
 * costs whatever the data (snapshots, catalogs, privileges: most of it on a small database), taken
 * from the run's verify step (its duration less its rows at today's rate), else assumed. Without a
 * sample: the run's verify rate applied to today's rows.
 */
export function proofFigure(m: Measurements, history: RunHistory | null): Part {
  const label = 'full proof (counts, checksums, keys)';
  const tables = m.tables.ok ? m.tables.value : null;
  const verified = history?.steps.find((s) => s.kind === 'postgres.verify' && s.status === 'applied' && s.seconds && s.rowsVerified);
  if (m.verifyRate.ok && tables) {
    const r = m.verifyRate.value;
    const data =
      r.bytesPerSecond && tables.bytes > 0
        ? {
            seconds: tables.bytes / r.bytesPerSecond,
            what: `${bytes(tables.bytes)} in ${tables.count} tables at ${bytes(r.bytesPerSecond)}/s`,
          }
        : r.rowsPerSecond > 0 && tables.rows > 0
          ? {
              seconds: tables.rows / r.rowsPerSecond,
              what: `~${tables.rows} rows (planner estimates) at ${Math.round(r.rowsPerSecond)} rows/s`,
            }
          : undefined;
    if (data) {
      const fixed =
        verified && history
          ? {
              seconds: Math.max(0, verified.seconds! - verified.rowsVerified! / r.rowsPerSecond),
              what: `run ${history.runId}'s verify took ${secs(verified.seconds!)} for ${verified.rowsVerified} rows`,
            }
          : { seconds: 0.5, what: 'assumed' };
      return part(
        'proof',
        label,
        data.seconds + fixed.seconds,
        'measured',
        `measured now: ${data.what} (sample of ${r.rows} rows of ${r.table} in ${r.durationMs} ms; one table at a time, cached pages: the real read may be slower), plus ${secs(fixed.seconds)} whatever the data (${fixed.what})`,
      );
    }
  }
  if (verified && history) {
    const rate = verified.rowsVerified! / verified.seconds!;
    const rows = tables && tables.rows > 0 ? tables.rows : verified.rowsVerified!;
    return part(
      'proof',
      label,
      rows / rate,
      'run',
      `run ${history.runId}: verified ${verified.rowsVerified} rows at ${Math.round(rate)} rows/s; ${rows} rows now${m.verifyRate.ok ? '' : ` (no sample now: ${m.verifyRate.reason})`}`,
    );
  }
  return part('proof', label, null, 'unknown', `unknown: ${m.verifyRate.ok ? 'no table sizes' : m.verifyRate.reason}`);
}

/** Adjusts a step's figure by what is measured now, where a reading decides it. */
function adjusted(kind: string, base: Part, step: HistoryStep | undefined, m: Measurements, proof: Part): Part {
  if (kind === 'pgbouncer.pause' && m.longestTransaction.ok && m.longestTransaction.value) {
    const t = m.longestTransaction.value;
    if (t.seconds > 0.5)
      return part(
        base.id,
        base.label,
        (base.seconds ?? 0) + t.seconds,
        'measured',
        `${base.from}, plus the longest running transaction now, which PAUSE waits for: ${secs(t.seconds)} (pid ${t.pid}, role ${t.role ?? '?'}, ${t.application ?? 'no application_name'}, ${t.state ?? '?'})`,
      );
  }
  if (kind === 'postgres.catch-up' && m.replicationLag.ok && m.walBytesPerSecond.ok) {
    const lag = m.replicationLag.value.bytes ?? 0;
    const rate = m.walBytesPerSecond.value.bytesPerSecond;
    const behind = rate > 0 ? lag / rate : 0;
    if (behind > (base.seconds ?? 0))
      return part(
        base.id,
        base.label,
        behind,
        'measured',
        `measured now: ${bytes(lag)} of lag at ${bytes(rate)}/s of WAL is ${secs(behind)} behind; without lag: ${base.from}`,
      );
  }
  if (kind === 'postgres.sequence-sync' && m.sequences.ok) {
    const now = m.sequences.value;
    if (base.source === 'run' && step?.sequences && now > step.sequences)
      return part(
        base.id,
        base.label,
        (base.seconds ?? 0) * (now / step.sequences),
        'run',
        `${base.from} for ${step.sequences} sequences; ×${(now / step.sequences).toFixed(1)} for ${now} now`,
      );
    if (base.source === 'default')
      return part(
        base.id,
        base.label,
        0.05 + 0.002 * now,
        'default',
        `default assumption: 50 ms + 2 ms per sequence, ${now} sequences measured now`,
      );
  }
  if (kind === 'postgres.verify') return { ...proof, id: base.id, label: 'full proof, inside the window' };
  if (kind === 'kube.restart' && m.podStartup.ok && base.source !== 'run')
    return part(
      base.id,
      base.label,
      m.podStartup.value.medianSeconds,
      'measured',
      `measured now: median pod start-up ${secs(m.podStartup.value.medianSeconds)} over ${m.podStartup.value.pods} pods of ${m.podStartup.value.namespaces.join(', ')}`,
    );
  return base;
}

/** The kinds of the window, in order: the run's own, with the proof placement's steps added or left out. */
function windowKinds(history: RunHistory | null, m: Measurements, proof: ProofPlacement): { kind: string; step?: HistoryStep }[] {
  const wanted = (kind: string) => {
    if (kind === 'postgres.verify') return proof === 'before-switch';
    if (kind === 'postgres.pin-switch-point' || kind === 'postgres.reverse-replication') return proof === 'after-switch';
    return true;
  };
  let list: { kind: string; step?: HistoryStep }[];
  if (history?.window) {
    const w = history.window;
    list = history.steps
      .filter((s) => s.startedAt !== null && s.startedAt >= w.start && s.startedAt < w.end && s.kind !== 'source.stop')
      .map((s) => ({ kind: s.kind, step: s }));
  } else {
    const admin = m.pgbouncerAdmin;
    list = WINDOW_ORDER.filter((k) =>
      admin ? k !== 'kube.restart' : !['pgbouncer.pause', 'pgbouncer.reload', 'pgbouncer.resume'].includes(k),
    ).map((kind) => ({ kind }));
  }
  list = list.filter((e) => wanted(e.kind));
  // A placement the run did not have: its steps go where D-day puts them.
  for (const kind of ['postgres.verify', 'postgres.pin-switch-point', 'postgres.reverse-replication']) {
    if (!wanted(kind) || list.some((e) => e.kind === kind)) continue;
    const at = WINDOW_ORDER.indexOf(kind);
    const before = list.findIndex((e) => WINDOW_ORDER.indexOf(e.kind) > at);
    list.splice(before < 0 ? list.length : before, 0, { kind });
  }
  return list;
}

export function databaseWindow(m: Measurements, history: RunHistory | null, o: ModelOptions, proof: Part): Total {
  const parts: Part[] = [];
  for (const { kind, step } of windowKinds(history, m, o.proof)) {
    const base = baseFigure(kind, step?.id ?? kind, step, history, o.stack);
    if (base) parts.push(adjusted(kind, base, step, m, proof));
  }
  if (history?.window) {
    const inWindow = history.steps.filter(
      (s) => s.startedAt !== null && s.startedAt >= history.window!.start && s.startedAt < history.window!.end,
    );
    const gaps = Math.max(0, history.window.seconds - inWindow.reduce((sum, s) => sum + (s.seconds ?? 0), 0));
    parts.push(
      part(
        'gaps',
        DEFAULTS.gaps!.label,
        gaps,
        'run',
        `run ${history.runId}: window ${history.window.from} → ${history.window.to} took ${secs(history.window.seconds)}, ${secs(gaps)} of it between steps`,
      ),
    );
  } else
    parts.push(part('gaps', DEFAULTS.gaps!.label, DEFAULTS.gaps!.seconds * parts.length, 'default', 'default assumption: 20 ms per step'));
  return total(parts);
}

function historyStepOf(history: RunHistory | null, kind: string): HistoryStep | undefined {
  return history?.steps.find((s) => s.kind === kind && s.status === 'applied') ?? history?.steps.find((s) => s.kind === kind);
}

function podsReady(m: Measurements, history: RunHistory | null, stack: string): Part {
  const label = DEFAULTS['kube.restore']!.label;
  if (m.podStartup.ok)
    return part(
      'pods-ready',
      label,
      m.podStartup.value.medianSeconds,
      'measured',
      `measured now: median pod start-up ${secs(m.podStartup.value.medianSeconds)} over ${m.podStartup.value.pods} pods of ${m.podStartup.value.namespaces.join(', ')}`,
    );
  const step = historyStepOf(history, 'kube.restore');
  if (step && history && step.status === 'applied' && step.seconds !== null)
    return part(
      'pods-ready',
      label,
      step.seconds,
      'run',
      `run ${history.runId}: step ${step.id} took ${secs(step.seconds)} (pod start-up not measured now: ${m.podStartup.reason})`,
    );
  if (step && history && step.status === 'skipped' && history.stack === stack)
    return part('pods-ready', label, 0, 'run', `run ${history.runId} skipped ${step.id} on this stack: ${step.reason ?? ''}`);
  return part('pods-ready', label, null, 'unknown', `unknown: ${m.podStartup.reason}`);
}

export function userWindows(m: Measurements, history: RunHistory | null, o: ModelOptions, db: Total): Forecast['userWindow'] {
  const dbPart = (note: string): Part => ({
    id: 'database-window',
    label: 'database write window',
    seconds: db.lowerBound && db.seconds === 0 ? null : db.seconds,
    tolerance: db.tolerance,
    source: history?.window ? 'run' : 'default',
    from: `the database window's ${db.parts.length} parts${db.lowerBound ? ' (a lower bound)' : ''}; ${note}`,
  });
  const keepServing = total([
    dbPart('the legacy app writes to RDS through its pooler, repointed inside this window; DNS moves later with both apps serving'),
  ]);
  const fromRun = (kind: string, id: string): Part | undefined => {
    const step = historyStepOf(history, kind);
    const base = baseFigure(kind, step?.id ?? id, step, history, o.stack);
    return base ? { ...base, id } : undefined;
  };
  const ttl = m.dns.app.cutoverTtl;
  const stopFirst = [
    fromRun('source.stop', 'stop-legacy'),
    dbPart('writes resume on RDS, but no app serves users until the EKS app is up and DNS has moved'),
    // With a console, resume ends the database window and new PgBouncer pods come after it; without one they are in it.
    m.pgbouncerAdmin ? fromRun('kube.restart', 'restart-pgbouncer') : undefined,
    podsReady(m, history, o.stack),
    fromRun('dns.switch', 'dns-switch'),
    part(
      'dns-ttl',
      'clients keep the old answer',
      ttl,
      'measured',
      `stack outputs: dns.records.app.cutoverTtl ${ttl} s (the TTL day-before lowers it to; ${m.dns.app.ttl} s if it was not lowered)`,
    ),
  ].filter((p): p is Part => p !== undefined);
  return { 'keep-serving': keepServing, 'stop-first': total(stopFirst) };
}

/** The switch-point snapshots are held from the pin until the proof ends: the rest of the window, then the proof. */
export function snapshotHold(db: Total, proof: Part, placement: ProofPlacement): Part {
  if (placement === 'before-switch')
    return {
      ...proof,
      id: 'snapshot-hold',
      label: 'snapshots held',
      from: `the proof runs inside the window, in its own snapshot: ${proof.from}`,
    };
  const pin = db.parts.findIndex((p) => p.id === 'postgres.pin-switch-point' || p.label === DEFAULTS['postgres.pin-switch-point']!.label);
  const rest = total(db.parts.slice(pin + 1));
  const seconds = proof.seconds === null ? null : proof.seconds + rest.seconds;
  return {
    id: 'snapshot-hold',
    label: 'snapshots held (vacuum held back)',
    seconds: seconds === null ? null : round(seconds),
    tolerance: round(proof.tolerance + rest.tolerance),
    source: proof.source,
    from: `${secs(rest.seconds)} of window after the pin, then the proof`,
  };
}

export function forecast(m: Measurements, history: RunHistory | null, o: ModelOptions): Forecast {
  const proof = proofFigure(m, history);
  const db = databaseWindow(m, history, o, proof);
  const notes: string[] = [];
  for (const [what, r] of [
    ['WAL rate', m.walBytesPerSecond],
    ['replication lag', m.replicationLag],
    ['longest transaction', m.longestTransaction],
    ['sequences', m.sequences],
    ['tables', m.tables],
    ['verification rate', m.verifyRate],
    ['pod start-up', m.podStartup],
  ] as const)
    if (!r.ok) notes.push(`${what} unknown: ${r.reason}`);
  if (m.tables.ok && m.tables.value.rows === 0 && m.tables.value.bytes > 0)
    notes.push('row estimates are 0 (tables never analyzed): the proof is forecast from bytes');
  return {
    at: o.at ?? m.at,
    stack: o.stack,
    order: o.order,
    proof: o.proof,
    basedOnRun: history?.runId ?? null,
    databaseWindow: db,
    userWindow: userWindows(m, history, o, db),
    proofRun: proof,
    snapshotHold: snapshotHold(db, proof, o.proof),
    notes,
  };
}
