/** `migrate run <runbook>`, `migrate plan <runbook>` and `migrate resume`. */
import { type Command, InvalidArgumentError } from 'commander';
import {
  ALL_CAPABILITIES,
  dryRun,
  type EngineEnvironment,
  findResumableRun,
  planRunbook,
  type RunOutcome,
  resume,
  run,
} from '../core/engine.ts';
import { type LoadOptions, loadRunbook, runbookFromObject } from '../core/runbook.ts';
import { blocks, type Capability } from '../core/step.ts';
import { action } from './action.ts';
import { commandEnvironment, type GlobalOptions } from './environment.ts';
import { EXIT } from './exit-codes.ts';

export function exitCodeOf(outcome: RunOutcome): number {
  switch (outcome.outcome) {
    case 'finished':
      return EXIT.ok;
    case 'interrupted':
      return EXIT.interrupted;
    case 'dry-run':
      return blocks(outcome.findings) ? EXIT.blocked : EXIT.ok;
    default:
      return outcome.blocked ? EXIT.blocked : EXIT.failed;
  }
}

const seconds = (value: string) => {
  const n = Number(value);
  // Commander reports this as a one-line usage error naming the option.
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`--window-budget ${value}: expected a number of seconds above 0`);
  return n;
};

export function oneStep(name: string, uses: string, params: Record<string, unknown>) {
  return { name, steps: [{ id: name, uses, with: params }] };
}

/**
 * The run's own policy asked for a rollback (the post-switch proof found a difference with
 * `onDifference: rollback`): undo the run now, in this process, newest change first, exactly as
 * `migrate rollback --run <id>` would; decided in the runbook before D-day, so nobody is asked. The
 * exit code stays the run's failure; a rollback that fails too is reported as its own run.
 */
export async function rollbackIfRequested(outcome: RunOutcome, env: EngineEnvironment, load: LoadOptions): Promise<RunOutcome> {
  if (!outcome.rollbackRequested) return outcome;
  const rollback = runbookFromObject(oneStep('rollback', 'run.undo', { runId: outcome.runId }), `(rollback of ${outcome.runId})`, load);
  const undone = await run(rollback, { ...env, yes: true });
  return undone.outcome === 'finished' ? outcome : { ...outcome, error: `${outcome.error}; then the rollback failed: ${undone.error}` };
}

export function registerRun(program: Command, globals: () => GlobalOptions): void {
  program
    .command('plan')
    .description('Resolve and print every step with its parameters (secrets redacted); touches nothing')
    .argument('<runbook>', 'runbook file, e.g. runbooks/d-day.yaml')
    .option('--from <step>', 'start at this step')
    .option('--only <step>', 'just this step')
    .action(
      action(async (file: string, opts: { from?: string; only?: string }) => {
        const { env, load, dispose } = await commandEnvironment(globals());
        try {
          planRunbook(loadRunbook(file, load), env, opts);
          return EXIT.ok;
        } finally {
          dispose();
        }
      }),
    );

  program
    .command('run')
    .description('Run a runbook with a journal; --dry-run probes only and prints what each step would do')
    .argument('<runbook>', 'runbook file, e.g. runbooks/d-day.yaml')
    .option('--dry-run', 'run only read-only probes; write nothing (no journal either)')
    .option('-y, --yes', 'confirm destructive steps in advance (automation)')
    .option('--from <step>', 'start at this step')
    .option('--only <step>', 'run just this step')
    .option(
      '--window-budget <seconds>',
      "refuse to start when the forecast write window exceeds this (the runbook's windowBudgetSeconds)",
      seconds,
    )
    .action(
      action(async (file: string, opts: { dryRun?: boolean; yes?: boolean; from?: string; only?: string; windowBudget?: number }) => {
        const { env, load, dispose } = await commandEnvironment({ ...globals(), yes: opts.yes });
        try {
          if (opts.windowBudget !== undefined) load.configOverrides = { ...load.configOverrides, windowBudgetSeconds: opts.windowBudget };
          const runbook = loadRunbook(file, load);
          const selection = { from: opts.from, only: opts.only };
          if (opts.dryRun) return exitCodeOf(await dryRun(runbook, env, selection));
          return exitCodeOf(await rollbackIfRequested(await run(runbook, env, selection), env, load));
        } finally {
          dispose();
        }
      }),
    );

  program
    .command('resume')
    .description("Continue the stack's interrupted or failed run from its journal")
    .option('--run <id>', 'a specific run (default: the newest unfinished one)')
    .option('-y, --yes', 'confirm destructive steps in advance')
    .action(
      action(async (opts: { run?: string; yes?: boolean }) => {
        const options = globals();
        const { env, load, dispose } = await commandEnvironment({ ...options, yes: opts.yes });
        try {
          const state = findResumableRun(env.stateDir, env.stack, opts.run);
          // The run goes on as it was started (e.g. --without aws): only an explicit --without changes that.
          if (options.without === undefined)
            env.capabilities = new Set(
              state.options.capabilities.filter((c): c is Capability => ALL_CAPABILITIES.includes(c as Capability)),
            );
          const runbook = loadRunbook(state.runbook.path, { ...load, configOverrides: { ...state.config, ...load.configOverrides } });
          return exitCodeOf(await rollbackIfRequested(await resume(state, runbook, env), env, load));
        } finally {
          dispose();
        }
      }),
    );
}
