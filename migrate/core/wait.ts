/**
 * Polling with progress and a deadline, on the context's clock: tests inject `now`/`sleep` and run
 * an hour-long wait in microseconds.
 */
import type { StepContext } from './step.ts';

export type PollState<T> = { ready: true; value: T } | { ready: false; detail: string; done?: number; total?: number };

export interface WaitOptions<T> {
  /** Progress label, e.g. `waiting for replicas`. */
  label: string;
  /** Epoch ms after which the wait fails. */
  deadline: number;
  intervalMs: number;
  poll(): Promise<PollState<T>>;
  /** The error to throw when the deadline passes, given the last state seen. */
  timedOut(last: { detail: string }): Error;
}

export async function waitFor<T>(ctx: Pick<StepContext, 'now' | 'sleep' | 'log' | 'signal'>, options: WaitOptions<T>): Promise<T> {
  for (;;) {
    const state = await options.poll();
    if (state.ready) return state.value;
    const { detail, done, total } = state;
    ctx.log.progress({ label: options.label, detail, deadline: options.deadline, ...(total === undefined ? {} : { done, total }) });
    const left = options.deadline - ctx.now();
    if (left <= 0) throw options.timedOut(state);
    if (ctx.signal.aborted) throw new Error(`${options.label}: interrupted (${detail})`);
    await ctx.sleep(Math.min(options.intervalMs, left));
  }
}

/** A deadline `minutes` from now on the context's clock. */
export function deadlineIn(ctx: Pick<StepContext, 'now'>, minutes: number): number {
  return ctx.now() + minutes * 60_000;
}
