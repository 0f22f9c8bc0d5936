/**
 * The append-only journal of a run: one JSON event per line in `<state>/<stack>/runs/<run id>.jsonl`,
 * fsynced after every append, so after `kill -9` the journal holds every change a step made (steps
 * record a change before making it). Every event is redacted before it is written.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { redactValue } from './secret.ts';
import { readableStateDir, stateDirFailure } from './state-dir.ts';
import type { Finding, Json } from './step.ts';

export type StepStatus = 'applied' | 'already-done' | 'skipped';

export type JournalEvent =
  | {
      type: 'run-started';
      runId: string;
      stack: string;
      runbook: { path: string; name: string; sha256: string };
      config: Record<string, unknown>;
      options: { from?: string; only?: string; capabilities: string[] };
      steps: string[];
    }
  /** `capabilities`: what this attempt could reach (the original run's unless the operator overrode them). */
  | { type: 'run-resumed'; attempt: number; capabilities?: string[] }
  | { type: 'step-started'; step: string; kind: string }
  | { type: 'step-change'; step: string; change: Json }
  | { type: 'step-finished'; step: string; status: StepStatus; result: Json; reason?: string; findings?: Finding[]; durationMs: number }
  | { type: 'step-failed'; step: string; error: string; findings?: Finding[]; durationMs: number }
  | { type: 'run-finished'; durationMs: number }
  | { type: 'run-failed'; step: string; error: string }
  | { type: 'run-interrupted'; step?: string };

export type Entry = JournalEvent & { t: number };

export function runsDir(stateDir: string, stack: string): string {
  return join(stateDir, stack, 'runs');
}

export function journalPath(stateDir: string, stack: string, runId: string): string {
  return join(runsDir(stateDir, stack), `${runId}.jsonl`);
}

export class Journal {
  readonly #fd: number;
  constructor(readonly path: string) {
    mkdirSync(join(path, '..'), { recursive: true });
    this.#fd = openSync(path, 'a', 0o600);
  }

  static create(stateDir: string, stack: string, runId: string): Journal {
    return new Journal(journalPath(stateDir, stack, runId));
  }

