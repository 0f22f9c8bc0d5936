/**
 * Runs a runbook: selects steps (--from/--only), resumes from a journal, enforces confirmation,
 * locks the stack, and drives each step through probe → apply → check, journaling every transition
 * from the first step on (a run stopped before it leaves no journal). A dry run probes only and
 * writes nothing, not even a journal.
 */
import { randomBytes } from 'node:crypto';
import type { StackOutputs } from '../../infra/contract.ts';
import { createStepContext, ResourcePool, type RunServices } from './context.ts';
import { DeferredJournal, journalPath, listRuns, newestRunResult, type RunState, runState, type StepStatus } from './journal.ts';
import { acquireLock } from './lock.ts';
import type { EngineEvent, Reporter, StepOutcome } from './report.ts';
import { displayParams, evaluateCondition, type Runbook, type RunbookStep, resolveParams } from './runbook.ts';
import { redact } from './secret.ts';
import { checkReferences, refuseUnresolvable } from './secret-preflight.ts';
import type { SecretResolver } from './secret-refs.ts';
import { type Capability, type Finding, type Json, type Logger, RollbackRequested, StepError } from './step.ts';

export interface EngineEnvironment {
  stack: string;
  outputs: StackOutputs;
  stateDir: string;
  reporter: Reporter;
  secret: SecretResolver;
  /** What this environment can reach; steps needing anything else are skipped with `unavailable[cap]` as the reason. */
  capabilities: ReadonlySet<Capability>;
  unavailable?: Partial<Record<Capability, string>>;
  /** --yes: no confirmation prompts. */
  yes: boolean;
  /** Asks the operator; absent when there is no terminal to ask on. */
  confirm?: (question: string) => Promise<boolean>;
  signal?: AbortSignal;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Cross-machine locks for a real run (e.g. an advisory lock on the target); returns the release. */
  extraLocks?: (runbook: Runbook, services: RunServices) => Promise<() => Promise<void>>;
}

export interface RunSelection {
  from?: string;
  only?: string;
}

