/**
 * postgres.freeze-writes: stops every application role writing to the source. Each role's previous
 * setting is journalled before it is changed; then the roles' existing sessions (which still carry
 * the old setting) are terminated, and the step waits until none of them remains and no transaction
 * of those roles holds uncommitted writes. From then on the source's WAL position is final for
 * application data: catch-up waits for exactly that.
 */
import { z } from 'zod';
import { pool } from '../../postgres/connections.ts';
import {
  defaultApplicationRoles,
  freezeRole,
  originalStates,
  READ_ONLY_SETTING,
  restoreRole,
  roleStates,
  sessionsStartedBefore,
  terminateSessions,
  writingSessions,
  type RoleFreezeChange,
} from '../../postgres/role-freeze.ts';
import { waitFor } from '../../aws/wait.ts';
import { defineStep, StepError, unable, type Finding, type StepContext } from '../../core/step.ts';

const params = z
  .object({
    /** Roles to freeze; by default every LOGIN role that is not a superuser, a replication role, the migration user or a built-in one. */
    roles: z.array(z.string().min(1)).min(1).optional(),
    /** read-only: new transactions of the roles are read-only; nologin also refuses their new connections. */
    mode: z.enum(['read-only', 'nologin']).default('read-only'),
    /** How long their old sessions may take to go away. */
    deadlineSeconds: z.number().positive().default(30),
  })
  .strict();
type Params = z.infer<typeof params>;

type RolePrevious = { role: string; previousReadOnly: string | null; previousCanLogin: boolean | null };
type Result = {
  roles: string[];
  mode: string;
  /** Epoch ms when the last old session was gone. */
  frozenAt: number;
  /** Source WAL position once frozen. */
  lsn: string;
  terminated: number;
  /** What unfreeze (or undo) restores. */
  previous: RolePrevious[];
};

async function selectRoles(ctx: StepContext, p: Params): Promise<string[]> {
  const source = await pool(ctx, 'source');
  // Roles frozen by an earlier attempt stay selected even once nologin hides them from the default.
  const earlier = [...originalStates(ctx.previousChanges).keys()];
  const chosen = p.roles ?? (await defaultApplicationRoles(source));
  return [...new Set([...chosen, ...earlier])].sort();
}

async function refusals(ctx: StepContext, roles: string[]): Promise<Finding[]> {
  const source = await pool(ctx, 'source');
  const states = await roleStates(source, roles);
  const me = (await source.query<{ u: string }>('select current_user as u')).rows[0]!.u;
  const findings: Finding[] = [];
  for (const role of roles) {
    const state = states.get(role)!;
    if (!state.exists) findings.push({ severity: 'error', object: `role ${role}`, message: 'does not exist on the source', fix: 'remove it from with.roles' });
    else if (role === me) findings.push({ severity: 'error', object: `role ${role}`, message: 'is the role the migration connects as; freezing it would stop the migration', fix: 'remove it from with.roles' });
    else if (state.superuser) findings.push({ severity: 'warning', object: `role ${role}`, message: 'is a superuser: it can override default_transaction_read_only per transaction' });
  }
  if (roles.length === 0) findings.push({ severity: 'warning', object: 'source roles', message: 'no application role found to freeze' });
  return findings;
}

const isFrozen = (readOnly: string | null) => readOnly !== null && ['on', 'true', 'yes', '1'].includes(readOnly.toLowerCase());