  append(event: JournalEvent, now = Date.now()): void {
    const line = `${JSON.stringify(redactValue({ t: now, ...event }))}\n`;
    writeSync(this.#fd, line);
    fsyncSync(this.#fd);
  }

  close(): void {
    closeSync(this.#fd);
  }
}

/**
 * A run's journal that reaches the disk only when the run really starts (its first step is about to
 * be probed). A run stopped before that (the lock, the lock's connection, a secret the first step
 * needs) leaves no trace for `runs`, `resume` or `rollback` to mistake for a run; nothing changed.
 */
export class DeferredJournal {
  #journal: Journal | undefined;
  #pending: Entry[] = [];
  constructor(readonly path: string) {}

  get started(): boolean {
    return this.#journal !== undefined;
  }

  append(event: JournalEvent, now = Date.now()): void {
    if (this.#journal) this.#journal.append(event, now);
    else this.#pending.push({ ...event, t: now } as Entry);
  }

  start(): void {
    if (this.#journal) return;
    this.#journal = new Journal(this.path);
    for (const { t, ...event } of this.#pending) this.#journal.append(event as JournalEvent, t);
    this.#pending = [];
  }

  close(): void {
    this.#journal?.close();
  }
}

/** Reads a journal; a torn last line (the process died mid-write) is ignored, any other bad line is an error. */
export function readJournal(path: string): Entry[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const entries: Entry[] = [];
  for (const [index, line] of lines.entries()) {
    if (!line.trim()) continue;
    try {
      entries.push(JSON.parse(line) as Entry);
    } catch {
      if (index >= lines.length - 2) break;
      throw new Error(`${path}:${index + 1}: not a journal event`);
    }
  }
  if (entries[0]?.type !== 'run-started') throw new Error(`${path}: does not start with a run-started event`);
  return entries;
}

export interface StepState {
  id: string;
  kind?: string;
  status: 'pending' | 'running' | 'failed' | StepStatus;
  changes: Json[];
  result?: Json;
  error?: string;
  reason?: string;
  startedAt?: number;
  finishedAt?: number;
  durationMs?: number;
  attempts: number;
}

export interface RunState {
  runId: string;
  path: string;
  stack: string;
  runbook: { path: string; name: string; sha256: string };
  config: Record<string, unknown>;
  options: { from?: string; only?: string; capabilities: string[] };
  status: 'running' | 'finished' | 'failed' | 'interrupted';
  /**
   * False for a journal with no step in it: written by versions that journaled a run before taking
   * its lock, for a run that never got to its first step. Nothing to resume or undo there.
   */
  started: boolean;
  startedAt: number;
  finishedAt?: number;
  steps: StepState[];
  entries: Entry[];
}

/** Folds a journal into the state of each step. */
export function runState(path: string): RunState {
  const entries = readJournal(path);
  const start = entries[0] as Extract<Entry, { type: 'run-started' }>;
  const steps = new Map<string, StepState>(start.steps.map((id) => [id, { id, status: 'pending', changes: [], attempts: 0 }]));
  let status: RunState['status'] = 'running';
  let options = start.options;
  let finishedAt: number | undefined;
  for (const entry of entries) {
    const step = 'step' in entry && entry.step ? steps.get(entry.step) : undefined;
    switch (entry.type) {
      case 'run-resumed':
        status = 'running';
        if (entry.capabilities) options = { ...options, capabilities: entry.capabilities };
        break;
      case 'step-started':
        if (step) Object.assign(step, { status: 'running', kind: entry.kind, startedAt: entry.t, attempts: step.attempts + 1 });
        break;
      case 'step-change':
        step?.changes.push(entry.change);
        break;
      case 'step-finished':
        if (step)
          Object.assign(step, {
            status: entry.status,
            result: entry.result,
            reason: entry.reason,
            finishedAt: entry.t,
            durationMs: entry.durationMs,
          });
        break;
      case 'step-failed':
        if (step) Object.assign(step, { status: 'failed', error: entry.error, finishedAt: entry.t, durationMs: entry.durationMs });
        break;
      case 'run-finished':
        status = 'finished';
        finishedAt = entry.t;
        break;
      case 'run-failed':
        status = 'failed';
        finishedAt = entry.t;
        break;
      case 'run-interrupted':
        status = 'interrupted';
        finishedAt = entry.t;
        break;
    }
  }
  return {
    runId: start.runId,
    path,
    stack: start.stack,
    runbook: start.runbook,
    config: start.config,
    options,
    status,
    started: entries.some((e) => e.type === 'step-started'),
    startedAt: start.t,
    finishedAt,
    steps: [...steps.values()],
    entries,
  };
}

/** Every run of a stack, oldest first. */
export function listRuns(stateDir: string, stack: string): RunState[] {
  const dir = runsDir(stateDir, stack);
  if (!readableStateDir(stateDir, dir)) return [];
  const read = <T>(path: string, body: () => T): T => {
    try {
      return body();
    } catch (error) {
      throw stateDirFailure(error, path, stateDir);
    }
  };
  return read(dir, () => readdirSync(dir))
    .filter((f) => f.endsWith('.jsonl'))
    .map((f) => read(join(dir, f), () => runState(join(dir, f))))
    .sort((a, b) => a.startedAt - b.startedAt);
}

/**
 * For `${{ runs.<runbook>.<step>.… }}`: the result of `step` in the newest run of `runbook` that
 * finished it, ignoring the run asking.
 */
export function newestRunResult(stateDir: string, stack: string, askingRunId: string) {
  return (runbook: string, step: string): { found: boolean; result: Json | undefined; runId?: string } => {
    const runs = listRuns(stateDir, stack).filter((r) => r.runId !== askingRunId && r.runbook.name === runbook);
    for (const run of runs.reverse()) {
      const state = run.steps.find((s) => s.id === step && (s.status === 'applied' || s.status === 'already-done'));
      if (state) return { found: true, result: state.result ?? null, runId: run.runId };
    }
    return { found: false, result: undefined };
  };
}
