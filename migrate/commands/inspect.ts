/** `migrate runs`, `migrate kinds` and `migrate iam-policy`: read-only views. */
import type { Command } from 'commander';
import { cliIamPolicy } from '../aws/iam-policy.ts';
import { listRuns, type RunState } from '../core/journal.ts';
import { stepKinds } from '../core/registry.ts';
import { formatDuration, jsonLine } from '../core/report.ts';
import { action } from './action.ts';
import { commandEnvironment, type GlobalOptions, loadOutputs } from './environment.ts';
import { EXIT } from './exit-codes.ts';

export function runSummary(run: RunState) {
  const position = run.steps.filter((s) => ['applied', 'already-done', 'skipped'].includes(s.status)).length;
  const current = run.steps.find((s) => s.status === 'running' || s.status === 'failed');
  return {
    runId: run.runId,
    runbook: run.runbook.name,
    status: !run.started ? 'never started' : run.status === 'running' ? 'unfinished' : run.status,
    position: `${position}/${run.steps.length}`,
    currentStep: current ? { id: current.id, status: current.status, error: current.error } : null,
    startedAt: new Date(run.startedAt).toISOString(),
    steps: run.steps.map((s) => ({ id: s.id, status: s.status, durationMs: s.durationMs ?? null, changes: s.changes.length })),
  };
}

export function registerInspect(program: Command, globals: () => GlobalOptions): void {
  program
    .command('runs')
    .description("List the stack's runs from the journal")
    .action(
      action(async () => {
        const options = globals();
        const { env, dispose } = await commandEnvironment(options);
        try {
          const runs = listRuns(env.stateDir, env.stack).map(runSummary);
          if (options.json) for (const r of runs) process.stdout.write(jsonLine({ type: 'run', ...r }));
          else {
            for (const r of runs) {
              const took = r.steps.reduce((sum, s) => sum + (s.durationMs ?? 0), 0);
              process.stdout.write(
                `${r.runId}  ${r.runbook.padEnd(12)} ${r.status.padEnd(11)} ${r.position.padStart(5)} steps  ${formatDuration(took)}\n`,
              );
            }
            if (runs.length === 0) process.stdout.write(`No runs for stack ${env.stack} in ${env.stateDir}\n`);
          }
          return EXIT.ok;
        } finally {
          dispose();
        }
      }),
    );

  program
    .command('kinds')
    .description('List the step kinds a runbook can use')
    .action(
      action(async () => {
        const kinds = [...stepKinds.values()].map((k) => ({
          kind: k.kind,
          summary: k.summary,
          requires: k.requires,
          destructive: k.destructive,
          undo: Boolean(k.undo),
        }));
        kinds.push({
          kind: 'run.undo',
          summary: 'Undo every run of a runbook not undone yet (or one run) from their journals, newest change first',
          requires: [],
          destructive: true,
          undo: false,
        });
        if (globals().json) for (const k of kinds) process.stdout.write(jsonLine({ type: 'kind', ...k }));
        else for (const k of kinds) process.stdout.write(`${k.kind.padEnd(28)} ${k.summary}${k.destructive ? ' (asks to confirm)' : ''}\n`);
        return EXIT.ok;
      }),
    );

  program
    .command('iam-policy')
    .description('Print the least-privilege IAM policy the CLI needs for this stack (JSON)')
    .action(
      action(async () => {
        const options = globals();
        const { outputs } = await loadOutputs(options);
        const policy = cliIamPolicy(outputs);
        process.stdout.write(options.json ? jsonLine({ type: 'iam-policy', policy }) : `${JSON.stringify(policy, null, 2)}\n`);
        return EXIT.ok;
      }),
    );
}
