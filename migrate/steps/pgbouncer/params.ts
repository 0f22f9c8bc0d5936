/** `with:` fields shared by the pgbouncer.* steps. */
import { entryNameSchema } from '../../pgbouncer/admin.ts';
import type { StepContext } from '../../core/step.ts';

export const databaseParam = {
  /** The [databases] entry clients connect to; defaults to outputs.database.name. */
  database: entryNameSchema.optional(),
};

export const entryOf = (ctx: StepContext, p: { database?: string }) => p.database ?? ctx.outputs.database.name;
