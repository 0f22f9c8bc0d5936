/**
 * `run.undo`: undoes every run of a runbook on this stack that is not undone yet (or one named run),
 * newest change first across those runs, using the changes their journals recorded. A runbook run
 * twice, or in pieces with `--only`, is undone completely. It records `{undoing}` before and
 * `{undone}` after each step's undo, so a rollback that is itself interrupted resumes without
 * undoing anything twice, and a later rollback skips what an earlier one undid.
 */
import { z } from 'zod';
import { listRuns, newestRunResult, type RunState, type StepState } from './journal.ts';
import { type KindLookup, loadRunbook, type Runbook, resolveParams } from './runbook.ts';
import { defineStep, type Json, type StepContext, StepError, type StepKind } from './step.ts';

export interface UndoDependencies {
  stateDir: string;
  kinds: KindLookup;
  knownKinds: () => string[];
}

const params = z
  .object({
    /** Runbook name (e.g. `d-day`): every run of it not undone yet is undone. */
    runbook: z.string().min(1).optional(),
    /** A specific run id instead. */
    runId: z.string().min(1).optional(),
    /** Steps to leave alone (e.g. keep the read replicas). */
    keep: z.array(z.string()).default([]),
  })
  .strict()
  .refine((p) => Boolean(p.runbook) !== Boolean(p.runId), 'give exactly one of runbook or runId');
type Params = z.infer<typeof params>;
type StepRef = { run: string; step: string };
type UndoResult = { runs: string[]; undone: StepRef[]; notUndoable: StepRef[]; kept: StepRef[] };

/** The runs to undo, oldest first; runs that never got to a step have nothing to undo. */
function targetRuns(ctx: StepContext, deps: UndoDependencies, p: Params): RunState[] {
  const runs = listRuns(deps.stateDir, ctx.stack).filter((r) => r.runId !== ctx.runId && r.started);
  if (p.runId) {
    const found = runs.find((r) => r.runId === p.runId);
    if (!found) throw new StepError(`No run '${p.runId}' of stack '${ctx.stack}' in ${deps.stateDir}`);
    return [found];
  }
  return runs.filter((r) => r.runbook.name === p.runbook);
}

const key = (run: string, step: string) => `${run}\u0000${step}`;

const marker = (change: Json, name: 'undoing' | 'undone') =>
  change && typeof change === 'object' && !Array.isArray(change) && typeof change[name] === 'string' && typeof change.run === 'string'
    ? key(change.run, change[name] as string)
    : undefined;

/** Steps already undone by this rollback's earlier attempts or by any earlier rollback run. */
function alreadyUndone(ctx: StepContext, deps: UndoDependencies): Set<string> {
  const changes = [
    ...ctx.previousChanges,
    ...listRuns(deps.stateDir, ctx.stack)
      .filter((r) => r.runId !== ctx.runId)
      .flatMap((r) => r.steps.flatMap((s) => s.changes)),
  ];
  return new Set(changes.map((c) => marker(c, 'undone')).filter((k): k is string => Boolean(k)));
}

interface Pending {
  run: RunState;
  step: StepState;
}

interface Plan {
  runs: RunState[];
  /** Newest first: by when the step started, then the newer run, then its place in the runbook. */
  pending: Pending[];
  kept: StepRef[];
  undoneBefore: StepRef[];
}

function plan(ctx: StepContext, deps: UndoDependencies, p: Params): Plan {
  const runs = targetRuns(ctx, deps, p);
  const already = alreadyUndone(ctx, deps);
  const changed = runs.flatMap((run, order) =>
    run.steps.map((step, index) => ({ run, step, order, index })).filter(({ step: s }) => s.changes.length > 0 || s.status === 'applied'),
  );
  const ref = ({ run, step }: Pending): StepRef => ({ run: run.runId, step: step.id });
  const undoneBefore = changed.filter((c) => already.has(key(c.run.runId, c.step.id)));
  const open = changed.filter((c) => !already.has(key(c.run.runId, c.step.id)));
  return {
    runs,
    pending: open
      .filter((c) => !p.keep.includes(c.step.id))
      .sort((a, b) => (b.step.startedAt ?? 0) - (a.step.startedAt ?? 0) || b.order - a.order || b.index - a.index),
    kept: open.filter((c) => p.keep.includes(c.step.id)).map(ref),
    undoneBefore: undoneBefore.map(ref),
  };
}

const list = (refs: StepRef[]) => refs.map((r) => `${r.step} of run ${r.run}`).join(', ');

