/**
 * pgbouncer.reload: RELOAD, optionally after pointing a [databases] entry at a new backend in the
 * ini file (a PgBouncer on a VM, or the local rehearsal). Then it confirms through SHOW DATABASES
 * that PgBouncer now points there, and waits until no server connection to the old backend is
 * left. Undo writes the previous backend back and reloads.
 *
 * On Kubernetes the ini comes from a secret or config map: change that (ssm.swap) and restart the
 * deployment (kube.restart) instead of passing `backend`; without `configFile` the RELOAD goes to
 * every pod of the deployment.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { defineStep, type Json, type StepContext, StepError } from '../../core/step.ts';
import { waitFor } from '../../core/wait.ts';
import { kubeAccessParams } from '../../kube/client.ts';
import { adminCommand, type DatabaseEntry, databaseEntry, serverConnections, sharedAdmin } from '../../pgbouncer/admin.ts';
import { type Console, consolesFor } from '../../pgbouncer/consoles.ts';
import { type Backend, readBackend, rewriteBackend } from '../../pgbouncer/ini.ts';
import { databaseParam, entryAndConsoles } from './params.ts';

const backendSchema = z
  .object({ host: z.string().min(1), port: z.coerce.number().int().positive(), database: z.string().min(1).optional() })
  .strict();

const params = z
  .object({
    ...databaseParam,
    /** Where the entry should point after the reload; needs configFile. */
    backend: backendSchema.optional(),
    /** The pgbouncer.ini PgBouncer reads (absolute path, writable here). */
    configFile: z.string().startsWith('/', 'must be an absolute path').optional(),
    /** How long to wait for server connections to the old backend to close. */
    deadlineSeconds: z.number().positive().default(60),
    pollSeconds: z.number().positive().default(0.5),
    ...kubeAccessParams,
  })
  .strict()
  .refine((p) => !p.backend || p.configFile, { message: 'backend needs configFile (the pgbouncer.ini to rewrite)', path: ['configFile'] });
type Params = z.infer<typeof params>;
type Result = { database: string; host: string; port: number; dbname: string; consoles: string[] };

interface ReloadChange {
  action: 'reload';
  database: string;
  configFile: string | null;
  previous: { host: string; port: number; database: string } | null;
  [key: string]: Json;
}

const resultOf = (e: DatabaseEntry, consoles: Console[]): Result => ({
  database: e.name,
  host: e.host ?? '',
  port: e.port,
  dbname: e.database,
  consoles: consoles.map((c) => c.label),
});
const matches = (e: DatabaseEntry, b: Backend) => e.host === b.host && e.port === b.port && (!b.database || e.database === b.database);
const where = (b: { host: string | null; port: number; database?: string }) => `${b.host}:${b.port}${b.database ? `/${b.database}` : ''}`;

function readIni(path: string, entry: string): string {
  if (!existsSync(path))
    throw new StepError(`Unable to switch the PgBouncer backend: ${path} does not exist`, [
      {
        severity: 'error',
        object: `with.configFile ${path}`,
        message: 'file not found',
        fix: 'pass the pgbouncer.ini this PgBouncer was started with',
      },
    ]);
  const text = readFileSync(path, 'utf8');
  try {
    readBackend(text, entry);
  } catch (error) {
    throw new StepError(`Unable to switch the PgBouncer backend: ${path}: ${(error as Error).message}`, [
      {
        severity: 'error',
        object: `with.configFile ${path}`,
        message: (error as Error).message,
        fix: 'pass with.database, the entry name in [databases]',
      },
    ]);
  }
  return text;
}

