/** `migrate status`: replication state on both servers and where the stack's newest run stands. */
import type { Command } from 'commander';
import { createStepContext, ResourcePool } from '../core/context.ts';
import { listRuns } from '../core/journal.ts';
import { jsonLine } from '../core/report.ts';
import { redactValue } from '../core/secret.ts';
import { schemaDrift } from '../postgres/schema-compare/drift.ts';
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
            {
              runId: 'status',
              stack: env.stack,
              outputs: env.outputs,
              dryRun: true,
              signal: env.signal!,
              secret: env.secret,
              resources,
              record: async () => {},
              log: { info() {}, warn() {}, progress() {} },
            },
            'status',
          );
          const replication = await replicationStatus(ctx, { publication: opts.publication, subscription: opts.subscription });
          const latest = listRuns(env.stateDir, env.stack).at(-1);
          const schema = await schemaDrift(ctx);
          const status = redactValue({ stack: env.stack, journal: latest ? runSummary(latest) : null, replication, schema });
          if (options.json) process.stdout.write(jsonLine({ type: 'status', ...status }));
          else process.stdout.write(`${renderStatus(status)}\n`);
          // A stalled subscription, or schema drift while replicating (D-day's go/no-go would refuse), must
          // be loud: scripts and operators see a failing status. Before week-prior the target is empty by design.
          const view = replication as { health?: { healthy?: boolean }; target?: { exists?: boolean }; reverse?: { state?: string } };
          const replicating = view.target?.exists === true;
          const drifted = (schema as { identical?: boolean }).identical === false;
          // A reverse replication that is set up but not streaming makes a rollback lose the target's writes.
          const reverseBroken = ['stalled', 'disabled', 'partial'].includes(view.reverse?.state ?? '');
          return view.health?.healthy === false || (replicating && drifted) || reverseBroken ? EXIT.failed : EXIT.ok;
        } finally {
          await resources.closeAll();
          dispose();
        }
      }),
    );
}

// biome-ignore lint/suspicious/noExplicitAny: rows of pg_stat_* views as pg returns them, printed field by field
type View = Record<string, any>;

const bytes = (n: unknown) => (typeof n === 'number' ? (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${n} B`) : 'unknown');

function renderStatus(status: {
  stack: string;
  journal: ReturnType<typeof runSummary> | null;
  replication: unknown;
  schema: unknown;
}): string {
  const lines = [`Stack ${status.stack}`];
  const j = status.journal;
  lines.push(
    j
      ? `Journal:      run ${j.runId} (${j.runbook}) ${j.status}, ${j.position} steps done${j.currentStep ? `, at ${j.currentStep.id} (${j.currentStep.status}${j.currentStep.error ? `: ${j.currentStep.error}` : ''})` : ''}`
      : 'Journal:      no runs yet',
  );
  const r = status.replication as View;
  const source = (r.source ?? {}) as View;
  const target = (r.target ?? {}) as View;
  if (source.error) lines.push(`Source:       unreachable: ${source.error}`);
  else {
    const slot = source.slot as View | null;
    lines.push(
      `Source:       publication ${source.publication} ${source.publicationExists ? 'exists' : 'absent'}, WAL at ${source.currentLsn}`,
    );
    lines.push(
      slot
        ? `Slot:         ${slot.name} ${slot.active ? 'active' : 'INACTIVE'}, wal_status ${slot.walStatus}, retaining ${bytes(slot.retainedBytes)}${slot.safeWalSizeBytes !== null && slot.safeWalSizeBytes !== undefined ? `, ${bytes(slot.safeWalSizeBytes)} before it is lost` : ''}`
        : 'Slot:         none',
    );
  }
  if (target.error) lines.push(`Target:       unreachable: ${target.error}`);
  else if (!target.exists) lines.push(`Subscription: ${target.subscription} absent`);
  else {
    const tables = target.tables as View;
    lines.push(
      `Subscription: ${target.subscription} ${target.enabled ? 'enabled' : 'DISABLED'}, tables ready ${tables.ready}/${tables.total}${target.copyingBytes ? `, copying ${bytes(target.copyingBytes)}` : ''}`,
    );
    const notReady = Object.entries(tables.byTable as Record<string, string>).filter(([, state]) => state !== 'ready');
    for (const [table, state] of notReady) lines.push(`              ${table}: ${state}`);
    const errors = target.errors as { sync: number; apply: number } | null;
    if (errors && errors.sync + errors.apply > 0)
      lines.push(`              errors since created: ${errors.sync} in table sync, ${errors.apply} in apply (see the target's log)`);
  }
  const health = (r.health ?? { findings: [] }) as View;
  for (const f of health.findings as View[])
    lines.push(
      `${f.severity === 'error' ? 'UNHEALTHY:' : 'Note:'}    ${f.object} ${f.message}${f.fix ? `\n              fix: ${f.fix}` : ''}`,
    );
  const reverse = (r.reverse ?? {}) as View;
  if (reverse.error) lines.push(`Reverse:      could not be read: ${reverse.error}`);
  else if (reverse.state && reverse.state !== 'absent')
    lines.push(
      `Reverse:      ${reverse.state === 'streaming' ? 'streaming' : String(reverse.state).toUpperCase()} target → source (subscription ${reverse.subscription} on the source ${reverse.workerRunning ? 'applying' : 'NOT APPLYING'}), lag ${bytes(reverse.lagBytes)}${reverse.lastApplied ? `, applied up to ${reverse.lastApplied}` : ''}${typeof reverse.secondsSinceLastApplied === 'number' ? ` (${reverse.secondsSinceLastApplied.toFixed(1)} s ago)` : ''}`,
    );
  const lag = (r.lag ?? {}) as View;
  lines.push(
    `Lag:          ${bytes(lag.bytes)}${typeof lag.seconds === 'number' ? `, last confirmed ${lag.seconds.toFixed(1)} s ago` : ''}`,
  );
  const schema = status.schema as View;
  if (schema.error) lines.push(`Schema:       could not be compared: ${schema.error}`);
  else if (schema.identical) lines.push(`Schema:       identical on both servers (source fingerprint ${schema.sourceFingerprint})`);
  else {
    lines.push(
      `Schema:       DRIFT, ${schema.count} difference(s); D-day's go-no-go-schema refuses until they are gone (additive ones: migrate schema-sync)`,
    );
    for (const d of schema.differences as View[]) lines.push(`              ${d.object}: ${d.difference} — fix: ${d.fix}`);
  }
  return lines.join('\n');
}
