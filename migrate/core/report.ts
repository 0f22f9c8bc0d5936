/**
 * What the operator sees. The engine emits events; a reporter renders them as readable text (with
 * an in-place progress line on a terminal, colours as Node decides them: FORCE_COLOR, NO_COLOR, a
 * terminal) or as JSON lines for machines. Every byte goes through `redact` first.
 */
import { styleText } from 'node:util';
import { redact, redactValue } from './secret.ts';
import type { Finding, Progress } from './step.ts';

export type StepOutcome = 'applied' | 'already-done' | 'skipped' | 'failed' | 'would-run' | 'blocked' | 'undone';

export type EngineEvent =
  | {
      type: 'run-start';
      runId: string;
      runbook: string;
      stack: string;
      dryRun: boolean;
      resumed: boolean;
      steps: { id: string; kind: string }[];
    }
  | { type: 'step-start'; step: string; kind: string; index: number; total: number }
  | { type: 'step-plan'; step: string; kind: string; params: unknown; lines: string[]; confirm: boolean }
  | { type: 'finding'; step: string; finding: Finding }
  | { type: 'log'; step: string; level: 'info' | 'warn'; message: string }
  | { type: 'progress'; step: string; progress: Progress }
  | { type: 'step-end'; step: string; outcome: StepOutcome; durationMs: number; reason?: string; error?: string }
  | { type: 'run-end'; runId: string; outcome: 'finished' | 'failed' | 'interrupted' | 'dry-run'; durationMs: number; journal?: string };

export interface Reporter {
  emit(event: EngineEvent): void;
  /** Ends any in-place line before other output (prompts, final summaries). */
  flush(): void;
}

/** One line of every command's `--json` output: an object with a `type` and a time `t` (ms), secrets redacted. */
export function jsonLine<E extends { type: string }>(event: E): string {
  return `${JSON.stringify(redactValue({ t: Date.now(), ...event }))}\n`;
}

export function jsonReporter(write: (line: string) => void = (l) => process.stdout.write(l)): Reporter {
  return {
    emit: (event) => write(jsonLine(event)),
    flush: () => {},
  };
}

export interface HumanReporterOptions {
  write?: (text: string) => void;
  color?: boolean;
  /** Rewrite one status line in place (a terminal); otherwise progress prints at most every few seconds. */
  live?: boolean;
  now?: () => number;
}

/** Node's own rule (what `styleText` checks on Node 22.13+): FORCE_COLOR wins, then NO_COLOR, a dumb terminal, a terminal. */
export function colorEnabled(stream: NodeJS.WriteStream = process.stdout): boolean {
  const force = process.env.FORCE_COLOR;
  if (force !== undefined) return ['', '1', '2', '3', 'true'].includes(force);
  if (process.env.NO_COLOR) return false;
  return Boolean(stream.isTTY) && process.env.TERM !== 'dumb';
}

type Style = Parameters<typeof styleText>[0];

/**
 * Colours decided once, by `colorEnabled`, then applied by `styleText`. validateStream is off because
 * the decision is already made (and may be for a writer that is not process.stdout); Node 20, whose
 * styleText always colours, only validates with it.
 */
function painter(color: boolean): (style: Style, text: string) => string {
  return (style, text) => (color ? styleText(style, text, { validateStream: false }) : text);
}

/** Clears an in-place line on a terminal: cursor control, which styleText does not do. */
const CLEAR_LINE = '\r\x1b[2K';

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.floor(ms / 1000);
  const [h, m, s] = [Math.floor(seconds / 3600), Math.floor((seconds % 3600) / 60), seconds % 60];
  return h > 0 ? `${h} h ${m} min` : `${m} min ${s} s`;
}

