/**
 * The model's arithmetic on fixed inputs: each part of each window, where its figure came from and
 * its tolerance, for both D-day orders and both proof placements; and the budget gate's findings.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { budgetFindings } from '../../migrate/forecast/budget.ts';
import { formatForecast } from '../../migrate/forecast/format.ts';
import { forecast } from '../../migrate/forecast/model.ts';
import type { HistoryStep, Measurements, Part, RunHistory } from '../../migrate/forecast/types.ts';

const measured: Measurements = {
  at: '2026-12-01T10:00:00.000Z',
  walBytesPerSecond: { ok: true, value: { bytesPerSecond: 1_000_000, intervalMs: 2000 } },
  replicationLag: { ok: true, value: { bytes: 3_000_000, seconds: 0.4 } },
  longestTransaction: { ok: true, value: { seconds: 4, pid: 4242, role: 'reports', application: 'nightly <job>', state: 'active' } },
  sequences: { ok: true, value: 40 },
  tables: {
    ok: true,
    value: {
      count: 10,
      rows: 1_000_000,
      bytes: 1e9,
      largest: [{ table: 'public.orders', schema: 'public', name: 'orders', rows: 600_000, bytes: 6e8 }],
    },
  },
  verifyRate: {
    ok: true,
    value: { table: 'public.orders', rows: 50_000, bytes: 5e7, durationMs: 500, rowsPerSecond: 100_000, bytesPerSecond: 1e8 },
  },
  dns: { app: { ttl: 300, cutoverTtl: 60 }, webhooks: { ttl: 300, cutoverTtl: 60 } },
  podStartup: { ok: true, value: { medianSeconds: 20, pods: 6, namespaces: ['app'] } },
  pgbouncerAdmin: true,
};

function step(id: string, kind: string, startedAt: number, seconds: number, extra: Partial<HistoryStep> = {}): HistoryStep {
  return { id, kind, status: 'applied', startedAt, seconds, reason: null, sequences: null, rowsVerified: null, ...extra };
}
const skipped = (id: string, kind: string, startedAt: number, reason = 'needs AWS: not in a local rehearsal') =>
  step(id, kind, startedAt, 0, { status: 'skipped', reason });

function run(stack: string): RunHistory {
  return {
    runId: 'd-day-1',
    runbook: 'd-day',
    stack,
    window: { start: 5000, end: 8300, seconds: 3.3, from: 'pause-pgbouncer', to: 'resume-pgbouncer' },
    steps: [
      step('go', 'forecast.window', 0, 3),
      step('stop-source', 'source.stop', 3000, 1.5),
      step('pause-pgbouncer', 'pgbouncer.pause', 5000, 0.1),
      step('freeze', 'postgres.freeze-writes', 5100, 0.2),
      step('catch-up', 'postgres.catch-up', 5300, 0.5),
      step('write-fence', 'postgres.write-fence', 5800, 0.1),
      step('verify', 'postgres.verify', 5900, 2, { rowsVerified: 100_000 }),
      step('sequences', 'postgres.sequence-sync', 7900, 0.05, { sequences: 10 }),
      step('stop-replication', 'postgres.replication-stop', 7950, 0.2),
      skipped('replicas', 'rds.create-replicas', 8150),
      skipped('swap-secrets', 'ssm.swap', 8150),
      step('repoint-pgbouncer', 'pgbouncer.reload', 8150, 0.1),
      step('resume-pgbouncer', 'pgbouncer.resume', 8250, 0.05),
      step('restart-pgbouncer', 'kube.restart', 8300, 10),
      step('scale-up', 'kube.restore', 18300, 5),
      skipped('switch-dns', 'dns.switch', 23300),
    ],
  };
}

const byId = (parts: Part[]) => Object.fromEntries(parts.map((p) => [p.id, p]));
const figures = (parts: Part[]) => parts.map((p) => [p.id, p.seconds, p.source]);

describe('the forecast model', () => {
  it('follows a run of the same stack, adjusted by what is measured now (keep-serving, proof after the switch)', () => {
    const f = forecast(measured, run('prod'), { stack: 'prod', order: 'keep-serving', proof: 'after-switch' });
    assert.deepEqual(figures(f.databaseWindow.parts), [
      ['pause-pgbouncer', 4.1, 'measured'], // 0.1 s in the run + the 4 s transaction PAUSE waits for
      ['freeze', 0.2, 'run'],
      ['catch-up', 3, 'measured'], // 3 MB behind at 1 MB/s of WAL
      ['write-fence', 0.1, 'run'],
      ['postgres.pin-switch-point', 0.2, 'default'], // the run had no pinned proof: added where D-day puts it
      ['sequences', 0.2, 'run'], // 0.05 s for 10 sequences, ×4 for 40
      ['stop-replication', 0.2, 'run'],
      ['postgres.reverse-replication', 0.5, 'default'],
      ['repoint-pgbouncer', 0.1, 'run'],
      ['resume-pgbouncer', 0.05, 'run'],
      ['gaps', 0, 'run'],
    ]);
    const parts = byId(f.databaseWindow.parts);
    assert.match(
      parts['pause-pgbouncer']!.from,
      /run d-day-1: step pause-pgbouncer took 0\.10 s, plus the longest running transaction now.*4\.00 s \(pid 4242, role reports/,
    );
    assert.match(parts['catch-up']!.from, /3\.0 MB of lag at 1\.0 MB\/s of WAL is 3\.00 s behind/);
    assert.match(parts.sequences!.from, /for 10 sequences; ×4\.0 for 40 now/);
    // measured: 25% + 0.25 s; run: 50% + 0.25 s; default: 100% + 1 s.
    assert.equal(parts['pause-pgbouncer']!.tolerance, 1.275);
    assert.equal(parts.freeze!.tolerance, 0.35);
    assert.equal(parts['postgres.pin-switch-point']!.tolerance, 1.2);
    assert.equal(f.databaseWindow.seconds, 8.65);
    assert.equal(f.databaseWindow.tolerance, 7.15);
    assert.equal(f.databaseWindow.lowerBound, false);
    assert.equal(f.basedOnRun, 'd-day-1');

    assert.deepEqual(figures(f.userWindow['keep-serving'].parts), [['database-window', 8.65, 'run']]);
    assert.equal(f.userWindow['keep-serving'].seconds, 8.65);
    assert.deepEqual(figures(f.userWindow['stop-first'].parts), [
      ['stop-legacy', 1.5, 'run'],
      ['database-window', 8.65, 'run'],
      ['restart-pgbouncer', 10, 'run'],
      ['pods-ready', 20, 'measured'],
      // dns.switch was skipped on this same stack: it is skipped again.
      ['dns-ttl', 60, 'measured'],
    ]);
    assert.equal(f.userWindow['stop-first'].seconds, 100.15);

    // 1 GB at 100 MB/s, plus the 1 s the run's verify took beyond its 100 000 rows at today's 100 000 rows/s.
    assert.deepEqual([f.proofRun.seconds, f.proofRun.source, f.proofRun.tolerance], [11, 'measured', 3]);
    assert.match(f.proofRun.from, /1\.0 GB in 10 tables at 100 MB\/s/);
    // Held from the pin: the 1.05 s of window after it, then the proof.
    assert.deepEqual([f.snapshotHold.seconds, f.snapshotHold.source], [12.05, 'measured']);
  });

  it("assumes a rehearsal's skipped AWS steps will run on another stack, at their defaults", () => {
    const f = forecast(measured, run('rehearsal'), { stack: 'prod', order: 'stop-first', proof: 'after-switch' });
    const parts = byId(f.databaseWindow.parts);
    assert.deepEqual([parts.replicas?.seconds, parts.replicas?.source], [1, 'default']);
    assert.deepEqual([parts['swap-secrets']?.seconds, parts['swap-secrets']?.source], [1, 'default']);
    assert.match(parts['swap-secrets']!.from, /run d-day-1 of stack rehearsal skipped it: needs AWS/);
    assert.equal(f.databaseWindow.seconds, 10.65);
    const stopFirst = byId(f.userWindow['stop-first'].parts);
    assert.deepEqual([stopFirst['dns-switch']?.seconds, stopFirst['dns-switch']?.source], [30, 'default']);
  });

  it('puts the proof inside the window when it runs before the switch, at the measured rate', () => {
    const f = forecast(measured, run('prod'), { stack: 'prod', order: 'keep-serving', proof: 'before-switch' });
    const parts = byId(f.databaseWindow.parts);
    assert.deepEqual([parts.verify?.seconds, parts.verify?.source], [11, 'measured']);
    assert.equal(parts['postgres.pin-switch-point'], undefined);
    assert.equal(parts['postgres.reverse-replication'], undefined);
    assert.equal(f.databaseWindow.seconds, 18.95);
    assert.equal(f.snapshotHold.seconds, 11);
  });

  it('with no run to follow: default steps in D-day order, unknown pod start-up makes stop-first a lower bound', () => {
    const m: Measurements = {
      ...measured,
      podStartup: { ok: false, reason: 'not read: --without kube' },
      verifyRate: { ok: false, reason: 'the source has no tables to verify' },
    };
    const f = forecast(m, null, { stack: 'prod', order: 'stop-first', proof: 'after-switch' });
    assert.deepEqual(
      f.databaseWindow.parts.map((p) => p.id),
      [
        'pgbouncer.pause',
        'postgres.freeze-writes',
        'postgres.catch-up',
        'postgres.write-fence',
        'postgres.pin-switch-point',
        'postgres.sequence-sync',
        'postgres.replication-stop',
        'postgres.reverse-replication',
        'rds.create-replicas',
        'ssm.swap',
        'pgbouncer.reload',
        'pgbouncer.resume',
        'gaps',
      ],
    );
    assert.deepEqual(byId(f.databaseWindow.parts)['postgres.sequence-sync']!.seconds, 0.13);
    assert.equal(f.basedOnRun, null);
    const pods = byId(f.userWindow['stop-first'].parts)['pods-ready']!;
    assert.deepEqual([pods.seconds, pods.source, pods.from], [null, 'unknown', 'unknown: not read: --without kube']);
    assert.equal(f.userWindow['stop-first'].lowerBound, true);
    assert.equal(f.proofRun.seconds, null);
    assert.ok(f.notes.includes('pod start-up unknown: not read: --without kube'));
    assert.match(formatForecast(f), /EKS app pods ready\s+unknown/);
  });

  it('without a PgBouncer console, new PgBouncer pods end the database window', () => {
    const f = forecast({ ...measured, pgbouncerAdmin: false }, null, { stack: 'prod', order: 'keep-serving', proof: 'after-switch' });
    const ids = f.databaseWindow.parts.map((p) => p.id);
    assert.ok(!ids.includes('pgbouncer.pause') && ids.at(-2) === 'kube.restart');
    assert.deepEqual(
      [byId(f.databaseWindow.parts)['kube.restart']!.seconds, byId(f.databaseWindow.parts)['kube.restart']!.source],
      [20, 'measured'],
    );
  });
});

describe('the window budget', () => {
  const f = forecast(measured, run('prod'), { stack: 'prod', order: 'keep-serving', proof: 'after-switch' });

  it('blocks over the budget, naming the part at which the window crosses it', () => {
    const [finding, ...rest] = budgetFindings(f, 5, 'keep-serving');
    assert.equal(rest.length, 0);
    assert.equal(finding!.severity, 'error');
    assert.equal(finding!.object, 'window users see (keep-serving)');
    assert.match(finding!.message, /forecast 8\.65 s ± 7\.15 s exceeds the budget of 5\.00 s/);
    assert.match(finding!.message, /inside the database window at catch-up \(catch-up\) 3\.00 s/);
    assert.match(finding!.message, /largest parts: database-window 8\.65 s/);
  });

  it('names the stop-first part that takes it over the budget', () => {
    const [finding] = budgetFindings(f, 30, 'stop-first');
    assert.equal(finding!.severity, 'error');
    assert.match(
      finding!.message,
      /crosses the budget at EKS app pods ready \(pods-ready\) 20 s ± 5\.25 s, measured now: median pod start-up/,
    );
    assert.doesNotMatch(finding!.message, /inside the database window/);
  });

  it('warns, without blocking, when only the tolerance reaches past the budget', () => {
    assert.deepEqual(
      budgetFindings(f, 9, 'keep-serving').map((x) => x.severity),
      ['warning'],
    );
    assert.deepEqual(budgetFindings(f, 100, 'keep-serving'), []);
  });
});
