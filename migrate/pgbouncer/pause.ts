/**
 * PAUSE and RESUME of one PgBouncer database. While paused, PgBouncer holds every client's next
 * query (clients wait, they do not fail) and closes its server connections once the transactions
 * in flight finish, so the backend can be switched with nothing connected to the old one.
 */
import { StepError, type StepContext } from '../core/step.ts';
import { adminCommand, commandThenPoll, databaseEntry, poolState, sharedAdmin } from './admin.ts';

export interface PauseTiming {
  deadlineSeconds: number;
  pollSeconds: number;
}

/** Pauses `entry` and waits until its server connections are gone; on timeout resumes and fails. */
export async function pauseDatabase(ctx: StepContext, entry: string, timing: PauseTiming): Promise<number> {
  const admin = await sharedAdmin(ctx);
  const started = ctx.now();
  const deadline = started + timing.deadlineSeconds * 1000;
  let last = '';
  const paused = await commandThenPoll(ctx, `PAUSE ${entry}`, {
    deadline,
    pollMs: timing.pollSeconds * 1000,
    // Paused means: flagged paused, and every server connection closed (none left in a transaction).
    done: async () => {
      const [state, pool] = [await databaseEntry(admin, entry), await poolState(admin, entry)];
      if (state.paused && pool.servers === 0) return true;
      last = `${pool.serversActive} server connections still in a transaction, ${pool.clientsWaiting} clients held`;
      ctx.log.progress({ label: `pausing PgBouncer database ${entry}`, detail: last, deadline });
      return false;
    },
  });
  if (!paused) {
    // Holding clients longer would turn a slow transaction into an outage: let them go.
    await adminCommand(admin, `RESUME ${entry}`);
    throw new StepError(`Unable to pause PgBouncer database ${entry}: transactions still running after ${timing.deadlineSeconds} s (${last}); resumed it`, [
      {
        severity: 'error',
        object: `pgbouncer database ${entry}`,
        message: `PAUSE waits for transactions in flight, and some did not finish within ${timing.deadlineSeconds} s`,
        fix: 'find the long transactions (SHOW SERVERS on the console, pg_stat_activity on the server), end them or raise deadlineSeconds, then re-run',
      },
    ]);
  }
  return ctx.now() - started;
}

/** Resumes `entry`; returns how long the oldest held client had waited. No-op when not paused. */
export async function resumeDatabase(ctx: StepContext, entry: string): Promise<number> {
  const admin = await sharedAdmin(ctx);
  if (!(await databaseEntry(admin, entry)).paused) return 0;
  const { longestWaitMs } = await poolState(admin, entry);
  await adminCommand(admin, `RESUME ${entry}`);
  return longestWaitMs;
}