export interface RunOutcome {
  runId: string;
  outcome: 'finished' | 'failed' | 'interrupted' | 'dry-run';
  journal?: string;
  failedStep?: string;
  error?: string;
  /** The failed step's probe found problems (exit 4): it changed nothing. */
  blocked?: boolean;
  /** The failure asks for the run to be rolled back now (RollbackRequested). */
  rollbackRequested?: boolean;
  findings: Finding[];
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const ALL_CAPABILITIES: readonly Capability[] = ['postgres', 'aws', 'kube', 'pgbouncer', 'shell', 'http'];

export function newRunId(runbook: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  return `${runbook}-${stamp}-${randomBytes(2).toString('hex')}`;
}

function selectSteps(runbook: Runbook, selection: RunSelection): RunbookStep[] {
  const ids = runbook.steps.map((s) => s.id);
  for (const [flag, id] of [
    ['--from', selection.from],
    ['--only', selection.only],
  ] as const) {
    if (id !== undefined && !ids.includes(id))
      throw new UsageError(`${flag} ${id}: ${runbook.path} has no step '${id}' (steps: ${ids.join(', ')})`);
  }
  if (selection.only) return runbook.steps.filter((s) => s.id === selection.only);
  if (selection.from) return runbook.steps.slice(ids.indexOf(selection.from));
  return runbook.steps;
}

function missingCapability(step: RunbookStep, env: EngineEnvironment): string | undefined {
  const missing = step.kind.requires.find((c) => !env.capabilities.has(c));
  if (!missing) return undefined;
  return env.unavailable?.[missing] ?? `needs ${missing}, which this environment does not have`;
}

function loggerFor(env: EngineEnvironment, step: string): Logger {
  const emit = (event: EngineEvent) => env.reporter.emit(event);
  return {
    info: (message) => emit({ type: 'log', step, level: 'info', message: redact(message) }),
    warn: (message) => emit({ type: 'log', step, level: 'warn', message: redact(message) }),
    progress: (progress) => emit({ type: 'progress', step, progress }),
  };
}

// biome-ignore lint/suspicious/noConfusingVoidType: what StepKind.check resolves to
function errorFindings(findings: Finding[] | void): Finding[] {
  return (findings ?? []).filter((f) => f.severity === 'error');
}

/** Plans without touching anything: each step's resolved parameters (secrets as ***). */
export function planRunbook(
  runbook: Runbook,
  env: Pick<EngineEnvironment, 'reporter' | 'outputs' | 'stack'>,
  selection: RunSelection = {},
): void {
  const steps = selectSteps(runbook, selection);
  env.reporter.emit({
    type: 'run-start',
    runId: 'plan',
    runbook: runbook.path,
    stack: env.stack,
    dryRun: true,
    resumed: false,
    steps: steps.map((s) => ({ id: s.id, kind: s.uses })),
  });
  steps.forEach((step, index) => {
    env.reporter.emit({ type: 'step-start', step: step.id, kind: step.uses, index, total: steps.length });
    env.reporter.emit({
      type: 'step-plan',
      step: step.id,
      kind: step.uses,
      params: displayParams(runbook, step, env.outputs),
      lines: [step.kind.summary, ...(step.if ? [`only if ${step.if}`] : [])],
      confirm: step.confirm,
    });
  });
}

export async function dryRun(runbook: Runbook, env: EngineEnvironment, selection: RunSelection = {}): Promise<RunOutcome> {
  const steps = selectSteps(runbook, selection);
  const runId = newRunId(runbook.name);
  const started = (env.now ?? Date.now)();
  const resources = new ResourcePool();
  const signal = env.signal ?? new AbortController().signal;
  const findings: Finding[] = [];
  let earlierStepWouldRun = false;
  const earlierSteps = new Set<string>();
  env.reporter.emit({
    type: 'run-start',
    runId,
    runbook: runbook.path,
    stack: env.stack,
    dryRun: true,
    resumed: false,
    steps: steps.map((s) => ({ id: s.id, kind: s.uses })),
  });
  try {
    for (const [index, step] of steps.entries()) {
      // Ctrl-C ends a dry run too: what was probed so far is reported, and the exit says interrupted.
      if (signal.aborted) break;
      const t0 = (env.now ?? Date.now)();
      env.reporter.emit({ type: 'step-start', step: step.id, kind: step.uses, index, total: steps.length });
      const end = (outcome: StepOutcome, reason?: string) =>
        env.reporter.emit({ type: 'step-end', step: step.id, outcome, durationMs: (env.now ?? Date.now)() - t0, reason });
      const missing = missingCapability(step, env);
      if (missing) {
        env.reporter.emit({
          type: 'step-plan',
          step: step.id,
          kind: step.uses,
          params: displayParams(runbook, step, env.outputs),
          lines: [],
          confirm: step.confirm,
        });
        end('skipped', missing);
        continue;
      }
      const stepsSoFar = {
        outputs: env.outputs,
        runId,
        stack: env.stack,
        results: new Map<string, Json>(),
        otherRun: newestRunResult(env.stateDir, env.stack, runId),
      };
      let runs = true;
      try {
        runs = evaluateCondition(runbook, step, stepsSoFar);
      } catch {
        // The condition depends on results of steps a dry run does not execute: assume it holds.
      }
      if (!runs) {
        env.reporter.emit({
          type: 'step-plan',
          step: step.id,
          kind: step.uses,
          params: displayParams(runbook, step, env.outputs),
          lines: [],
          confirm: step.confirm,
        });
        end('skipped', `condition ${step.if} is false`);
        continue;
      }
      earlierSteps.add(step.id);
      const services = servicesFor(env, runId, resources, signal, true, async () => {});
      let params: unknown;
      const resolveContext = {
        outputs: env.outputs,
        runId,
        stack: env.stack,
        results: new Map<string, Json>(),
        otherRun: newestRunResult(env.stateDir, env.stack, runId),
        secret: env.secret,
      };
      try {
        params = await resolveParams(runbook, step, resolveContext);
      } catch (error) {
        // Blocking unless the only thing missing is a result an earlier step of this run will produce.
        const { problems, awaiting } = await checkReferences(runbook, step, { ...resolveContext, pending: earlierSteps }, error);
        const lines =
          problems.length === 0
            ? [
                `parameters depend on earlier step${awaiting.length === 1 ? '' : 's'} ${awaiting.map((id) => `'${id}'`).join(', ')}: probed when the run gets there`,
              ]
            : [];
        env.reporter.emit({
          type: 'step-plan',
          step: step.id,
          kind: step.uses,
          params: displayParams(runbook, step, env.outputs),
          lines,
          confirm: step.confirm,
        });
        for (const finding of problems) {
          findings.push(finding);
          env.reporter.emit({ type: 'finding', step: step.id, finding });
        }
        end(problems.length === 0 ? 'would-run' : 'blocked');
        if (problems.length === 0) earlierStepWouldRun = true;
        continue;
      }
      const ctx = createStepContext({ ...services, log: loggerFor(env, step.id) }, step.id);
      let probe: Awaited<ReturnType<typeof step.kind.probe>>;
      try {
        probe = await step.kind.probe(ctx, params);
      } catch (error) {
        // One probe that cannot run (no credentials, a server down) must not hide the rest of the plan.
        const finding: Finding = {
          severity: 'error',
          object: `step ${step.id}`,
          message: `probe failed: ${redact((error as Error).message)}`,
          fix: 'fix the cause and dry-run again',
        };
        probe = { state: 'blocked', findings: [finding] };
      }
      if (probe.state === 'blocked' && earlierStepWouldRun && errorFindings(probe.findings).every((f) => f.awaitsEarlierStep)) {
        const expected = (f: Finding): Finding =>
          f.severity === 'error'
            ? {
                ...f,
                severity: 'info',
                message: `${f.message} (expected before the earlier steps have run; probed again when the run gets here)`,
              }
            : f;
        probe = { ...probe, state: 'ready', findings: probe.findings?.map(expected) };
      }
      env.reporter.emit({
        type: 'step-plan',
        step: step.id,
        kind: step.uses,
        params: displayParams(runbook, step, env.outputs),
        lines: probe.plan ?? [],
        confirm: step.confirm,
      });
      for (const finding of probe.findings ?? []) {
        findings.push(finding);
        env.reporter.emit({ type: 'finding', step: step.id, finding });
      }
      end(
        probe.state === 'done' ? (probe.skip ? 'skipped' : 'already-done') : probe.state === 'blocked' ? 'blocked' : 'would-run',
        probe.skip,
      );
      if (probe.state === 'ready') earlierStepWouldRun = true;
    }
  } finally {
    await resources.closeAll();
  }
  const outcome: RunOutcome = { runId, outcome: signal.aborted ? 'interrupted' : 'dry-run', findings };
  env.reporter.emit({ type: 'run-end', runId, outcome: outcome.outcome, durationMs: (env.now ?? Date.now)() - started });
  return outcome;
}

function servicesFor(
  env: EngineEnvironment,
  runId: string,
  resources: ResourcePool,
  signal: AbortSignal,
  isDryRun: boolean,
  record: RunServices['record'],
): RunServices {
  return {
    runId,
    stack: env.stack,
    outputs: env.outputs,
    dryRun: isDryRun,
    log: loggerFor(env, ''),
    signal,
    secret: env.secret,
    resources,
    record,
    now: env.now,
    sleep: env.sleep,
  };
}

/** Starts a new run of `runbook`. */
export async function run(runbook: Runbook, env: EngineEnvironment, selection: RunSelection = {}): Promise<RunOutcome> {
  const steps = selectSteps(runbook, selection);
  return execute(runbook, env, steps, undefined, selection);
}

/** The newest run of the stack that did not finish (or the one named). */
export function findResumableRun(stateDir: string, stack: string, runId?: string): RunState {
  const runs = listRuns(stateDir, stack);
  if (runId) {
    const found = runs.find((r) => r.runId === runId);
    if (!found)
      throw new UsageError(
        `No run '${runId}' for stack '${stack}' in ${stateDir} (runs: ${runs.map((r) => r.runId).join(', ') || 'none'})`,
      );
    if (!found.started)
      throw new UsageError(
        `Run ${runId} never started (it stopped before its first step, changing nothing): nothing to resume; start a new run.`,
      );
    return found;
  }
  const open = runs.filter((r) => r.status !== 'finished' && r.started);
  const latest = open.at(-1);
  if (!latest) throw new UsageError(`Nothing to resume: every run of stack '${stack}' in ${stateDir} has finished.`);
  return latest;
}

/** Continues an interrupted or failed run from its journal, with the same runbook file unchanged. */
export async function resume(state: RunState, runbook: Runbook, env: EngineEnvironment): Promise<RunOutcome> {
  if (state.status === 'finished') throw new UsageError(`Run ${state.runId} has already finished.`);
  if (runbook.sha256 !== state.runbook.sha256) {
    throw new UsageError(
      `${runbook.path} has changed since run ${state.runId} started; resuming would run different steps than were journaled. Restore the file, or start a new run.`,
    );
  }
  const steps = selectSteps(runbook, state.options);
  return execute(runbook, env, steps, state, state.options);
}

async function askConfirmations(steps: RunbookStep[], env: EngineEnvironment): Promise<void> {
  if (env.yes) return;
  const needing = steps.filter((s) => s.confirm);
  if (needing.length > 0 && !env.confirm) {
    throw new UsageError(
      `Steps ${needing.map((s) => `'${s.id}'`).join(', ')} ask for confirmation and there is no terminal to ask on: pass --yes to confirm them in advance.`,
    );
  }
}

/** A run that could not start: nothing was changed and nothing was journaled. */
export class RunNotStartedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RunNotStartedError';
  }
}

