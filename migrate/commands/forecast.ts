/**
 * `migrate forecast`: measure the servers and the stack now (read-only), follow the newest D-day run
 * in the state dir, and predict each part of the write window, the window users see and the
 * post-switch proof; `--window-budget` exits 4 naming the part that takes it over.
 * `migrate timeline`: a run's timeline as an SVG, with the forecast its forecast.window step made.
 */
import { writeFileSync } from 'node:fs';
import { styleText } from 'node:util';
import type { Command } from 'commander';
import { createStepContext, ResourcePool } from '../core/context.ts';
import { UsageError } from '../core/engine.ts';
import { listRuns } from '../core/journal.ts';
import { colorEnabled, jsonLine } from '../core/report.ts';
import { redact } from '../core/secret.ts';
import { blocks } from '../core/step.ts';
import { budgetFindings } from '../forecast/budget.ts';
import { forecastNow } from '../forecast/forecast-now.ts';
import { formatForecast, type Paint } from '../forecast/format.ts';
import { latestWindowRun } from '../forecast/history.ts';
import type { Order, ProofPlacement } from '../forecast/types.ts';
import { DEFAULT_SUBSCRIPTION } from '../postgres/replication-names.ts';
import { timelineInput } from '../report/timeline-input.ts';
import { renderTimeline } from '../report/timeline-svg.ts';
import { action } from './action.ts';
import { commandEnvironment, type GlobalOptions } from './environment.ts';
import { EXIT } from './exit-codes.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function positive(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} ${value}: expected a positive number`);
  return n;
}

type ForecastOptions = {
  order: string;
  proof: string;
  windowBudget?: string;
  journal?: string;
  runbook: string[];
  subscription: string;
  walIntervalMs: string;
  sampleRows: string;
};

export function registerForecast(program: Command, globals: () => GlobalOptions): void {
  program
    .command('forecast')
    .description(
      'Predict the D-day write window, the window users see and the post-switch proof, from read-only measurements and earlier runs',
    )
    .option('--order <order>', 'keep-serving (legacy app repointed inside the window) or stop-first', 'keep-serving')
    .option('--proof <placement>', 'after-switch (pinned proof after writes resume) or before-switch (inside the window)', 'after-switch')
    .option('--window-budget <seconds>', 'exit 4 when the forecast window users see (for --order) exceeds this, naming the part')
    .option('--journal <file>', "follow this run's journal (a rehearsal's or staging d-day) instead of this stack's newest d-day")
    .option('--runbook <name>', 'follow the newest run of this runbook (repeatable)', collect, [])
    .option('--subscription <name>', 'subscription name', DEFAULT_SUBSCRIPTION)
    .option('--wal-interval-ms <ms>', 'between the two WAL position readings', '2000')
    .option('--sample-rows <n>', 'rows of the largest table the timed verification sample reads', '50000')
    .action(
      action(async (opts: ForecastOptions) => {
        const options = globals();
        if (!['keep-serving', 'stop-first'].includes(opts.order)) throw new UsageError(`--order ${opts.order}: keep-serving or stop-first`);
        if (!['after-switch', 'before-switch'].includes(opts.proof))
          throw new UsageError(`--proof ${opts.proof}: after-switch or before-switch`);
        const budget = positive('--window-budget', opts.windowBudget);
        const walIntervalMs = positive('--wal-interval-ms', opts.walIntervalMs)!;
        const sampleRows = positive('--sample-rows', opts.sampleRows)!;
        const { env, dispose } = await commandEnvironment(options);
        const resources = new ResourcePool();
        try {
          const ctx = createStepContext(
            {
              runId: 'forecast',
              stack: env.stack,
              outputs: env.outputs,
              dryRun: true,
              signal: env.signal!,
              secret: env.secret,
              resources,
              record: async () => {},
              log: { info() {}, warn() {}, progress() {} },
            },
            'forecast',
          );
          const { forecast, measurements } = await forecastNow(ctx, {
            order: opts.order as Order,
            proof: opts.proof as ProofPlacement,
            runbooks: opts.runbook.length ? opts.runbook : ['d-day'],
            stateDir: env.stateDir,
            journal: opts.journal,
            subscription: opts.subscription,
            walIntervalMs,
            sampleRows,
            kube: env.capabilities.has('kube') ? { kubeconfig: 'stack' } : 'not read: --without kube',
          });
          const findings = budget === undefined ? [] : budgetFindings(forecast, budget, forecast.order);
          if (options.json) {
            process.stdout.write(jsonLine({ type: 'measurements', ...measurements }));
            process.stdout.write(jsonLine({ type: 'forecast', ...forecast, budgetSeconds: budget ?? null }));
            for (const finding of findings) process.stdout.write(jsonLine({ type: 'finding', finding }));
          } else {
            const color = colorEnabled();
            const paint: Paint = (style, text) => (color ? styleText(style, text, { validateStream: false }) : text);
            process.stdout.write(`${redact(formatForecast(forecast, { paint, budgetSeconds: budget }))}\n`);
            for (const f of findings)
              process.stdout.write(
                `${redact(`${f.severity === 'error' ? paint('red', 'error') : paint('yellow', 'warning')} ${f.object}: ${f.message}${f.fix ? `\n      fix: ${f.fix}` : ''}`)}\n`,
              );
          }
          if (blocks(findings)) {
            process.stderr.write(`migrate: ${redact(findings.find((f) => f.severity === 'error')!.message)}\n`);
            return EXIT.blocked;
          }
          return EXIT.ok;
        } finally {
          await resources.closeAll();
          dispose();
        }
      }),
    );

  program
    .command('timeline')
    .description("Draw a run's timeline as an SVG: its steps on a time axis, the write window, and its forecast beside it")
    .option('--run <id>', "the run (default: this stack's newest d-day run with a write window)")
    .requiredOption('--out <file>', 'where the SVG goes')
    .action(
      action(async (opts: { run?: string; out: string }) => {
        const options = globals();
        const { env, dispose } = await commandEnvironment(options);
        try {
          const runs = listRuns(env.stateDir, env.stack);
          const run = opts.run ? runs.find((r) => r.runId === opts.run) : latestWindowRun(runs, ['d-day']);
          if (!run)
            throw new UsageError(
              opts.run
                ? `--run ${opts.run}: stack '${env.stack}' has no such run in ${env.stateDir}`
                : `stack '${env.stack}' has no d-day run with a write window in ${env.stateDir}; pass --run <id>`,
            );
          writeFileSync(
            opts.out,
            renderTimeline(timelineInput([run], { title: `${run.runbook.name} ${run.runId} on stack ${env.stack}` })),
          );
          if (options.json) process.stdout.write(jsonLine({ type: 'timeline', run: run.runId, file: opts.out }));
          else process.stdout.write(`Timeline of run ${run.runId} written to ${opts.out}\n`);
          return EXIT.ok;
        } finally {
          dispose();
        }
      }),
    );
}