/** Rewrites the entry (in place, so the file keeps the owner PgBouncer reads it as), reloads, verifies, waits for old connections. */
async function pointAt(
  ctx: StepContext,
  console: Console,
  entry: string,
  configFile: string | undefined,
  backend: Backend | undefined,
  p: Params,
): Promise<DatabaseEntry> {
  const admin = await sharedAdmin(ctx, console);
  if (configFile && backend) writeFileSync(configFile, rewriteBackend(readIni(configFile, entry), entry, backend));
  await adminCommand(admin, 'RELOAD');
  const now = await databaseEntry(admin, entry);
  if (backend && !matches(now, backend)) {
    throw new StepError(
      `Unable to switch PgBouncer database ${entry} to ${where(backend)}: after RELOAD it still points at ${where(now)}`,
      [
        {
          severity: 'error',
          object: `pgbouncer database ${entry}`,
          message: `points at ${where(now)}`,
          fix: `check that ${configFile} is the file this PgBouncer reads (pgbouncer -d <file>) and that it can read it`,
        },
      ],
    );
  }
  if (!backend) return now;
  // RELOAD marks connections to the old destination to close when released, but PgBouncer 1.18
  // left an idle one to the old server open after switching back and forth (test/pgbouncer);
  // RECONNECT marks them all, so none survives the switch.
  await adminCommand(admin, `RECONNECT ${entry}`);
  let lingering = 0;
  await waitFor(ctx, {
    label: `closing server connections of ${entry} to the old backend`,
    deadline: ctx.now() + p.deadlineSeconds * 1000,
    intervalMs: p.pollSeconds * 1000,
    poll: async () => {
      lingering = (await serverConnections(admin, entry)).filter((s) => s.closeNeeded).length;
      return lingering === 0
        ? { ready: true, value: undefined }
        : { ready: false, detail: `${lingering} still open (in a transaction or session)` };
    },
    timedOut: () =>
      new StepError(
        `Unable to switch PgBouncer database ${entry}: ${lingering} connections to the old backend still open after ${p.deadlineSeconds} s`,
        [
          {
            severity: 'error',
            object: `pgbouncer database ${entry}`,
            message: 'server connections close only when released; a long transaction or session holds one',
            fix: 'pause first (pgbouncer.pause) so no connection is in use, or end the long transactions',
          },
        ],
      ),
  });
  return now;
}

/** Where the entry points now, as the first console sees it. */
async function assess(ctx: StepContext, p: Params): Promise<{ entry: string; consoles: Console[]; current: DatabaseEntry }> {
  const { entry, consoles } = await entryAndConsoles(ctx, p);
  return { entry, consoles, current: await databaseEntry(await sharedAdmin(ctx, consoles[0]!), entry) };
}

export const pgbouncerReload = defineStep<Params, Result>({
  kind: 'pgbouncer.reload',
  summary:
    'RELOAD PgBouncer (every pod, or the one whose ini is here, optionally pointing a [databases] entry at a new backend first) and confirm where it points',
  params,
  requires: ['pgbouncer'],
  destructive: true,
  async probe(ctx, p) {
    const { entry, consoles, current } = await assess(ctx, p);
    if (p.backend && matches(current, p.backend)) return { state: 'done', result: resultOf(current, consoles) };
    if (!p.backend)
      return { state: 'ready', plan: consoles.map((c) => `${c.label}: RELOAD (database ${entry} now points at ${where(current)})`) };
    readIni(p.configFile!, entry);
    return {
      state: 'ready',
      plan: [
        `rewrite ${p.configFile} [databases] ${entry}: ${where(current)} → ${where(p.backend)}`,
        'RELOAD',
        `RECONNECT ${entry}; wait for connections to the old backend to close (up to ${p.deadlineSeconds} s)`,
      ],
    };
  },
  async apply(ctx, p) {
    const { entry, consoles, current } = await assess(ctx, p);
    const earlier = ctx.previousChanges.find((c): c is ReloadChange => (c as Partial<ReloadChange>)?.action === 'reload');
    if (!earlier) {
      await ctx.record({
        action: 'reload',
        database: entry,
        configFile: p.configFile ?? null,
        previous: p.backend ? { host: current.host ?? '', port: current.port, database: current.database } : null,
      } satisfies ReloadChange);
    }
    let now = current;
    for (const console of consoles) {
      now = await pointAt(ctx, console, entry, p.configFile, p.backend, p);
      ctx.log.info(`PgBouncer database ${entry} on ${console.label} points at ${where(now)}`);
    }
    return resultOf(now, consoles);
  },
  async check(ctx, p) {
    if (!p.backend) return;
    const { entry, current: now } = await assess(ctx, p);
    if (!matches(now, p.backend))
      return [{ severity: 'error', object: `pgbouncer database ${entry}`, message: `points at ${where(now)}, not ${where(p.backend)}` }];
  },
  async undo(ctx, p, changes) {
    const first = changes.find((c): c is ReloadChange => (c as Partial<ReloadChange>)?.action === 'reload');
    if (!first?.previous || !first.configFile) return;
    const [console] = await consolesFor(ctx, { ...p, configFile: first.configFile });
    await pointAt(ctx, console!, first.database, first.configFile, first.previous, p);
  },
});
