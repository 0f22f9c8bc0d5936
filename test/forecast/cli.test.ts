/**
 * `migrate forecast` and `migrate timeline` as an operator runs them, on real servers: the table
 * without colour under NO_COLOR, JSON lines with a type and a time, `--window-budget` exiting 4
 * with the part named, following the stack's newest d-day journal, and the SVG written from it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DOMParser } from '@xmldom/xmldom';
import { Journal, journalPath } from '../../migrate/core/journal.ts';
import { cli, describeResult } from '../cli/support.ts';
import { type Pair, SCHEMA, SEED, startPair } from '../postgres/fixtures.ts';

const T0 = Date.parse('2026-12-01T10:00:00Z');

/** A finished d-day run of the stack, as the engine journals one: a 0.3 s window from pause to resume. */
function journalRun(stateDir: string, stack: string): string {
  const steps: [string, string, number, number][] = [
    ['pause-pgbouncer', 'pgbouncer.pause', 0, 50],
    ['freeze', 'postgres.freeze-writes', 50, 100],
    ['catch-up', 'postgres.catch-up', 150, 100],
    ['resume-pgbouncer', 'pgbouncer.resume', 250, 50],
  ];
  const journal = Journal.create(stateDir, stack, 'd-day-20261201T100000-abcd');
  journal.append(
    {
      type: 'run-started',
      runId: 'd-day-20261201T100000-abcd',
      stack,
      runbook: { path: 'runbooks/d-day.yaml', name: 'd-day', sha256: '0' },
      config: {},
      options: { capabilities: ['postgres'] },
      steps: steps.map(([id]) => id),
    },
    T0,
  );
  for (const [id, kind, at, ms] of steps) {
    journal.append({ type: 'step-started', step: id, kind }, T0 + at);
    journal.append({ type: 'step-finished', step: id, status: 'applied', result: null, durationMs: ms }, T0 + at + ms);
  }
  journal.append({ type: 'run-finished', durationMs: 300 }, T0 + 300);
  journal.close();
  return journalPath(stateDir, stack, 'd-day-20261201T100000-abcd');
}

describe('migrate forecast and migrate timeline', () => {
  let pair: Pair;
  let outputs: string;
  let stateDir: string;
  const base = () => ['--outputs', outputs, '--state-dir', stateDir];
  const quick = ['--wal-interval-ms', '200', '--sample-rows', '500'];

  before(async () => {
    pair = await startPair();
    await pair.sql('source', `${SCHEMA + SEED}; analyze;`);
    outputs = join(pair.dir, 'outputs.json');
    writeFileSync(outputs, JSON.stringify(pair.outputs), { mode: 0o600 });
    stateDir = join(mkdtempSync(join(tmpdir(), 'forecast-cli-')), 'state');
  });
  after(async () => {
    await pair?.stop();
  });

  it('refuses a budget the forecast exceeds: exit 4, the part named, the table without colour', async () => {
    const r = await cli([...base(), '--without', 'kube', 'forecast', ...quick, '--window-budget', '0.001']);
    assert.equal(r.code, 4, describeResult(r));
    assert.match(r.stdout, /^Forecast for stack rehearsal \(order keep-serving, proof after-switch\), no earlier run to follow/);
    assert.match(r.stdout, /Database write window \(pause → resume\)/);
    assert.match(r.stdout, /note: pod start-up unknown: not read: --without kube/);
    assert.match(r.stdout, /note: replication lag unknown: subscription migrate_sub does not exist on the target/);
    assert.ok(!r.stdout.includes('\x1b['), 'NO_COLOR: no escape sequences');
    assert.match(
      r.stderr,
      /exceeds the budget of 0\.00 s: it crosses the budget at database write window \(database-window\).*inside the database window at freeze writes on the source/,
    );
    assert.ok(!(r.stdout + r.stderr).includes(pair.target.password), 'no secret in the output');
  });

  it('migrate run d-day --window-budget: the go/no-go refuses before any other step starts', async () => {
    const state = join(mkdtempSync(join(tmpdir(), 'forecast-budget-run-')), 'state');
    const args = ['--outputs', outputs, '--state-dir', state, '--json', '--without', 'aws,kube,pgbouncer,http,shell'];
    const r = await cli([...args, 'run', 'runbooks/d-day.yaml', '--yes', '--window-budget', '0.001']);
    assert.equal(r.code, 4, describeResult(r));
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; step?: string; finding?: { message: string } });
    assert.deepEqual(
      events.filter((e) => e.type === 'step-start').map((e) => e.step),
      ['go-no-go-forecast'],
      'nothing after the forecast started',
    );
    assert.ok(events.some((e) => e.type === 'finding' && /exceeds the budget of 0\.00 s/.test(e.finding?.message ?? '')));
    const roles = await pair.sql('source', 'select count(*)::int as n from pg_db_role_setting');
    assert.equal(roles.rows[0].n, 0, 'nothing was frozen');
  });

  it('prints JSON lines, each with a type and a time, following the newest d-day run', async () => {
    journalRun(stateDir, 'rehearsal');
    const r = await cli([...base(), '--json', '--without', 'kube', 'forecast', ...quick, '--order', 'stop-first']);
    assert.equal(r.code, 0, describeResult(r));
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => l.type),
      ['measurements', 'forecast'],
    );
    for (const l of lines) assert.equal(typeof l.t, 'number');
    const [measurements, forecast] = lines;
    assert.ok(measurements.walBytesPerSecond.ok && measurements.tables.value.count === 4);
    assert.equal(forecast.basedOnRun, 'd-day-20261201T100000-abcd');
    assert.equal(forecast.order, 'stop-first');
    assert.deepEqual(
      forecast.databaseWindow.parts.slice(0, 3).map((p: { id: string; source: string }) => [p.id, p.source]),
      [
        ['pause-pgbouncer', 'run'],
        ['freeze', 'run'],
        ['catch-up', 'run'],
      ],
    );
    assert.equal(forecast.userWindow['stop-first'].lowerBound, true, 'pod start-up unknown without kube');
  });

  it('draws the timeline of the newest d-day run as an SVG', async () => {
    const out = join(pair.dir, 'timeline.svg');
    const r = await cli([...base(), 'timeline', '--out', out]);
    assert.equal(r.code, 0, describeResult(r));
    assert.match(r.stdout, /Timeline of run d-day-20261201T100000-abcd written to/);
    const errors: string[] = [];
    const doc = new DOMParser({ onError: (level, m) => errors.push(`${level} ${m}`) }).parseFromString(
      readFileSync(out, 'utf8'),
      'image/svg+xml',
    );
    assert.deepEqual(errors, []);
    const steps = [...(doc.getElementsByTagName('g') as unknown as Iterable<{ getAttribute(n: string): string | null }>)].filter(
      (g) => g.getAttribute('class') === 'step',
    );
    assert.deepEqual(
      steps.map((g) => g.getAttribute('data-step')),
      ['pause-pgbouncer', 'freeze', 'catch-up', 'resume-pgbouncer'],
    );
    const missing = await cli([...base(), 'timeline', '--run', 'no-such-run', '--out', out]);
    assert.equal(missing.code, 2, describeResult(missing));
    assert.match(missing.stderr, /--run no-such-run: stack 'rehearsal' has no such run/);
  });
});
