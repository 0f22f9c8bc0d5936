/** `with:` fields shared by the pgbouncer.* steps. */
import { z } from 'zod';
import type { Finding, StepContext } from '../../core/step.ts';
import { databaseEntry, entryNameSchema, sharedAdmin } from '../../pgbouncer/admin.ts';
import { type Console, type ConsoleParams, consoleParams, consolesFor } from '../../pgbouncer/consoles.ts';

export const databaseParam = {
  /** The [databases] entry clients connect to; defaults to outputs.database.name. */
  database: entryNameSchema.optional(),
};

export const entryOf = (ctx: StepContext, p: { database?: string }) => p.database ?? ctx.outputs.database.name;

/** The [databases] entry a step acts on, and the admin console of each PgBouncer it acts on. */
export async function entryAndConsoles(
  ctx: StepContext,
  p: { database?: string } & ConsoleParams,
): Promise<{ entry: string; consoles: Console[] }> {
  return { entry: entryOf(ctx, p), consoles: await consolesFor(ctx, p) };
}

/** pause's and resume's postcondition: an error for every PgBouncer whose entry is not in the wanted state. */
export async function pausedOnEvery(
  ctx: StepContext,
  p: { database?: string } & ConsoleParams,
  wanted: { paused: boolean; message: string; fix: string },
): Promise<Finding[]> {
  const { entry, consoles } = await entryAndConsoles(ctx, p);
  const findings: Finding[] = [];
  for (const console of consoles) {
    if ((await databaseEntry(await sharedAdmin(ctx, console), entry)).paused !== wanted.paused) {
      findings.push({
        severity: 'error',
        object: `pgbouncer database ${entry} on ${console.label}`,
        message: wanted.message,
        fix: wanted.fix,
      });
    }
  }
  return findings;
}

/** How long a PAUSE may wait for transactions in flight (pause, and resume's undo which pauses again). */
export const pauseWaitParams = {
  deadlineSeconds: z.number().positive().default(60),
  pollSeconds: z.number().positive().default(0.5),
};

/** `with:` of pgbouncer.pause and pgbouncer.resume, alike because resume's undo pauses again. */
export const pauseParams = z
  .object({
    ...databaseParam,
    ...pauseWaitParams,
    ...consoleParams,
  })
  .strict();