/** Steps this run will execute and may touch: the selection less steps finished before a resume or lacking a capability. */
function stepsToRun(steps: RunbookStep[], env: EngineEnvironment, done: ReadonlyMap<string, unknown>): RunbookStep[] {
  return steps.filter((s) => !done.has(s.id) && !missingCapability(s, env));
}

async function execute(
  runbook: Runbook,
  env: EngineEnvironment,
  steps: RunbookStep[],
  previous: RunState | undefined,
  selection: RunSelection,
): Promise<RunOutcome> {
  await askConfirmations(steps, env);
  const now = env.now ?? Date.now;
  const runId = previous?.runId ?? newRunId(runbook.name);
  await refuseUnresolvable(runbook, steps, {
    outputs: env.outputs,
    runId,
    stack: env.stack,
    secret: env.secret,
    otherRun: newestRunResult(env.stateDir, env.stack, runId),
    previous,
    canRun: (s) => !missingCapability(s, env),
  });
  const done = new Map<string, RunState['steps'][number]>();
  const results = new Map<string, Json>();
  for (const step of previous?.steps ?? []) {
    if (['applied', 'already-done', 'skipped'].includes(step.status)) {
      results.set(step.id, step.result ?? null);
      done.set(step.id, step);
    }
  }
  const lock = acquireLock(env.stateDir, env.stack, runId);
  const journal = new DeferredJournal(previous?.path ?? journalPath(env.stateDir, env.stack, runId));
  const resources = new ResourcePool();
  const controller = new AbortController();
  const onAbort = () => controller.abort(env.signal?.reason);
  env.signal?.addEventListener('abort', onAbort, { once: true });
  const services = servicesFor(env, runId, resources, controller.signal, false, async (step, change) =>
    journal.append({ type: 'step-change', step, change }, now()),
  );
  const started = now();
  const findings: Finding[] = [];
  let releaseExtra: (() => Promise<void>) | undefined;
  let current: string | undefined;
  const journalIfStarted = () => (journal.started ? journal.path : undefined);
  try {
    // The cross-machine lock covers what this run's steps touch, not the whole runbook: `--only` an AWS
    // step or `--without postgres` needs no database connection for it.
    releaseExtra = await env.extraLocks?.({ ...runbook, steps: stepsToRun(steps, env, done) }, services);
    env.reporter.emit({
      type: 'run-start',
      runId,
      runbook: runbook.path,
      stack: env.stack,
      dryRun: false,
      resumed: Boolean(previous),
      steps: steps.map((s) => ({ id: s.id, kind: s.uses })),
    });
    if (lock.takenOverFrom)
      loggerFor(env, '').warn(`took over a stale lock of run ${lock.takenOverFrom.runId} (pid ${lock.takenOverFrom.pid} is gone)`);
    if (previous)
      journal.append(
        { type: 'run-resumed', attempt: Math.max(1, ...previous.steps.map((s) => s.attempts)), capabilities: [...env.capabilities] },
        now(),
      );
    else {
      journal.append(
        {
          type: 'run-started',
          runId,
          stack: env.stack,
          runbook: { path: runbook.path, name: runbook.name, sha256: runbook.sha256 },
          config: runbook.config,
          options: { ...selection, capabilities: [...env.capabilities] },
          steps: runbook.steps.map((s) => s.id),
        },
        started,
      );
    }
    for (const [index, step] of steps.entries()) {
      if (controller.signal.aborted) throw controller.signal.reason ?? new Error('interrupted');
      const earlier = done.get(step.id);
      if (earlier) {
        env.reporter.emit({
          type: 'step-end',
          step: step.id,
          outcome: earlier.status as StepOutcome,
          durationMs: 0,
          reason: 'finished before the resume',
        });
        continue;
      }
      current = step.id;
      const t0 = now();
      env.reporter.emit({ type: 'step-start', step: step.id, kind: step.uses, index, total: steps.length });
      journal.append({ type: 'step-started', step: step.id, kind: step.uses }, t0);
      const finish = (status: StepStatus, result: Json, reason?: string) => {
        const durationMs = now() - t0;
        journal.append({ type: 'step-finished', step: step.id, status, result, reason, durationMs }, now());
        results.set(step.id, result);
        env.reporter.emit({ type: 'step-end', step: step.id, outcome: status, durationMs, reason });
      };
      const missing = missingCapability(step, env);
      if (missing) {
        finish('skipped', null, missing);
        continue;
      }
      if (
        !evaluateCondition(runbook, step, {
          outputs: env.outputs,
          runId,
          stack: env.stack,
          results,
          otherRun: newestRunResult(env.stateDir, env.stack, runId),
        })
      ) {
        finish('skipped', null, `condition ${step.if} is false`);
        continue;
      }
      let blocked = false;
      try {
        let params: unknown;
        try {
          params = await resolveParams(runbook, step, {
            outputs: env.outputs,
            runId,
            stack: env.stack,
            results,
            otherRun: newestRunResult(env.stateDir, env.stack, runId),
            secret: env.secret,
          });
        } catch (error) {
          if (journal.started || controller.signal.aborted) throw error;
          const message = redact(error instanceof Error ? error.message : String(error));
          env.reporter.emit({ type: 'step-end', step: step.id, outcome: 'failed', durationMs: now() - t0, error: message });
          throw new RunNotStartedError(
            `Run not started: step '${step.id}' cannot get its parameters: ${message}. Nothing was changed and no run was journaled.`,
            { cause: error },
          );
        }
        journal.start();
        const previousChanges = previous?.steps.find((s) => s.id === step.id)?.changes ?? [];
        const ctx = createStepContext({ ...services, log: loggerFor(env, step.id) }, step.id, previousChanges);
        const probe = await step.kind.probe(ctx, params);
        for (const finding of probe.findings ?? []) {
          findings.push(finding);
          env.reporter.emit({ type: 'finding', step: step.id, finding });
        }
        if (probe.state === 'blocked') {
          blocked = true;
          throw new StepError(`${step.id} cannot run: ${errorFindings(probe.findings).length} problem(s) found`, probe.findings ?? []);
        }
        let result: Json;
        let status: StepStatus;
        let reason: string | undefined;
        if (probe.state === 'done') {
          result = (probe.result ?? null) as Json;
          status = probe.skip ? 'skipped' : 'already-done';
          reason = probe.skip;
        } else {
          if (step.confirm && !env.yes) {
            env.reporter.flush();
            const plan = (probe.plan ?? []).map((l) => `\n    ${l}`).join('');
            const ok = await env.confirm!(redact(`Step '${step.id}' (${step.uses}) will:${plan || ` ${step.kind.summary}`}\n  Proceed?`));
            if (!ok) throw new StepError(`${step.id}: not confirmed by the operator; nothing was changed by this step`);
          }
          result = (await step.kind.apply(ctx, params)) as Json;
          status = 'applied';
        }
        const post = errorFindings(await step.kind.check(ctx, params, result));
        // Printed once, by the failure handling below.
        if (post.length > 0) throw new StepError(`${step.id}: postcondition failed`, post);
        finish(status, result, reason);
      } catch (error) {
        if (controller.signal.aborted || error instanceof RunNotStartedError) throw error;
        const message = redact(error instanceof Error ? error.message : String(error));
        const stepFindings = error instanceof StepError ? error.findings : [];
        const durationMs = now() - t0;
        journal.append({ type: 'step-failed', step: step.id, error: message, findings: stepFindings, durationMs }, now());
        journal.append({ type: 'run-failed', step: step.id, error: message }, now());
        for (const finding of stepFindings) if (!findings.includes(finding)) env.reporter.emit({ type: 'finding', step: step.id, finding });
        env.reporter.emit({ type: 'step-end', step: step.id, outcome: 'failed', durationMs, error: message });
        env.reporter.emit({ type: 'run-end', runId, outcome: 'failed', durationMs: now() - started, journal: journal.path });
        return {
          runId,
          outcome: 'failed',
          blocked,
          rollbackRequested: error instanceof RollbackRequested,
          journal: journal.path,
          failedStep: step.id,
          error: message,
          findings: [...findings, ...stepFindings],
        };
      }
    }
    // Every step skipped or finished before a resume: the run still happened, and says so.
    journal.start();
    journal.append({ type: 'run-finished', durationMs: now() - started }, now());
    env.reporter.emit({ type: 'run-end', runId, outcome: 'finished', durationMs: now() - started, journal: journal.path });
    return { runId, outcome: 'finished', journal: journal.path, findings };
  } catch (error) {
    if (!controller.signal.aborted) {
      // Not a step failure (journal or lock trouble): record what we can and let the caller report it.
      if (journal.started) {
        try {
          journal.append({ type: 'run-failed', step: current ?? '', error: redact(String((error as Error).message ?? error)) }, now());
        } catch {
          /* the journal itself is what failed */
        }
      }
      throw error;
    }
    if (journal.started) journal.append({ type: 'run-interrupted', step: current }, now());
    env.reporter.emit({ type: 'run-end', runId, outcome: 'interrupted', durationMs: now() - started, journal: journalIfStarted() });
    return { runId, outcome: 'interrupted', journal: journalIfStarted(), failedStep: current, findings };
  } finally {
    env.signal?.removeEventListener('abort', onAbort);
    await releaseExtra?.().catch(() => {});
    await resources.closeAll();
    journal.close();
    lock.release();
  }
}

export { runState };
