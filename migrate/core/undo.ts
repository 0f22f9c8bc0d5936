/**
 * `run.undo`: undoes an earlier run of this stack, newest step first, using the changes its journal
 * recorded. It records `{undoing}` before and `{undone}` after each step's undo, so a rollback that
 * is itself interrupted resumes without undoing anything twice.
 */
import { z } from 'zod';
import { listRuns, newestRunResult, type RunState } from './journal.ts';
import { loadRunbook, resolveParams, type KindLookup } from './runbook.ts';
import { defineStep, StepError, type Json, type StepContext, type StepKind } from './step.ts';

export interface UndoDependencies {
  stateDir: string;
  kinds: KindLookup;
  knownKinds: () => string[];
}

const params = z
  .object({
    /** Runbook name (e.g. `d-day`): its newest run is undone. */
    runbook: z.string().min(1).optional(),
    /** A specific run id instead. */
    runId: z.string().min(1).optional(),
    /** Steps of that run to leave alone (e.g. keep the read replicas). */
    keep: z.array(z.string()).default([]),
  })
  .strict()
  .refine((p) => Boolean(p.runbook) !== Boolean(p.runId), 'give exactly one of runbook or runId');
type Params = z.infer<typeof params>;
type UndoResult = { run: string | null; undone: string[]; notUndoable: string[] };

function targetRun(ctx: StepContext, deps: UndoDependencies, p: Params): RunState | undefined {
  const runs = listRuns(deps.stateDir, ctx.stack).filter((r) => r.runId !== ctx.runId);
  if (p.runId) {
    const found = runs.find((r) => r.runId === p.runId);
    if (!found) throw new StepError(`No run '${p.runId}' of stack '${ctx.stack}' in ${deps.stateDir}`);
    return found;
  }
  return runs.filter((r) => r.runbook.name === p.runbook).at(-1);
}

/**
 * Steps of the run that changed something, newest first. Steps started within the same millisecond
 * are ordered by their place in the runbook, which is the order a run executes them in.
 */
function undoable(run: RunState, keep: string[]) {
  return run.steps
    .map((step, index) => ({ step, index }))
    .filter(({ step: s }) => (s.changes.length > 0 || s.status === 'applied') && !keep.includes(s.id))
    .sort((a, b) => (b.step.startedAt ?? 0) - (a.step.startedAt ?? 0) || b.index - a.index)
    .map(({ step }) => step);
}

const marker = (change: Json, key: 'undoing' | 'undone') =>
  change && typeof change === 'object' && !Array.isArray(change) && typeof change[key] === 'string' ? (change[key] as string) : undefined;

/** Steps of `run` already undone by this rollback's earlier attempts or by any earlier rollback run. */
function alreadyUndone(ctx: StepContext, deps: UndoDependencies, run: RunState): Set<string> {
  const changes = [
    ...ctx.previousChanges,
    ...listRuns(deps.stateDir, ctx.stack)
      .filter((r) => r.runId !== ctx.runId)
      .flatMap((r) => r.steps.flatMap((s) => s.changes)),
  ];
  return new Set(
    changes
      .filter((c) => c && typeof c === 'object' && !Array.isArray(c) && c.run === run.runId)
      .map((c) => marker(c, 'undone'))
      .filter((id): id is string => Boolean(id)),
  );
}

export function undoStepKind(deps: UndoDependencies): StepKind<Params, UndoResult> {
  return defineStep<Params, UndoResult>({
    kind: 'run.undo',
    summary: 'Undo an earlier run of this stack, newest step first, from its journal',
    params,
    requires: [],
    destructive: true,
    async probe(ctx, p) {
      const run = targetRun(ctx, deps, p);
      if (!run) return { state: 'done', plan: [`no run of ${p.runbook} for stack ${ctx.stack}: nothing to undo`], result: { run: null, undone: [], notUndoable: [] } };
      const already = alreadyUndone(ctx, deps, run);
      const steps = undoable(run, p.keep).filter((s) => !already.has(s.id));
      if (steps.length === 0) return { state: 'done', plan: [`run ${run.runId}: nothing left to undo`], result: { run: run.runId, undone: [], notUndoable: [] } };
      return {
        state: 'ready',
        plan: steps.map((s) => {
          const kind = deps.kinds(s.kind ?? '');
          return kind?.undo ? `undo ${s.id} (${s.kind}, ${s.changes.length} recorded change(s)) of run ${run.runId}` : `cannot undo ${s.id} (${s.kind}): no undo for this kind`;
        }),
      };
    },
    async apply(ctx, p) {
      const run = targetRun(ctx, deps, p);
      if (!run) return { run: null, undone: [], notUndoable: [] };
      const runbook = loadRunbook(run.runbook.path, { outputs: ctx.outputs, configOverrides: run.config, kinds: deps.kinds, knownKinds: deps.knownKinds });
      const results = new Map<string, Json>(run.steps.filter((s) => s.result !== undefined).map((s) => [s.id, s.result ?? null]));
      const already = alreadyUndone(ctx, deps, run);
      const undone: string[] = [];
      const notUndoable: string[] = [];
      for (const state of undoable(run, p.keep)) {
        if (already.has(state.id)) continue;
        const step = runbook.steps.find((s) => s.id === state.id);
        if (!step?.kind.undo) {
          notUndoable.push(state.id);
          ctx.log.warn(`${state.id} (${state.kind}) has no undo; left as it is`);
          continue;
        }
        await ctx.record({ undoing: state.id, run: run.runId });
        const stepParams = await resolveParams(runbook, step, { outputs: ctx.outputs, runId: run.runId, stack: ctx.stack, results, otherRun: newestRunResult(deps.stateDir, ctx.stack, run.runId), secret: ctx.secret });
        // The undo's own records land in this (rollback) run's journal, tagged with the step they undo.
        const undoCtx: StepContext = { ...ctx, record: (change) => ctx.record({ step: state.id, change }) };
        ctx.log.info(`undoing ${state.id} (${state.kind})`);
        await step.kind.undo(undoCtx, stepParams, state.changes, (state.result ?? undefined) as Json | undefined);
        await ctx.record({ undone: state.id, run: run.runId });
        undone.push(state.id);
      }
      return { run: run.runId, undone, notUndoable };
    },
    async check() {},
  });
}
