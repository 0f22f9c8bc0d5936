/**
 * The contract every runbook step kind implements. A kind lives in `migrate/steps/<family>/<kind>.ts`
 * and is listed in its family's `index.ts`; `migrate/core/registry.ts` collects the families.
 *
 * Life of a step in `migrate run`:
 *   probe (read-only) → 'blocked' fails the step before any change; 'done' skips apply;
 *   'ready' → apply (idempotent; records each change in the journal *before* making it) → check.
 * `--dry-run` runs probe only and prints `probe.plan`. `rollback` calls `undo` with the changes the
 * journal recorded for the step, newest last, across every attempt of it.
 */
import type { z } from 'zod';
import type { StackOutputs } from '../../infra/contract.ts';
import type { Secret } from './secret.ts';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** What a step needs from the world; the rehearsal lacks 'aws' and skips those steps visibly. */
export type Capability = 'postgres' | 'aws' | 'kube' | 'pgbouncer' | 'shell' | 'http';

export interface Finding {
  severity: 'error' | 'warning' | 'info';
  /** The object at fault: `table public.orders`, `parameter max_replication_slots`, `role app`. */
  object: string;
  message: string;
  /** What the operator should do about it. */
  fix?: string;
  /**
   * The problem is a prerequisite that an earlier step of a runbook creates (the tables, the slot).
   * A dry run in which such a step would run reports it as expected, not as a block.
   */
  awaitsEarlierStep?: boolean;
}

export interface Probe<R = Json> {
  /** done: the effect is already in place (apply is skipped); ready: apply can run; blocked: it cannot. */
  state: 'done' | 'ready' | 'blocked';
  /** For 'blocked' at least one error finding; warnings and infos are printed in any state. */
  findings?: Finding[];
  /** Human lines for what apply would do (dry run and plan). No secret values. */
  plan?: string[];
  /** When state is 'done': the result apply would have returned, for later steps to reference. */
  result?: R;
  /**
   * When state is 'done' because there was nothing for the step to do at all (not because its effect
   * is in place): why. Reported and journaled as `skipped` with this reason, not as `already-done`.
   */
  skip?: string;
}

export interface Progress {
  /** e.g. `initial sync`, `table public.orders`, `lag`, `waiting for replica db-1`. */
  label: string;
  done?: number;
  total?: number;
  unit?: string;
  /** Epoch ms by which the wait gives up; shown as time left. */
  deadline?: number;
  detail?: string;
}

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  /** Transient status for long work; rendered in place on a terminal, throttled elsewhere. */
  progress(progress: Progress): void;
}

export interface StepContext {
  readonly runId: string;
  readonly stepId: string;
  readonly stack: string;
  readonly outputs: StackOutputs;
  readonly dryRun: boolean;
  readonly log: Logger;
  /** Aborted on SIGINT/SIGTERM: stop waiting, leave the journal consistent. */
  readonly signal: AbortSignal;
  /** Epoch milliseconds; injected so tests need no sleeps. */
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Resolves a secret reference (`ssm:/…`, `env:…`, `file:/…`); the value is registered for redaction. */
  secret(ref: string): Promise<Secret>;
  /**
   * Write-ahead record of a change this step is about to make (or has made): appended to the journal
   * and fsynced before it returns. Record enough for undo, and record it before the effect, so that a
   * crash between the two leaves undo something to do rather than something it does not know about.
   * Never put secret values in a change (they are redacted anyway).
   */
  record(change: Json): Promise<void>;
  /** Changes recorded by earlier attempts of this same step in this run (resume after a crash). */
  readonly previousChanges: readonly Json[];
  /**
   * A per-run shared resource (a pg pool, an SDK client), created once and disposed at the end of the
   * run. `key` names it across steps (e.g. `pg:source`).
   */
  resource<T>(key: string, create: () => Promise<T> | T, dispose?: (value: T) => Promise<void> | void): Promise<T>;
}

// biome-ignore lint/suspicious/noExplicitAny: the registry holds kinds of every params type, and params are contravariant (unknown would reject them)
export interface StepKind<P = any, R extends Json = Json> {
  /** `family.verb`, e.g. `postgres.freeze-writes`. */
  kind: string;
  summary: string;
  /** Validates `with:`. Runs at load time (secrets and step references stand in as placeholders) and again at run time. */
  params: z.ZodType<P>;
  requires: Capability[];
  /** Asks for confirmation before apply unless --yes (the runbook can also set `confirm: true`). */
  destructive: boolean;
  probe(ctx: StepContext, params: P): Promise<Probe<R>>;
  apply(ctx: StepContext, params: P): Promise<R>;
  /** Postcondition: throws (or returns error findings) when the effect is not in place. */
  // biome-ignore lint/suspicious/noConfusingVoidType: a check with nothing to report is an async function that returns nothing
  check(ctx: StepContext, params: P, result: R): Promise<Finding[] | void>;
  /** Reverses what `changes` say was done. Idempotent; absent when a step cannot be undone. */
  undo?(ctx: StepContext, params: P, changes: readonly Json[], result: R | undefined): Promise<void>;
}

/** A failure with the findings that explain it; the engine prints each with its fix. */
export class StepError extends Error {
  constructor(
    message: string,
    readonly findings: Finding[] = [],
  ) {
    super(message);
    this.name = 'StepError';
  }
}

/**
 * A failure the runbook's own policy answers with an immediate rollback of the run (the post-switch
 * proof found a difference, `onDifference: rollback`): `migrate run` journals the failure, then
 * undoes the run, newest change first, as `migrate rollback --run <id>` would.
 */
export class RollbackRequested extends StepError {
  constructor(message: string, findings: Finding[] = []) {
    super(message, findings);
    this.name = 'RollbackRequested';
  }
}

/** Any error finding blocks the step: probe says 'blocked', apply throws `blockedBy`. */
export function blocks(findings: readonly Finding[]): boolean {
  return findings.some((f) => f.severity === 'error');
}

/**
 * The error an apply throws when its own assessment finds the step blocked: `summary: ` (e.g.
 * `5 preflight checks failed`), then `object: message` of every error finding, as the report prints them.
 */
export function blockedBy(findings: Finding[], summary?: string): StepError {
  const errors = findings
    .filter((f) => f.severity === 'error')
    .map((f) => `${f.object}: ${f.message}`)
    .join('; ');
  return new StepError(summary ? `${summary}: ${errors}` : errors, findings);
}

/** Wraps a cause as "Unable to <what>: <cause>", keeping the findings of a StepError. */
export function unable(what: string, cause: unknown): StepError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new StepError(`Unable to ${what}: ${message}`, cause instanceof StepError ? cause.findings : []);
}

export function defineStep<P, R extends Json = Json>(kind: StepKind<P, R>): StepKind<P, R> {
  return kind;
}
