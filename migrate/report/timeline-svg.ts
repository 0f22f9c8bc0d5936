/**
 * A run's timeline as one standalone SVG a person reads at a glance: every step on a time axis (one
 * row each, grouped by runbook), the write window marked across them, the forecast's parts beside
 * the measured window, and what named clients saw (writes per second, failed writes, the longest
 * gap). When the window is a sliver of the whole run, a second panel shows it zoomed.
 *
 * No external assets, no script. Every text is user data (step ids, notes, client names) and goes
 * through `xml()`: escaped, and stripped of the control characters XML cannot carry at all.
 */

export type TimelineStep = {
  id: string;
  kind: string;
  /** The row group: the runbook (or run) the step belongs to. */
  lane: string;
  /** Epoch ms. */
  start: number;
  end: number;
  outcome: string;
  note?: string;
};

/** What one client saw: each attempt (`ok` false for a failed write), or per-second counts. */
export type ClientSeries = {
  name: string;
  role: 'database' | 'user';
  events?: { t: number; ok: boolean }[];
  perSecond?: { t: number; ok: number; error: number }[];
};

export type ForecastBar = { id: string; label: string; seconds: number | null; tolerance: number; source: string };

export type TimelineInput = {
  title: string;
  subtitle?: string;
  steps: TimelineStep[];
  /** The measured write window (epoch ms). */
  window?: { start: number; end: number; label?: string };
  clients?: ClientSeries[];
  /** Drawn end to end from `start` (default: the window's start), beside the measured window. */
  forecast?: { label: string; start?: number; parts: ForecastBar[] };
  /** Time zero of the axis (default: the first step's start). */
  origin?: number;
};

const WIDTH = 1200;
const LABEL_W = 280;
const PLOT_X = LABEL_W + 10;
const PLOT_W = WIDTH - PLOT_X - 20;
const ROW = 18;
const CLIENT_ROW = 42;
const COLORS: Record<string, string> = {
  applied: '#2e7d32',
  'already-done': '#81c784',
  skipped: '#bdbdbd',
  failed: '#c62828',
  running: '#f9a825',
  pending: '#e0e0e0',
};
const WINDOW_FILL = '#ff9800';
const FORECAST_FILL = '#5c6bc0';
const OK_FILL = '#26a69a';
const ERROR_FILL = '#d32f2f';

/** Escaped for element text and attribute values alike. */
export function xml(text: string): string {
  return (
    text
      // biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly the characters XML 1.0 cannot carry
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/'/g, '&apos;')
  );
}

const n = (v: number) => (Math.round(v * 10) / 10).toString();

function seconds(s: number): string {
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  return `${(s / 60).toFixed(1)} min`;
}

/** 1, 2 or 5 × 10^k seconds, so that about `count` ticks fit the span. */
export function tickStep(spanSeconds: number, count = 8): number {
  const raw = Math.max(spanSeconds / count, 0.001);
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw) ?? 10 * power;
}

type Range = { from: number; to: number };

function scale(range: Range): (t: number) => number {
  const span = Math.max(1, range.to - range.from);
  return (t) => PLOT_X + (Math.min(Math.max(t, range.from), range.to) - range.from) * (PLOT_W / span);
}

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${n(x)}" y="${n(y)}"${attrs ? ` ${attrs}` : ''}>${xml(content)}</text>`;
}

function axis(range: Range, origin: number, y: number, height: number): string {
  const x = scale(range);
  const step = tickStep((range.to - range.from) / 1000) * 1000;
  const out = [`<g class="axis">`, `<line x1="${PLOT_X}" y1="${y}" x2="${PLOT_X + PLOT_W}" y2="${y}" stroke="#616161"/>`];
  const first = Math.ceil((range.from - origin) / step) * step + origin;
  for (let t = first; t <= range.to + 1e-6; t += step) {
    const tx = x(t);
    out.push(
      `<line x1="${n(tx)}" y1="${y}" x2="${n(tx)}" y2="${y + height}" stroke="#eeeeee"/>`,
      `<line x1="${n(tx)}" y1="${y - 4}" x2="${n(tx)}" y2="${y}" stroke="#616161"/>`,
      text(tx, y - 7, `${n((t - origin) / 1000)} s`, 'text-anchor="middle" font-size="10" fill="#424242"'),
    );
  }
  out.push('</g>');
  return out.join('');
}

