/**
 * PAUSE and RESUME of one PgBouncer database, on one console or on all of them. While paused,
 * PgBouncer holds every client's next query (clients wait, they do not fail) and closes its server
 * connections once the transactions in flight finish, so the backend can be switched with nothing
 * connected to the old one.
 */
import { type StepContext, StepError } from '../core/step.ts';
import { adminCommand, commandThenPoll, databaseEntry, poolState, sharedAdmin } from './admin.ts';
import type { Console } from './consoles.ts';

export interface PauseTiming {
  deadlineSeconds: number;
  pollSeconds: number;
}

/** Pauses `entry` on one console and waits until its server connections are gone; on timeout resumes and fails. */
export async function pauseDatabase(ctx: StepContext, console: Console, entry: string, timing: PauseTiming): Promise<number> {
  const admin = await sharedAdmin(ctx, console);
  const started = ctx.now();
  const deadline = started + timing.deadlineSeconds * 1000;
  let last = '';
  const paused = await commandThenPoll(ctx, console, `PAUSE ${entry}`, {
    deadline,
    pollMs: timing.pollSeconds * 1000,
    // Paused means: flagged paused, and every server connection closed (none left in a transaction).
    done: async () => {
      const [state, pool] = [await databaseEntry(admin, entry), await poolState(admin, entry)];
      if (state.paused && pool.servers === 0) return true;
      last = `${pool.serversActive} server connections still in a transaction, ${pool.clientsWaiting} clients held`;
      ctx.log.progress({ label: `pausing PgBouncer database ${entry} on ${console.label}`, detail: last, deadline });
      return false;
    },
  });
  if (!paused) {
    // Holding clients longer would turn a slow transaction into an outage: let them go.
    await adminCommand(admin, `RESUME ${entry}`);
    throw new StepError(
      `Unable to pause PgBouncer database ${entry} on ${console.label}: transactions still running after ${timing.deadlineSeconds} s (${last}); resumed it`,
      [
        {
          severity: 'error',
          object: `pgbouncer database ${entry} on ${console.label}`,
          message: `PAUSE waits for transactions in flight, and some did not finish within ${timing.deadlineSeconds} s`,
          fix: 'find the long transactions (SHOW SERVERS on the console, pg_stat_activity on the server), end them or raise deadlineSeconds, then re-run',
        },
      ],
    );
  }
  return ctx.now() - started;
}

/**
 * Pauses `entry` on every console at once, all or nothing: when one fails, every console is resumed
 * (a client held by one pod while the others serve would only see a longer wait for nothing).
 * Returns the longest pause.
 */
export async function pauseAll(ctx: StepContext, consoles: readonly Console[], entry: string, timing: PauseTiming): Promise<number> {
  const outcomes = await Promise.allSettled(consoles.map((c) => pauseDatabase(ctx, c, entry, timing)));
  const failed = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [{ console: consoles[i]!, error: o.reason as unknown }] : []));
  if (failed.length === 0) return Math.max(0, ...outcomes.map((o) => (o as PromiseFulfilledResult<number>).value));
  // One console: pauseDatabase has already resumed it and said why.
  if (consoles.length === 1) throw failed[0]!.error;
  const resumed: string[] = [];
  const stuck: string[] = [];
  for (const console of consoles) {
    try {
      await resumeDatabase(ctx, console, entry);
      resumed.push(console.label);
    } catch (error) {
      stuck.push(`${console.label} (${(error as Error).message})`);
    }
  }
  const findings = failed.flatMap(({ console, error }) =>
    error instanceof StepError && error.findings.length > 0
      ? error.findings
      : [{ severity: 'error' as const, object: console.label, message: (error as Error).message }],
  );
  if (stuck.length > 0)
    findings.push({
      severity: 'error',
      object: `pgbouncer database ${entry}`,
      message: `could not be resumed on ${stuck.join(', ')}`,
      fix: `RESUME ${entry} on those consoles by hand`,
    });
  throw new StepError(
    `Unable to pause PgBouncer database ${entry} on every pod: ${failed.map(({ console, error }) => `${console.label}: ${(error as Error).message}`).join('; ')}; resumed ${resumed.join(', ') || 'none'}`,
    findings,
  );
}

/** Resumes `entry` on one console; returns how long the oldest held client had waited. No-op when not paused. */
export async function resumeDatabase(ctx: StepContext, console: Console, entry: string): Promise<number> {
  const admin = await sharedAdmin(ctx, console);
  if (!(await databaseEntry(admin, entry)).paused) return 0;
  const { longestWaitMs } = await poolState(admin, entry);
  await adminCommand(admin, `RESUME ${entry}`);
  return longestWaitMs;
}

/** Resumes `entry` on every console (each one tried even when another fails); returns the longest client wait. */
export async function resumeAll(ctx: StepContext, consoles: readonly Console[], entry: string): Promise<number> {
  const outcomes = await Promise.allSettled(consoles.map((c) => resumeDatabase(ctx, c, entry)));
  const failed = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [`${consoles[i]!.label}: ${(o.reason as Error).message}`] : []));
  if (failed.length > 0) {
    throw new StepError(`Unable to resume PgBouncer database ${entry} on every pod: ${failed.join('; ')}`, [
      {
        severity: 'error',
        object: `pgbouncer database ${entry}`,
        message: `still paused or unreachable: ${failed.join('; ')}`,
        fix: `RESUME ${entry} on those consoles, or re-run the step`,
      },
    ]);
  }
  return Math.max(0, ...outcomes.map((o) => (o as PromiseFulfilledResult<number>).value));
}
