/**
 * `migrate preflight`, `migrate verify` and `migrate rollback`: single steps run on their own,
 * through the same validation, journal and reporting as a runbook.
 */
import type { Command } from 'commander';
import { dryRun, run, UsageError } from '../core/engine.ts';
import { parseSets } from '../core/environment.ts';
import { listRuns } from '../core/journal.ts';
import { runbookFromObject } from '../core/runbook.ts';
import { action } from './action.ts';
import { commandEnvironment, type GlobalOptions } from './environment.ts';
import { exitCodeOf, oneStep } from './run.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

/**
 * A mistyped runbook name or run id is bad input, not a rollback with nothing to do: refused before
 * anything is written, naming what the journal does hold.
 */
function checkRollbackTarget(stateDir: string, stack: string, opts: { runbook?: string; run?: string }): void {
  const runs = listRuns(stateDir, stack).filter((r) => r.started);
  if (opts.run && !runs.some((r) => r.runId === opts.run)) {
    const ids = runs.map((r) => r.runId).slice(-10);
    throw new UsageError(
      `rollback --run ${opts.run}: stack '${stack}' has no such run in ${stateDir} (${ids.length > 0 ? `newest runs: ${ids.join(', ')}` : 'no runs at all'}). Nothing was done.`,
    );
  }
  if (opts.runbook && !runs.some((r) => r.runbook.name === opts.runbook)) {
    const names = [...new Set(runs.map((r) => r.runbook.name))];
    throw new UsageError(
      `rollback --runbook ${opts.runbook}: stack '${stack}' has no run of a runbook named '${opts.runbook}' in ${stateDir} ` +
        `(${names.length > 0 ? `runbooks with runs: ${names.join(', ')}` : 'no runs at all'}). Nothing was done.`,
    );
  }
}

export function registerStandalone(program: Command, globals: () => GlobalOptions): void {
  program
    .command('preflight')
    .description('Check source and target for everything that would stop a cutover; lists every problem with its fix')
    .option('-p, --param <key=value>', 'a postgres.preflight parameter (repeatable)', collect, [])
    .action(
      action(async (opts: { param: string[] }) => {
        const { env, load, dispose } = await commandEnvironment(globals());
        try {
          const runbook = runbookFromObject(oneStep('preflight', 'postgres.preflight', parseSets(opts.param)), '(migrate preflight)', load);
          return exitCodeOf(await dryRun(runbook, env));
        } finally {
          dispose();
        }
      }),
    );

  program
    .command('verify')
    .description('Compare row counts and checksums of every table on source and target (read-only)')
    .option('-p, --param <key=value>', 'a postgres.verify parameter (repeatable), e.g. -p mode=counts', collect, [])
    .action(
      action(async (opts: { param: string[] }) => {
        const { env, load, dispose } = await commandEnvironment({ ...globals(), yes: true });
        try {
          const runbook = runbookFromObject(oneStep('verify', 'postgres.verify', parseSets(opts.param)), '(migrate verify)', load);
          return exitCodeOf(await run(runbook, env));
        } finally {
          dispose();
        }
      }),
    );

  program
    .command('schema-sync')
    .description('Apply additive schema changes made on the source since the copy (new tables, columns, indexes) to the target')
    .option('-p, --param <key=value>', 'a postgres.schema-sync parameter (repeatable)', collect, [])
    .option('--dry-run', 'list what would be applied')
    .action(
      action(async (opts: { param: string[]; dryRun?: boolean }) => {
        const { env, load, dispose } = await commandEnvironment({ ...globals(), yes: true });
        try {
          const runbook = runbookFromObject(
            oneStep('schema-sync', 'postgres.schema-sync', parseSets(opts.param)),
            '(migrate schema-sync)',
            load,
          );
          return exitCodeOf(opts.dryRun ? await dryRun(runbook, env) : await run(runbook, env));
        } finally {
          dispose();
        }
      }),
    );

  program
    .command('rollback')
    .description('Undo a run of this stack from its journal, newest step first')
    .option('--runbook <name>', 'undo the newest run of this runbook (e.g. d-day)')
    .option('--run <id>', 'undo this run')
    .option('--keep <step>', 'leave this step of the run as it is (repeatable)', collect, [])
    .option('--dry-run', 'show what would be undone')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(
      action(async (opts: { runbook?: string; run?: string; keep: string[]; dryRun?: boolean; yes?: boolean }) => {
        const { env, load, dispose } = await commandEnvironment({ ...globals(), yes: opts.yes });
        try {
          checkRollbackTarget(env.stateDir, env.stack, opts);
          const params = { ...(opts.runbook ? { runbook: opts.runbook } : {}), ...(opts.run ? { runId: opts.run } : {}), keep: opts.keep };
          const runbook = runbookFromObject(oneStep('rollback', 'run.undo', params), '(migrate rollback)', load);
          return exitCodeOf(opts.dryRun ? await dryRun(runbook, env) : await run(runbook, env));
        } finally {
          dispose();
        }
      }),
    );
}