export function formatProgress(p: Progress, now: number): string {
  const parts = [p.label];
  if (p.done !== undefined && p.total !== undefined) {
    const pct = p.total > 0 ? ` (${Math.floor((100 * p.done) / p.total)}%)` : '';
    parts.push(`${p.done}/${p.total}${p.unit ? ` ${p.unit}` : ''}${pct}`);
  } else if (p.done !== undefined) parts.push(`${p.done}${p.unit ? ` ${p.unit}` : ''}`);
  if (p.detail) parts.push(p.detail);
  if (p.deadline !== undefined) parts.push(`${formatDuration(Math.max(0, p.deadline - now))} left`);
  return parts.join(' · ');
}

export function humanReporter(options: HumanReporterOptions = {}): Reporter {
  const write = options.write ?? ((t: string) => process.stdout.write(t));
  const color = options.color ?? colorEnabled();
  const live = options.live ?? (Boolean(process.stdout.isTTY) && color);
  const now = options.now ?? Date.now;
  const paint = painter(color);
  const green = (t: string) => paint('green', t);
  const yellow = (t: string) => paint('yellow', t);
  const red = (t: string) => paint('red', t);
  const dim = (t: string) => paint('dim', t);
  const bold = (t: string) => paint('bold', t);
  let liveLine = false;
  let lastProgressPrint = 0;
  const flush = () => {
    if (liveLine) write(CLEAR_LINE);
    liveLine = false;
  };
  const line = (text: string) => {
    flush();
    write(`${redact(text)}\n`);
  };
  const icon: Record<StepOutcome, string> = {
    applied: green('✔'),
    'already-done': green('✔'),
    undone: green('↺'),
    skipped: yellow('↷'),
    'would-run': dim('•'),
    failed: red('✖'),
    blocked: red('✖'),
  };
  return {
    flush,
    emit(event) {
      switch (event.type) {
        case 'run-start':
          line(
            bold(`${event.dryRun ? 'Dry run of' : event.resumed ? 'Resuming' : 'Running'} ${event.runbook} on stack ${event.stack}`) +
              dim(` (run ${event.runId}, ${event.steps.length} steps)`),
          );
          break;
        case 'step-start':
          line(`${dim(`[${event.index + 1}/${event.total}]`)} ${bold(event.step)} ${dim(event.kind)}`);
          break;
        case 'step-plan':
          line(`  ${dim('with')} ${JSON.stringify(event.params)}`);
          for (const l of event.lines) line(`  ${dim('→')} ${l}`);
          if (event.confirm) line(`  ${yellow('!')} asks for confirmation before it changes anything`);
          break;
        case 'finding': {
          const f = event.finding;
          const tag = f.severity === 'error' ? red('error') : f.severity === 'warning' ? yellow('warning') : dim('info');
          line(`  ${tag} ${f.object}: ${f.message}${f.fix ? `\n      ${dim('fix:')} ${f.fix}` : ''}`);
          break;
        }
        case 'log':
          line(`  ${event.level === 'warn' ? yellow('warning: ') : ''}${event.message}`);
          break;
        case 'progress': {
          const text = `  ${dim('…')} ${formatProgress(event.progress, now())}`;
          if (live) {
            flush();
            write(redact(text).slice(0, (process.stdout.columns || 120) - 1));
            liveLine = true;
          } else if (now() - lastProgressPrint >= 5000) {
            lastProgressPrint = now();
            line(text);
          }
          break;
        }
        case 'step-end': {
          const detail = event.error ? ` ${red(event.error)}` : event.reason ? ` ${dim(event.reason)}` : '';
          line(`  ${icon[event.outcome]} ${event.outcome} ${dim(`in ${formatDuration(event.durationMs)}`)}${detail}`);
          break;
        }
        case 'run-end': {
          const outcome = event.outcome === 'finished' || event.outcome === 'dry-run' ? green(event.outcome) : red(event.outcome);
          line(
            `${bold('Run')} ${event.runId} ${outcome} in ${formatDuration(event.durationMs)}${event.journal ? dim(` — journal ${event.journal}`) : ''}`,
          );
          break;
        }
      }
    },
  };
}
