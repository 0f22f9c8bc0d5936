/**
 * pgbouncer.check-backend: reads (SHOW DATABASES) which server a PgBouncer database entry points
 * at, and fails when it is not the expected one — e.g. after the restart that should have moved it
 * to RDS. Every pod of the deployment is read (or the one PgBouncer outside the cluster); pods that
 * disagree fail the check. Read-only: it is "done" as soon as it has looked.
 */
import { z } from 'zod';
import { defineStep, type Finding } from '../../core/step.ts';
import { databaseEntry, sharedAdmin } from '../../pgbouncer/admin.ts';
import { consoleParams, consolesFor } from '../../pgbouncer/consoles.ts';
import { databaseParam, entryOf } from './params.ts';

const params = z
  .object({
    ...databaseParam,
    ...consoleParams,
    /** The backend it must point at; when absent the step only reports. */
    expect: z
      .object({ host: z.string().min(1), port: z.coerce.number().int().positive(), database: z.string().min(1).optional() })
      .strict()
      .optional(),
  })
  .strict();
type Params = z.infer<typeof params>;
type Entry = { console: string; host: string; port: number; dbname: string; paused: boolean };
type Result = { database: string; host: string; port: number; dbname: string; paused: boolean; consoles: Entry[] };

/** Where each PgBouncer points the entry now: the whole of probe and apply, which only report it. */
async function assess(ctx: Parameters<typeof sharedAdmin>[0], p: Params): Promise<Result> {
  const database = entryOf(ctx, p);
  const consoles: Entry[] = [];
  for (const console of await consolesFor(ctx, p)) {
    const e = await databaseEntry(await sharedAdmin(ctx, console), database);
    consoles.push({ console: console.label, host: e.host ?? '', port: e.port, dbname: e.database, paused: e.paused });
  }
  const first = consoles[0]!;
  return { database, host: first.host, port: first.port, dbname: first.dbname, paused: consoles.some((c) => c.paused), consoles };
}

const where = (e: { host: string; port: number; dbname: string }) => `${e.host}:${e.port}/${e.dbname}`;

export const pgbouncerCheckBackend = defineStep<Params, Result>({
  kind: 'pgbouncer.check-backend',
  summary: 'Report (and optionally require) the server a PgBouncer database entry points at, on every pod',
  params,
  requires: ['pgbouncer'],
  destructive: false,
  async probe(ctx, p) {
    const result = await assess(ctx, p);
    return {
      state: 'done',
      result,
      plan: result.consoles.map((c) => `${c.console}: database ${result.database} points at ${where(c)}${c.paused ? ' (paused)' : ''}`),
    };
  },
  apply: (ctx, p) => assess(ctx, p),
  async check(_ctx, p, result) {
    const findings: Finding[] = [];
    const want = p.expect;
    for (const c of result.consoles) {
      const wrong = want
        ? c.host !== want.host || c.port !== want.port || (want.database !== undefined && c.dbname !== want.database)
        : where(c) !== where(result);
      if (!wrong) continue;
      findings.push({
        severity: 'error',
        object: `pgbouncer database ${result.database} on ${c.console}`,
        message: want
          ? `points at ${where(c)}, expected ${want.host}:${want.port}${want.database ? `/${want.database}` : ''}`
          : `points at ${where(c)}, while ${result.consoles[0]!.console} points at ${where(result)}`,
        fix: 'check the PgBouncer config source (the secret the pods read, or the ini) and restart or reload PgBouncer',
      });
    }
    return findings.length > 0 ? findings : undefined;
  },
});
