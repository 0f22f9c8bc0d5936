/** `migrate status`: replication state on both servers and where the stack's newest run stands. */
import type { Command } from 'commander';
import { ResourcePool, createStepContext } from '../core/context.ts';
import { listRuns } from '../core/journal.ts';
import { redactValue } from '../core/secret.ts';
import { replicationStatus } from '../postgres/status.ts';
import { action } from './action.ts';
import { commandEnvironment, type GlobalOptions } from './environment.ts';
import { EXIT } from './exit-codes.ts';
import { runSummary } from './inspect.ts';

export function registerStatus(program: Command, globals: () => GlobalOptions): void {
  program
    .command('status')
    .description('Replication state (per-table sync, lag in bytes and time, slot health) and the journal position')
    .option('--publication <name>', 'publication name', 'migrate_pub')
    .option('--subscription <name>', 'subscription name', 'migrate_sub')
    .action(
      action(async (opts: { publication: string; subscription: string }) => {
        const options = globals();
        const { env, dispose } = await commandEnvironment(options);
        const resources = new ResourcePool();
        try {
          const ctx = createStepContext(
            { runId: 'status', stack: env.stack, outputs: env.outputs, dryRun: true, signal: env.signal!, secret: env.secret, resources, record: async () => {}, log: { info() {}, warn() {}, progress() {} } },
            'status',
          );
          const replication = await replicationStatus(ctx, { publication: opts.publication, subscription: opts.subscription });
          const latest = listRuns(env.stateDir, env.stack).at(-1);
          const status = redactValue({ stack: env.stack, journal: latest ? runSummary(latest) : null, replication });
          if (options.json) process.stdout.write(JSON.stringify(status, null, 2) + '\n');
          else process.stdout.write(renderStatus(status) + '\n');
          return EXIT.ok;
        } finally {
          await resources.closeAll();
          dispose();
        }
      }),
    );
}

function renderStatus(status: { stack: string; journal: ReturnType<typeof runSummary> | null; replication: unknown }): string {
  const lines = [`Stack ${status.stack}`];
  const j = status.journal;
  lines.push(
    j
      ? `Journal: run ${j.runId} (${j.runbook}) ${j.status}, ${j.position} steps done${j.currentStep ? `, at ${j.currentStep.id} (${j.currentStep.status}${j.currentStep.error ? `: ${j.currentStep.error}` : ''})` : ''}`
      : 'Journal: no runs yet',
  );
  lines.push('Replication:', JSON.stringify(status.replication, null, 2).replace(/^/gm, '  '));
  return lines.join('\n');
}