function gaps(events: { t: number; ok: boolean }[]): { start: number; end: number } | undefined {
  const ok = events.filter((e) => e.ok).map((e) => e.t);
  ok.sort((a, b) => a - b);
  let best: { start: number; end: number } | undefined;
  for (let i = 1; i < ok.length; i++) if (!best || ok[i]! - ok[i - 1]! > best.end - best.start) best = { start: ok[i - 1]!, end: ok[i]! };
  return best;
}

function perSecondOf(client: ClientSeries): { t: number; ok: number; error: number }[] {
  if (client.perSecond) return client.perSecond;
  const buckets = new Map<number, { t: number; ok: number; error: number }>();
  for (const e of client.events ?? []) {
    const t = Math.floor(e.t / 1000) * 1000;
    const b = buckets.get(t) ?? { t, ok: 0, error: 0 };
    if (e.ok) b.ok++;
    else b.error++;
    buckets.set(t, b);
  }
  return [...buckets.values()].sort((a, b) => a.t - b.t);
}

/** One panel: axis, step rows by lane, the forecast beside the measured window, the clients. Returns its height. */
function panel(input: TimelineInput, range: Range, origin: number, top: number, zoom: boolean): { svg: string; height: number } {
  const x = scale(range);
  const rows: string[] = [];
  let y = top + 42;
  const stepClass = zoom ? 'step-zoom' : 'step';
  const steps = zoom ? input.steps.filter((s) => s.end >= range.from && s.start <= range.to) : input.steps;
  const lanes = [...new Set(steps.map((s) => s.lane))];
  for (const lane of lanes) {
    rows.push(text(8, y + 13, lane, 'font-weight="bold" class="lane"'));
    y += ROW;
    for (const s of steps.filter((st) => st.lane === lane)) {
      const x1 = x(s.start);
      const w = Math.max(2, x(s.end) - x1);
      const duration = seconds(Math.max(0, s.end - s.start) / 1000);
      const tip = `${s.id} (${s.kind}): ${s.outcome}, ${duration}${s.note ? ` — ${s.note}` : ''}`;
      rows.push(
        `<g class="${stepClass}" data-step="${xml(s.id)}"><title>${xml(tip)}</title>`,
        text(16, y + 13, s.id.length > 40 ? `${s.id.slice(0, 39)}…` : s.id, 'font-size="11"'),
        `<rect x="${n(x1)}" y="${y + 3}" width="${n(w)}" height="${ROW - 6}" fill="${COLORS[s.outcome] ?? '#9e9e9e'}"/>`,
        x1 + w + 4 < PLOT_X + PLOT_W - 40 ? text(x1 + w + 4, y + 13, duration, 'font-size="10" fill="#616161"') : '',
        '</g>',
      );
      y += ROW;
    }
  }
  const window = input.window;
  if (window) {
    rows.push(`<g class="compare">`, text(8, y + 13, 'measured window vs forecast', 'font-weight="bold"'));
    y += ROW;
    const wx = x(window.start);
    rows.push(
      text(16, y + 13, `measured ${seconds((window.end - window.start) / 1000)}`, 'font-size="11"'),
      `<rect class="measured-window" x="${n(wx)}" y="${y + 3}" width="${n(Math.max(2, x(window.end) - wx))}" height="${ROW - 6}" fill="${WINDOW_FILL}"/>`,
    );
    y += ROW;
    rows.push('</g>');
  }
  const forecast = input.forecast;
  if (forecast) {
    let t = forecast.start ?? window?.start ?? range.from;
    const known = forecast.parts.reduce((sum, p) => sum + (p.seconds ?? 0), 0);
    rows.push(
      `<g class="forecast">`,
      text(
        16,
        y + 13,
        `${forecast.label}: ${forecast.parts.some((p) => p.seconds === null) ? '≥ ' : ''}${seconds(known)}`,
        'font-size="11"',
      ),
    );
    y += ROW;
    for (const p of forecast.parts) {
      const x1 = x(t);
      const end = t + (p.seconds ?? 0) * 1000;
      const w = Math.max(2, x(end) - x1);
      const whisker = x(end + p.tolerance * 1000);
      const figure = p.seconds === null ? 'unknown' : `${seconds(p.seconds)} ± ${seconds(p.tolerance)}`;
      rows.push(
        `<g class="forecast-part" data-part="${xml(p.id)}"><title>${xml(`${p.label}: ${figure} (${p.source})`)}</title>`,
        text(24, y + 13, p.label.length > 38 ? `${p.label.slice(0, 37)}…` : p.label, 'font-size="10" fill="#3949ab"'),
        p.seconds === null
          ? text(x1 + 2, y + 13, 'unknown', 'font-size="10" fill="#c62828"')
          : `<rect x="${n(x1)}" y="${y + 4}" width="${n(w)}" height="${ROW - 8}" fill="${FORECAST_FILL}" fill-opacity="0.75"/>` +
              `<line x1="${n(x1 + w)}" y1="${y + ROW / 2}" x2="${n(Math.max(whisker, x1 + w))}" y2="${y + ROW / 2}" stroke="${FORECAST_FILL}"/>`,
        '</g>',
      );
      t = end;
      y += ROW;
    }
    rows.push('</g>');
  }
  for (const client of input.clients ?? []) {
    const buckets = perSecondOf(client).filter((b) => b.t + 1000 >= range.from && b.t <= range.to);
    const max = Math.max(1, ...buckets.map((b) => b.ok));
    // The longest gap of the whole series, in both panels: the zoomed one clips it, it does not shorten it.
    const gap = client.events ? gaps(client.events) : undefined;
    const errors = (client.events ?? []).filter((e) => !e.ok && e.t >= range.from && e.t <= range.to);
    const base = y + CLIENT_ROW - 4;
    // Zoomed, one line per successful write: per-second bars would be wider than the window itself.
    const ticks = zoom && client.events ? client.events.filter((e) => e.ok && e.t >= range.from && e.t <= range.to) : [];
    const parts = [
      `<g class="client" data-client="${xml(client.name)}">`,
      text(8, y + 14, `${client.name} (${client.role === 'user' ? 'user-facing' : 'database'} client)`, 'font-size="11"'),
      text(
        16,
        y + 28,
        `${ticks.length ? 'each line a successful write' : `writes/s (max ${max})`}${gap ? `, longest gap ${seconds((gap.end - gap.start) / 1000)}` : ''}`,
        'font-size="10" fill="#616161"',
      ),
    ];
    for (const e of ticks.slice(0, 5000))
      parts.push(`<line x1="${n(x(e.t))}" y1="${y + 8}" x2="${n(x(e.t))}" y2="${base}" stroke="${OK_FILL}"/>`);
    for (const b of ticks.length ? [] : buckets) {
      const x1 = x(b.t);
      const h = ((CLIENT_ROW - 8) * b.ok) / max;
      parts.push(
        `<rect x="${n(x1)}" y="${n(base - h)}" width="${n(Math.max(1, x(b.t + 1000) - x1 - 1))}" height="${n(h)}" fill="${OK_FILL}"/>`,
      );
    }
    if (gap && gap.end >= range.from && gap.start <= range.to)
      parts.push(
        `<rect class="gap" x="${n(x(gap.start))}" y="${y + 2}" width="${n(Math.max(2, x(gap.end) - x(gap.start)))}" height="${CLIENT_ROW - 6}" fill="none" stroke="${ERROR_FILL}" stroke-dasharray="3,2"/>`,
      );
    for (const e of errors) parts.push(`<line x1="${n(x(e.t))}" y1="${y + 2}" x2="${n(x(e.t))}" y2="${base}" stroke="${ERROR_FILL}"/>`);
    if (!client.events)
      for (const b of buckets.filter((bb) => bb.error > 0))
        parts.push(`<rect x="${n(x(b.t))}" y="${y + 2}" width="3" height="${CLIENT_ROW - 6}" fill="${ERROR_FILL}"/>`);
    parts.push('</g>');
    rows.push(...parts);
    y += CLIENT_ROW;
  }
  const height = y - top + 10;
  const band = window
    ? `<g class="window${zoom ? '-zoom' : ''}"><title>${xml(window.label ?? 'write window')}: ${xml(seconds((window.end - window.start) / 1000))}</title>` +
      `<rect x="${n(x(window.start))}" y="${top + 16}" width="${n(Math.max(2, x(window.end) - x(window.start)))}" height="${n(height - 16)}" fill="${WINDOW_FILL}" fill-opacity="0.18" stroke="${WINDOW_FILL}"/>` +
      text(
        x(window.start),
        top + 18,
        `${window.label ?? 'write window'} ${seconds((window.end - window.start) / 1000)}`,
        `font-size="10" fill="#e65100"${x(window.start) > PLOT_X + PLOT_W - 150 ? ' text-anchor="end"' : ''}`,
      ) +
      '</g>'
    : '';
  return { svg: [axis(range, origin, top + 42, height - 42), band, ...rows].join('\n'), height };
}

