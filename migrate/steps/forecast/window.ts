/**
 * forecast.window: D-day's first go/no-go. Measures the servers and the stack now (read-only),
 * follows the newest earlier D-day run in the state dir, and predicts the write window, the window
 * users see (for this D-day's order) and the post-switch proof. With `budgetSeconds`, a forecast
 * over it blocks, before anything is frozen or redirected, naming the parts. The result is the
 * forecast itself, so the report can set it beside what the run then measured.
 */
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type Json, type StepContext, type StepKind } from '../../core/step.ts';
import { budgetFindings } from '../../forecast/budget.ts';
import { forecastNow } from '../../forecast/forecast-now.ts';
import { formatForecast } from '../../forecast/format.ts';
import type { Forecast, Measurements } from '../../forecast/types.ts';
import { kubeAccessParams } from '../../kube/client.ts';
import { replicationNames } from '../../postgres/replication-names.ts';

const params = z.strictObject({
  subscription: replicationNames.subscription,
  /** The window users may see, in seconds; absent or 0 (a runbook config left at 0): reported, never blocks. */
  budgetSeconds: z.number().min(0).optional(),
  /** keep-serving: the legacy app keeps writing through its repointed pooler; stop-first: it is stopped before the freeze. */
  order: z.enum(['keep-serving', 'stop-first']).default('keep-serving'),
  /** after-switch: the full proof runs after writes resume, pinned to the switch point; before-switch: inside the window. */
  proof: z.enum(['after-switch', 'before-switch']).default('after-switch'),
  /** Between the two WAL position readings on the source. */
  walIntervalMs: z.number().int().min(100).max(60_000).default(2000),
  /** Rows of the largest table the timed verification sample reads, per side. */
  sampleRows: z.number().int().min(100).max(10_000_000).default(50_000),
  /** Read the app pods' start-up time from Kubernetes (false: it is reported unknown). */
  kube: z.boolean().default(true),
  ...kubeAccessParams,
  /** Runs of these runbooks are followed for step durations (the newest with a write window). */
  runbooks: z.array(z.string().min(1)).min(1).default(['d-day']),
  /** A journal file to follow instead of this stack's runs (a rehearsal's or staging run's d-day journal). */
  journal: z.string().min(1).optional(),
});
type Params = z.infer<typeof params>;
type Result = Forecast & { measurements: Measurements; budgetSeconds: number | null } & Json;

export const FORECAST_WINDOW = 'forecast.window';

async function assess(ctx: StepContext, p: Params, stateDir: string | undefined) {
  const { forecast, measurements } = await forecastNow(ctx, {
    ...p,
    kube: p.kube ? { kubeconfig: p.kubeconfig, context: p.context } : 'not read (kube: false)',
    stateDir,
  });
  const budget = p.budgetSeconds ? p.budgetSeconds : undefined;
  const findings = budget === undefined ? [] : budgetFindings(forecast, budget, p.order);
  const result = { ...forecast, measurements, budgetSeconds: budget ?? null } as Result;
  return { findings, result };
}

/** `stateDir`: where the earlier runs' journals are (the engine's); without it only `journal` is followed. */
export function forecastWindowKind(options: { stateDir?: string } = {}): StepKind<Params, Result> {
  return defineStep<Params, Result>({
    kind: FORECAST_WINDOW,
    summary: 'Go/no-go: forecast the write window, the window users see and the post-switch proof; block when over the budget',
    params,
    requires: ['postgres'],
    destructive: false,

    async probe(ctx, p) {
      const { findings, result } = await assess(ctx, p, options.stateDir);
      const plan = formatForecast(result, { budgetSeconds: result.budgetSeconds ?? undefined }).split('\n');
      return blocks(findings) ? { state: 'blocked', findings, plan } : { state: 'ready', findings, plan };
    },

    async apply(ctx, p) {
      const { findings, result } = await assess(ctx, p, options.stateDir);
      if (blocks(findings)) throw blockedBy(findings, 'the forecast is over the window budget');
      for (const line of formatForecast(result, { budgetSeconds: result.budgetSeconds ?? undefined }).split('\n')) ctx.log.info(line);
      return result;
    },

    async check() {
      return [];
    },
  });
}
