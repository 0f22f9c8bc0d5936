/**
 * The timeline picture: well-formed XML (parsed by a real XML parser), one element per step with its
 * id escaped, the write window marked, the forecast beside it, clients' gaps, and user data with
 * `<&"` (and control characters XML cannot carry) escaped rather than breaking the document.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DOMParser, type Element } from '@xmldom/xmldom';
import { Journal, runState } from '../../migrate/core/journal.ts';
import { forecast } from '../../migrate/forecast/model.ts';
import type { Measurements } from '../../migrate/forecast/types.ts';
import { timelineInput } from '../../migrate/report/timeline-input.ts';
import { renderTimeline, tickStep, xml } from '../../migrate/report/timeline-svg.ts';

function parse(svg: string) {
  const errors: string[] = [];
  const doc = new DOMParser({ onError: (level, message) => errors.push(`${level}: ${message}`) }).parseFromString(svg, 'image/svg+xml');
  assert.deepEqual(errors, [], 'well-formed XML');
  return doc;
}

const byClass = (doc: ReturnType<typeof parse>, cls: string) =>
  [...(doc.getElementsByTagName('g') as unknown as Iterable<Element>)].filter((g) =>
    (g.getAttribute('class') ?? '').split(' ').includes(cls),
  );

const T0 = Date.parse('2026-12-01T10:00:00Z');
const HOSTILE = 'step <b>"x" & \'y\'\u0001';

describe('the timeline SVG', () => {
  const steps = [
    { id: 'go', kind: 'forecast.window', lane: 'd-day', start: T0, end: T0 + 3000, outcome: 'applied' },
    {
      id: HOSTILE,
      kind: 'test.odd',
      lane: 'd-day <lane>',
      start: T0 + 3000,
      end: T0 + 3500,
      outcome: 'skipped',
      note: 'needs AWS & "more"',
    },
    { id: 'pause-pgbouncer', kind: 'pgbouncer.pause', lane: 'd-day', start: T0 + 60_000, end: T0 + 60_050, outcome: 'applied' },
    { id: 'resume-pgbouncer', kind: 'pgbouncer.resume', lane: 'd-day', start: T0 + 60_200, end: T0 + 60_250, outcome: 'applied' },
    { id: 'switch-dns', kind: 'dns.switch', lane: 'd-day', start: T0 + 61_000, end: T0 + 90_000, outcome: 'failed' },
  ];
  const events = [
    ...Array.from({ length: 1200 }, (_, i) => ({ t: T0 + i * 100, ok: true })).filter((e) => e.t < T0 + 60_000 || e.t > T0 + 60_250),
    { t: T0 + 60_100, ok: false },
  ];
  const input = {
    title: 'd-day <rehearsal> & "friends"',
    steps,
    window: { start: T0 + 60_000, end: T0 + 60_250 },
    clients: [
      { name: 'app writers <db>', role: 'database' as const, events },
      {
        name: 'user & browser',
        role: 'user' as const,
        perSecond: [
          { t: T0 + 59_000, ok: 5, error: 0 },
          { t: T0 + 60_000, ok: 0, error: 2 },
        ],
      },
    ],
    forecast: {
      label: 'forecast <window>',
      parts: [
        { id: 'pause', label: 'PAUSE & wait', seconds: 0.1, tolerance: 0.3, source: 'run' },
        { id: 'pods', label: 'pods', seconds: null, tolerance: 0, source: 'unknown' },
      ],
    },
  };
  const svg = renderTimeline(input);
  const doc = parse(svg);

  it('has one element per step, its id escaped and readable back', () => {
    const rows = byClass(doc, 'step');
    // Grouped by lane (runbook), each lane's steps in order.
    assert.deepEqual(
      rows.map((g) => g.getAttribute('data-step')),
      ['go', 'pause-pgbouncer', 'resume-pgbouncer', 'switch-dns', HOSTILE.replace('\u0001', '')],
    );
    assert.ok(svg.includes('data-step="step &lt;b&gt;&quot;x&quot; &amp; &apos;y&apos;"'), 'escaped in the attribute');
    assert.ok(!svg.includes('<b>'), 'no user text becomes markup');
    assert.ok(!svg.includes('\u0001'), 'no character XML cannot carry');
    const title = rows[4]!.getElementsByTagName('title')[0]!.textContent!;
    assert.match(title, /needs AWS & "more"/);
  });

  it('marks the window, and zooms on it when it is a sliver of the run', () => {
    const [band] = byClass(doc, 'window');
    assert.ok(band, 'the window band');
    assert.match(band!.getElementsByTagName('title')[0]!.textContent!, /write window: 250 ms/);
    assert.equal(byClass(doc, 'window-zoom').length, 1);
    // The zoomed panel holds the steps around the window only.
    assert.deepEqual(
      byClass(doc, 'step-zoom').map((g) => g.getAttribute('data-step')),
      ['pause-pgbouncer', 'resume-pgbouncer'],
    );
  });

  it('sets the forecast beside the measured window, and shows the clients with their longest gap', () => {
    assert.deepEqual(
      byClass(doc, 'forecast-part').map((g) => g.getAttribute('data-part')),
      ['pause', 'pods', 'pause', 'pods'],
    );
    const clients = byClass(doc, 'client');
    assert.deepEqual(clients.map((g) => g.getAttribute('data-client')).slice(0, 2), ['app writers <db>', 'user & browser']);
    assert.match(clients[0]!.textContent!, /longest gap 400 ms/);
    assert.ok(svg.includes('class="gap"'));
  });

  it('labels the axis in seconds, with a legend, and references nothing outside itself', () => {
    assert.ok(svg.includes('>0 s</text>') && svg.includes('>20 s</text>'));
    assert.ok(byClass(doc, 'legend').length === 1);
    assert.doesNotMatch(svg, /href|<script|url\(/);
    assert.equal(tickStep(90), 20);
    assert.equal(tickStep(0.25), 0.05);
    assert.equal(xml('<&"\'>'), '&lt;&amp;&quot;&apos;&gt;');
  });

  it('is built from a journal, with the forecast its forecast.window step made', () => {
    const dir = mkdtempSync(join(tmpdir(), 'timeline-'));
    const path = join(dir, 'run.jsonl');
    const journal = new Journal(path);
    const m: Measurements = {
      at: new Date(T0).toISOString(),
      walBytesPerSecond: { ok: false, reason: 'x' },
      replicationLag: { ok: false, reason: 'x' },
      longestTransaction: { ok: false, reason: 'x' },
      sequences: { ok: false, reason: 'x' },
      tables: { ok: false, reason: 'x' },
      verifyRate: { ok: false, reason: 'x' },
      dns: { app: { ttl: 300, cutoverTtl: 60 }, webhooks: { ttl: 300, cutoverTtl: 60 } },
      podStartup: { ok: false, reason: 'x' },
      pgbouncerAdmin: true,
    };
    const predicted = forecast(m, null, { stack: 'rehearsal', order: 'keep-serving', proof: 'after-switch' });
    const ids = ['go', 'pause-pgbouncer', 'freeze', 'resume-pgbouncer'];
    const kinds = ['forecast.window', 'pgbouncer.pause', 'postgres.freeze-writes', 'pgbouncer.resume'];
    journal.append(
      {
        type: 'run-started',
        runId: 'd-day-x',
        stack: 'rehearsal',
        runbook: { path: 'd-day.yaml', name: 'd-day', sha256: '0' },
        config: {},
        options: { capabilities: [] },
        steps: ids,
      },
      T0,
    );
    ids.forEach((id, i) => {
      journal.append({ type: 'step-started', step: id, kind: kinds[i]! }, T0 + i * 1000);
      journal.append(
        { type: 'step-finished', step: id, status: 'applied', result: id === 'go' ? predicted : null, durationMs: 100 },
        T0 + i * 1000 + 100,
      );
    });
    journal.append({ type: 'run-finished', durationMs: 4000 }, T0 + 4000);
    journal.close();
    // The writers wrote all rehearsal long: only what falls around this run is drawn.
    const writes = [T0 - 3_600_000, T0 + 500, T0 + 3500, T0 + 3_600_000].map((t) => ({ t, ok: true }));
    const input = timelineInput([runState(path)], { clients: [{ name: 'app writers', role: 'database', events: writes }] });
    assert.deepEqual(
      input.clients?.[0]?.events?.map((e) => e.t),
      [T0 + 500, T0 + 3500],
    );
    assert.deepEqual(input.window, { start: T0 + 1000, end: T0 + 3100, label: 'write window' });
    assert.equal(input.forecast?.parts.length, predicted.databaseWindow.parts.length);
    const built = parse(renderTimeline(input));
    assert.equal(byClass(built, 'step').length, 4);
    assert.equal(byClass(built, 'window').length, 1);
  });
});