function legend(y: number): { svg: string; height: number } {
  const items: [string, string][] = [
    [COLORS.applied!, 'step applied'],
    [COLORS.skipped!, 'skipped'],
    [COLORS.failed!, 'failed'],
    [WINDOW_FILL, 'write window (pause → resume)'],
    [FORECAST_FILL, 'forecast part (line: ± tolerance)'],
    [OK_FILL, 'successful writes per second'],
    [ERROR_FILL, 'failed write / longest gap (dashed)'],
  ];
  const out = ['<g class="legend">'];
  let x = 8;
  for (const [color, label] of items) {
    out.push(`<rect x="${x}" y="${y}" width="10" height="10" fill="${color}"/>`, text(x + 14, y + 9, label, 'font-size="10"'));
    x += 24 + label.length * 5.6;
  }
  out.push('</g>');
  return { svg: out.join(''), height: 24 };
}

export function renderTimeline(input: TimelineInput): string {
  const times = [
    ...input.steps.flatMap((s) => [s.start, s.end]),
    ...(input.window ? [input.window.start, input.window.end] : []),
    ...(input.clients ?? []).flatMap((c) => [...(c.events ?? []).map((e) => e.t), ...(c.perSecond ?? []).map((b) => b.t)]),
  ];
  const origin = input.origin ?? (input.steps.length ? Math.min(...input.steps.map((s) => s.start)) : (times[0] ?? 0));
  const full: Range = { from: Math.min(origin, ...times), to: Math.max(origin + 1000, ...times) };
  const forecastMs = (input.forecast?.parts ?? []).reduce((sum, p) => sum + ((p.seconds ?? 0) + p.tolerance) * 1000, 0);
  if (input.forecast) full.to = Math.max(full.to, (input.forecast.start ?? input.window?.start ?? full.from) + forecastMs);
  const parts: string[] = [];
  let y = 0;
  parts.push(text(8, 22, input.title, 'font-size="16" font-weight="bold"'));
  y += 28;
  if (input.subtitle) {
    parts.push(text(8, y + 12, input.subtitle, 'font-size="11" fill="#424242"'));
    y += 18;
  }
  const main = panel(input, full, origin, y, false);
  parts.push(`<g class="panel">${main.svg}</g>`);
  y += main.height;
  const w = input.window;
  if (w && w.end - w.start < 0.1 * (full.to - full.from)) {
    const span = Math.max(w.end - w.start, forecastMs, 200);
    const zoom: Range = { from: w.start - span * 0.5, to: w.start + span * 1.6 };
    parts.push(text(8, y + 16, 'The write window, zoomed', 'font-size="13" font-weight="bold"'));
    y += 24;
    const detail = panel(input, zoom, origin, y, true);
    parts.push(`<g class="panel zoom">${detail.svg}</g>`);
    y += detail.height;
  }
  const key = legend(y + 6);
  parts.push(key.svg);
  y += key.height + 10;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${n(y)}" viewBox="0 0 ${WIDTH} ${n(y)}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`,
    `<title>${xml(input.title)}</title>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
