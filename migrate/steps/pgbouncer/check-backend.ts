/**
 * pgbouncer.check-backend: reads (SHOW DATABASES) which server a PgBouncer database entry points
 * at, and fails when it is not the expected one — e.g. after the restart that should have moved it
 * to RDS. Read-only: it is "done" as soon as it has looked.
 */
import { z } from 'zod';
import { databaseEntry, sharedAdmin } from '../../pgbouncer/admin.ts';
import { defineStep } from '../../core/step.ts';
import { databaseParam, entryOf } from './params.ts';

const params = z
  .object({
    ...databaseParam,
    /** The backend it must point at; when absent the step only reports. */
    expect: z.object({ host: z.string().min(1), port: z.coerce.number().int().positive(), database: z.string().min(1).optional() }).strict().optional(),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { database: string; host: string; port: number; dbname: string; paused: boolean };

async function look(ctx: Parameters<typeof sharedAdmin>[0], p: Params): Promise<Result> {
  const e = await databaseEntry(await sharedAdmin(ctx), entryOf(ctx, p));
  return { database: e.name, host: e.host ?? '', port: e.port, dbname: e.database, paused: e.paused };
}

export const pgbouncerCheckBackend = defineStep<Params, Result>({
  kind: 'pgbouncer.check-backend',
  summary: 'Report (and optionally require) the server a PgBouncer database entry points at',
  params,
  requires: ['pgbouncer'],
  destructive: false,
  async probe(ctx, p) {
    const result = await look(ctx, p);
    return { state: 'done', result, plan: [`PgBouncer database ${result.database} points at ${result.host}:${result.port}/${result.dbname}${result.paused ? ' (paused)' : ''}`] };
  },
  apply: (ctx, p) => look(ctx, p),
  async check(_ctx, p, result) {
    const want = p.expect;
    if (!want) return;
    if (result.host !== want.host || result.port !== want.port || (want.database !== undefined && result.dbname !== want.database)) {
      return [
        {
          severity: 'error',
          object: `pgbouncer database ${result.database}`,
          message: `points at ${result.host}:${result.port}/${result.dbname}, expected ${want.host}:${want.port}${want.database ? `/${want.database}` : ''}`,
          fix: 'check the PgBouncer config source (the secret the pods read, or the ini) and restart or reload PgBouncer',
        },
      ];
    }
  },
});