export const freezeWrites = defineStep<Params, Result>({
  kind: 'postgres.freeze-writes',
  summary: 'Make every application role read-only on the source and end their sessions',
  params,
  requires: ['postgres'],
  destructive: true,

  async probe(ctx, p) {
    const roles = await selectRoles(ctx, p);
    const findings = await refusals(ctx, roles);
    if (findings.some((f) => f.severity === 'error')) return { state: 'blocked', findings };
    const source = await pool(ctx, 'source');
    const states = await roleStates(source, roles);
    const database = (await source.query<{ d: string }>('select current_database() as d')).rows[0]!.d;
    return {
      state: 'ready',
      findings,
      plan: [
        `ALTER ROLE … IN DATABASE ${database} SET ${READ_ONLY_SETTING} = on${p.mode === 'nologin' ? ', and NOLOGIN,' : ''} for ${roles.length} roles: ${roles.join(', ')}`,
        ...roles.filter((r) => isFrozen(states.get(r)!.readOnly)).map((r) => `role ${r} is read-only already`),
        `terminate their sessions in ${database} and wait up to ${p.deadlineSeconds} s until none is left and none has uncommitted writes`,
      ],
    };
  },

  async apply(ctx, p) {
    try {
      const source = await pool(ctx, 'source');
      const roles = await selectRoles(ctx, p);
      const blocking = (await refusals(ctx, roles)).filter((f) => f.severity === 'error');
      if (blocking.length > 0) throw new StepError(blocking.map((f) => `${f.object} ${f.message}`).join('; '), blocking);
      const database = (await source.query<{ d: string }>('select current_database() as d')).rows[0]!.d;
      const originals = originalStates(ctx.previousChanges);
      const states = await roleStates(source, roles);
      for (const role of roles) {
        const state = states.get(role)!;
        const original = originals.get(role);
        // An earlier attempt recorded this role's true previous state; the current one may be our own freeze.
        const needsLoginRecord = p.mode === 'nologin' && (original?.previousCanLogin ?? null) === null;
        if (!original || needsLoginRecord) {
          const change: RoleFreezeChange = {
            action: 'freeze-role',
            role,
            database,
            previousReadOnly: original ? original.previousReadOnly : state.readOnly,
            previousCanLogin: p.mode === 'nologin' ? state.canLogin : null,
          };
          await ctx.record(change);
          originals.set(role, change);
        }
        await freezeRole(source, role, database, p.mode === 'nologin');
      }
      const cutoff = (await source.query<{ t: string }>('select clock_timestamp()::text as t')).rows[0]!.t;
      let terminated = 0;
      await waitFor(ctx, {
        label: 'ending sessions of frozen roles',
        deadline: ctx.now() + p.deadlineSeconds * 1000,
        intervalMs: 50,
        poll: async () => {
          const old = await sessionsStartedBefore(source, roles, cutoff);
          const writing = await writingSessions(source, roles);
          if (old.length === 0 && writing.length === 0) return { ready: true, value: undefined };
          terminated += await terminateSessions(source, [...new Set([...old, ...writing].map((s) => s.pid))]);
          return { ready: false, detail: `${old.length} sessions from before the freeze, ${writing.length} with uncommitted writes` };
        },
        timedOut: ({ detail }) =>
          new StepError(`sessions of frozen roles still open after ${p.deadlineSeconds} s (${detail})`, [
            { severity: 'error', object: `roles ${roles.join(', ')}`, message: detail, fix: 'resume to try again, or end them by hand (pg_terminate_backend); roll back to unfreeze' },
          ]),
      });
      const lsn = (await source.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn;
      const frozenAt = ctx.now();
      ctx.log.info(`froze ${roles.length} roles (${roles.join(', ')}), terminated ${terminated} sessions; source WAL at ${lsn}`);
      const previous = roles.map((role) => {
        const o = originals.get(role)!;
        return { role, previousReadOnly: o.previousReadOnly, previousCanLogin: o.previousCanLogin };
      });
      return { roles, mode: p.mode, frozenAt, lsn, terminated, previous };
    } catch (error) {
      throw unable('freeze writes on the source', error);
    }
  },

  async check(ctx, p, result) {
    const source = await pool(ctx, 'source');
    const states = await roleStates(source, result.roles);
    const findings: Finding[] = [];
    for (const role of result.roles) {
      const state = states.get(role)!;
      if (!isFrozen(state.readOnly)) findings.push({ severity: 'error', object: `role ${role}`, message: `${READ_ONLY_SETTING} is ${state.readOnly ?? 'not set'} in this database` });
      if (p.mode === 'nologin' && state.canLogin) findings.push({ severity: 'error', object: `role ${role}`, message: 'can still log in' });
    }
    for (const session of await writingSessions(source, result.roles)) {
      findings.push({ severity: 'error', object: `session ${session.pid} (role ${session.role})`, message: 'has uncommitted writes after the freeze', fix: `select pg_terminate_backend(${session.pid})` });
    }
    return findings;
  },

  async undo(ctx, _p, changes) {
    const originals = [...originalStates(changes).values()];
    try {
      const source = await pool(ctx, 'source');
      for (const original of originals) await restoreRole(source, original);
      if (originals.length > 0) ctx.log.info(`restored ${originals.map((o) => o.role).join(', ')} to their settings before the freeze`);
    } catch (error) {
      throw unable(`restore the frozen roles (${originals.map((o) => o.role).join(', ')})`, error);
    }
  },
});
