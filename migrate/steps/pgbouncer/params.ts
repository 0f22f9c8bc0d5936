/** `with:` fields shared by the pgbouncer.* steps. */
import { z } from 'zod';
import { entryNameSchema } from '../../pgbouncer/admin.ts';
import type { StepContext } from '../../core/step.ts';

export const databaseParam = {
  /** The [databases] entry clients connect to; defaults to outputs.database.name. */
  database: entryNameSchema.optional(),
};

export const entryOf = (ctx: StepContext, p: { database?: string }) => p.database ?? ctx.outputs.database.name;

/** How long a PAUSE may wait for transactions in flight (pause, and resume's undo which pauses again). */
export const pauseWaitParams = {
  deadlineSeconds: z.number().positive().default(60),
  pollSeconds: z.number().positive().default(0.5),
};
