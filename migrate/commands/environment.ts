/**
 * What every command needs: the stack outputs, the state dir, a reporter, the secret resolver, the
 * step kinds (core/environment.ts), confirmation on a terminal, and Ctrl-C handling.
 */

import { resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { StackOutputs } from '../../infra/contract.ts';
import type { RunServices } from '../core/context.ts';
import { ALL_CAPABILITIES, type EngineEnvironment, RunNotStartedError, UsageError } from '../core/engine.ts';
import { kindLookup, parseSets } from '../core/environment.ts';
import { LockHeldError } from '../core/lock.ts';
import { OutputsError, readOutputsFile, readStackOutputs } from '../core/outputs.ts';
import { humanReporter, jsonReporter, type Reporter } from '../core/report.ts';
import { type LoadOptions, type Runbook, RunbookError } from '../core/runbook.ts';
import { redact } from '../core/secret.ts';
import { UnresolvedReferencesError } from '../core/secret-preflight.ts';
import { createSecretResolver } from '../core/secret-refs.ts';
import { StateDirError } from '../core/state-dir.ts';
import type { Capability } from '../core/step.ts';
import { targetAdvisoryLock } from '../postgres/run-lock.ts';
import { EXIT } from './exit-codes.ts';

export interface GlobalOptions {
  stack?: string;
  outputs?: string;
  stateDir: string;
  json?: boolean;
  set?: string[];
  without?: string;
}

export async function loadOutputs(options: GlobalOptions): Promise<{ outputs: StackOutputs; stack: string }> {
  if (options.outputs) {
    const outputs = readOutputsFile(options.outputs);
    return { outputs, stack: options.stack ?? outputs.environment };
  }
  if (options.stack) return { outputs: await readStackOutputs(options.stack), stack: options.stack };
  throw new UsageError(
    'Which stack? Pass --stack NAME (reads `pulumi stack output`) or --outputs FILE (a JSON file of the outputs contract).',
  );
}

export function reporterFor(options: Pick<GlobalOptions, 'json'>): Reporter {
  return options.json ? jsonReporter() : humanReporter();
}

function capabilities(without?: string): Set<Capability> {
  const off = (without ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const c of off)
    if (!ALL_CAPABILITIES.includes(c as Capability))
      throw new UsageError(`--without ${c}: unknown capability (one of ${ALL_CAPABILITIES.join(', ')})`);
  return new Set(ALL_CAPABILITIES.filter((c) => !off.includes(c)));
}

async function askOnTerminal(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

export interface CommandEnvironment {
  env: EngineEnvironment;
  load: LoadOptions;
  interrupted: () => boolean;
  dispose: () => void;
}

export async function commandEnvironment(options: GlobalOptions & { yes?: boolean }): Promise<CommandEnvironment> {
  const { outputs, stack } = await loadOutputs(options);
  const stateDir = resolve(options.stateDir);
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    // The second Ctrl-C does not wait for the step to notice.
    if (signals > 1) process.exit(EXIT.interrupted);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const { kinds, knownKinds } = kindLookup(stateDir);
  const env: EngineEnvironment = {
    stack,
    outputs,
    stateDir,
    reporter: reporterFor(options),
    secret: createSecretResolver({ region: outputs.region }),
    capabilities: capabilities(options.without),
    unavailable: Object.fromEntries(ALL_CAPABILITIES.map((c) => [c, `skipped: --without ${c}`])),
    yes: Boolean(options.yes),
    confirm: process.stdin.isTTY && !options.json ? askOnTerminal : undefined,
    signal: controller.signal,
    extraLocks: lockOnTarget,
  };
  return {
    env,
    load: { outputs, configOverrides: parseSets(options.set), kinds, knownKinds },
    interrupted: () => controller.signal.aborted,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/**
 * The target database's advisory lock, for runs whose steps use PostgreSQL. A failure to connect for
 * it says why the connection was needed, and how a run that does not touch the database avoids it.
 */
async function lockOnTarget(runbook: Runbook, services: RunServices): Promise<() => Promise<void>> {
  const needing = runbook.steps.filter((s) => s.kind.requires.includes('postgres')).map((s) => s.id);
  if (needing.length === 0) return async () => {};
  try {
    return await targetAdvisoryLock(runbook, services);
  } catch (error) {
    if (error instanceof LockHeldError || services.signal.aborted) throw error;
    const { endpoint, port } = services.outputs.database;
    throw new RunNotStartedError(
      `Run not started: could not take the run lock on the target database ${endpoint}:${port} (database.endpoint/port in the outputs), ` +
        `needed because step(s) ${needing.join(', ')} use PostgreSQL: ${redact((error as Error).message ?? String(error))}. ` +
        "Nothing was changed. Fix the connection, or leave those steps out (--only <step>, --without postgres): the state dir's lock file alone then guards the run.",
      { cause: error },
    );
  }
}

/** One place that turns an error into a message and an exit code. Secrets are scrubbed. */
export function exitCodeFor(error: unknown): { code: number; message: string } {
  const message = redact(error instanceof Error ? error.message : String(error));
  if (error instanceof UsageError || error instanceof RunbookError || error instanceof OutputsError || error instanceof StateDirError)
    return { code: EXIT.usage, message };
  if (error instanceof LockHeldError) return { code: EXIT.locked, message };
  if (error instanceof UnresolvedReferencesError) return { code: EXIT.blocked, message };
  return { code: EXIT.failed, message };
}