/** Why there is nothing to undo, in words an operator can act on. */
function nothingToUndo(ctx: StepContext, p: Params, found: Plan): string {
  const what = p.runId ? `run ${p.runId}` : `runbook '${p.runbook}'`;
  if (found.runs.length === 0) return `nothing to undo: no run of ${what} on stack ${ctx.stack} has changed anything`;
  const parts = [`${found.runs.length} run(s) of ${what} (${found.runs.map((r) => r.runId).join(', ')})`];
  if (found.undoneBefore.length > 0) parts.push(`already undone: ${list(found.undoneBefore)}`);
  if (found.kept.length > 0) parts.push(`kept as asked: ${list(found.kept)}`);
  if (found.undoneBefore.length + found.kept.length === 0) parts.push('none of them changed anything');
  return `nothing to undo: ${parts.join('; ')}`;
}

export function undoStepKind(deps: UndoDependencies): StepKind<Params, UndoResult> {
  return defineStep<Params, UndoResult>({
    kind: 'run.undo',
    summary: 'Undo every run of a runbook on this stack not undone yet (or one run), newest change first, from their journals',
    params,
    requires: [],
    destructive: true,
    async probe(ctx, p) {
      const found = plan(ctx, deps, p);
      const result = { runs: found.runs.map((r) => r.runId), undone: [], notUndoable: [], kept: found.kept };
      if (found.pending.length === 0) return { state: 'done', skip: nothingToUndo(ctx, p, found), result };
      return {
        state: 'ready',
        plan: [
          ...found.pending.map(({ run, step }) =>
            deps.kinds(step.kind ?? '')?.undo
              ? `undo ${step.id} (${step.kind}, ${step.changes.length} recorded change(s)) of run ${run.runId}`
              : `cannot undo ${step.id} (${step.kind}) of run ${run.runId}: no undo for this kind; it stays as it is`,
          ),
          ...(found.kept.length > 0 ? [`kept as asked: ${list(found.kept)}`] : []),
          ...(found.undoneBefore.length > 0 ? [`undone by an earlier rollback: ${list(found.undoneBefore)}`] : []),
        ],
      };
    },
    async apply(ctx, p) {
      const found = plan(ctx, deps, p);
      const runbooks = new Map<string, Runbook>();
      const runbookOf = (run: RunState) => {
        let runbook = runbooks.get(run.runId);
        if (!runbook) {
          runbook = loadRunbook(run.runbook.path, {
            outputs: ctx.outputs,
            configOverrides: run.config,
            kinds: deps.kinds,
            knownKinds: deps.knownKinds,
          });
          runbooks.set(run.runId, runbook);
        }
        return runbook;
      };
      const undone: StepRef[] = [];
      const notUndoable: StepRef[] = [];
      for (const { run, step: state } of found.pending) {
        const runbook = runbookOf(run);
        const step = runbook.steps.find((s) => s.id === state.id);
        if (!step?.kind.undo) {
          notUndoable.push({ run: run.runId, step: state.id });
          ctx.log.warn(`${state.id} (${state.kind}) of run ${run.runId} has no undo; left as it is`);
          continue;
        }
        await ctx.record({ undoing: state.id, run: run.runId });
        const results = new Map<string, Json>(run.steps.filter((s) => s.result !== undefined).map((s) => [s.id, s.result ?? null]));
        const stepParams = await resolveParams(runbook, step, {
          outputs: ctx.outputs,
          runId: run.runId,
          stack: ctx.stack,
          results,
          otherRun: newestRunResult(deps.stateDir, ctx.stack, run.runId),
          secret: ctx.secret,
        });
        // The undo's own records land in this (rollback) run's journal, tagged with the step they undo.
        const undoCtx: StepContext = { ...ctx, record: (change) => ctx.record({ step: state.id, change }) };
        ctx.log.info(`undoing ${state.id} (${state.kind}) of run ${run.runId}`);
        await step.kind.undo(undoCtx, stepParams, state.changes, (state.result ?? undefined) as Json | undefined);
        await ctx.record({ undone: state.id, run: run.runId });
        undone.push({ run: run.runId, step: state.id });
      }
      ctx.log.info(`undid ${undone.length} step(s)${undone.length > 0 ? `: ${list(undone)}` : ''}`);
      const remains = [
        ...notUndoable.map((r) => `${r.step} of run ${r.run} (no undo)`),
        ...found.kept.map((r) => `${r.step} of run ${r.run} (kept as asked)`),
      ];
      ctx.log.info(remains.length > 0 ? `remains as it is: ${remains.join(', ')}` : 'nothing of those runs remains to undo');
      return { runs: found.runs.map((r) => r.runId), undone, notUndoable, kept: found.kept };
    },
    async check() {},
  });
}
