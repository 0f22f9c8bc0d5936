/**
 * postgres.freeze-writes: stops every application role writing to the source. Each role's previous
 * setting is journalled before it is changed; then the roles' existing sessions (which still carry
 * the old setting) are terminated, and the step waits until none of them remains and no transaction
 * of those roles holds uncommitted writes. From then on the source's WAL position is final for
 * application data: catch-up waits for exactly that.
 *
 * enforced (the default) makes the roles NOLOGIN as well as read-only: read-only alone is a default
 * that any session overrides (BEGIN READ WRITE), and owners pass every privilege test, so only a role
 * that cannot connect surely cannot write. PgBouncer paused before the freeze holds its clients and
 * closes its server connections (any left are ended like other sessions); after the switch it opens
 * new ones on the target. advisory only sets read-only, so the roles can still read the source.
 *
 * Then the write fence: a logical slot on the source, created once the roles are frozen, from which
 * postgres.write-fence later reads every row change committed since (nothing, if the freeze held).
 */
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type Finding, type StepContext, StepError, unable } from '../../core/step.ts';
import { waitFor } from '../../core/wait.ts';
import { pool } from '../../postgres/connections.ts';
import {
  defaultApplicationRoles,
  freezeRole,
  openSessions,
  originalStates,
  READ_ONLY_SETTING,
  type RoleFreezeChange,
  type RoleState,
  restoreRole,
  roleStates,
  sessionsStartedBefore,
  terminateSessions,
  unfrozenMembers,
  writingSessions,
} from '../../postgres/role-freeze.ts';
import { REPLICATION_NAME } from '../../postgres/sql.ts';
import {
  createFenceSlot,
  DEFAULT_FENCE_SLOT,
  dropFenceSlot,
  type FenceSlotChange,
  fenceSlotExists,
  freeSlots,
  isFenceSlotChange,
} from '../../postgres/write-fence.ts';

const params = z
  .object({
    /** Roles to freeze; by default every LOGIN role that is not a superuser, a replication role, the migration user or a built-in one. */
    roles: z.array(z.string().min(1)).min(1).optional(),
    /** enforced: read-only and NOLOGIN, so no session of the roles can write; advisory: read-only by default only. */
    mode: z.enum(['enforced', 'advisory']).default('enforced'),
    /** How long their old sessions (and the fence slot) may take. */
    deadlineSeconds: z.number().positive().default(30),
    /** Create the write-fence slot that postgres.write-fence reads after catch-up. */
    fence: z.boolean().default(true),
    fenceSlot: z
      .string()
      .regex(REPLICATION_NAME, 'must be a lower-case identifier (a-z, 0-9, _; at most 63 characters)')
      .default(DEFAULT_FENCE_SLOT),
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
  /** The write-fence slot, when `fence`. */
  fenceSlot: string | null;
};

async function selectRoles(ctx: StepContext, p: Params): Promise<string[]> {
  const source = await pool(ctx, 'source');
  // Roles frozen by an earlier attempt stay selected even once nologin hides them from the default.
  const earlier = [...originalStates(ctx.previousChanges).keys()];
  const chosen = p.roles ?? (await defaultApplicationRoles(source));
  return [...new Set([...chosen, ...earlier])].sort();
}

/** The roles to freeze, their current state, the source database, and what refuses or warns about the freeze. */
async function assess(
  ctx: StepContext,
  p: Params,
): Promise<{ findings: Finding[]; roles: string[]; states: Map<string, RoleState>; database: string }> {
  const source = await pool(ctx, 'source');
  const roles = await selectRoles(ctx, p);
  const states = await roleStates(source, roles);
  const { me, database } = (
    await source.query<{ me: string; database: string }>('select current_user as me, current_database() as database')
  ).rows[0]!;
  const findings: Finding[] = [];
  for (const role of roles) {
    const state = states.get(role)!;
    if (!state.exists)
      findings.push({
        severity: 'error',
        object: `role ${role}`,
        message: 'does not exist on the source',
        fix: 'remove it from with.roles',
      });
    else if (role === me)
      findings.push({
        severity: 'error',
        object: `role ${role}`,
        message: 'is the role the migration connects as; freezing it would stop the migration',
        fix: 'remove it from with.roles',
      });
    else if (state.superuser && p.mode === 'advisory')
      findings.push({
        severity: 'warning',
        object: `role ${role}`,
        message: 'is a superuser: it can override default_transaction_read_only per transaction',
      });
  }
  if (roles.length === 0) findings.push({ severity: 'warning', object: 'source roles', message: 'no application role found to freeze' });
  for (const { member, role } of await unfrozenMembers(
    source,
    roles.filter((r) => states.get(r)!.exists),
  )) {
    findings.push({
      severity: 'warning',
      object: `role ${member}`,
      message: `is not frozen but is a member of frozen role ${role}, so it can still write with ${role}'s rights (SET ROLE)`,
      fix: `add ${member} to with.roles`,
    });
  }
  if (p.mode === 'advisory') {
    findings.push({
      severity: 'warning',
      object: 'mode advisory',
      message:
        'the roles stay able to write with BEGIN READ WRITE or SET default_transaction_read_only = off; only the write fence will tell',
    });
  }
  if (p.fence && !ownFenceSlot(ctx, p)) {
    if (await fenceSlotExists(source, p.fenceSlot)) {
      findings.push({
        severity: 'error',
        object: `replication slot ${p.fenceSlot} (source)`,
        message: 'already exists',
        fix: `drop it if it is a leftover (select pg_drop_replication_slot('${p.fenceSlot}')), or choose another with.fenceSlot`,
      });
    } else if ((await freeSlots(source)) < 1) {
      findings.push({
        severity: 'error',
        object: 'source parameter max_replication_slots',
        message: `no free slot for the write fence ${p.fenceSlot}`,
        fix: 'raise max_replication_slots (a restart), drop an unused slot, or set with.fence: false',
      });
    }
  }
  return { findings, roles, states, database };
}

/** An earlier attempt of this step journalled (and may have created) the fence slot. */
const ownFenceSlot = (ctx: StepContext, p: Params) => ctx.previousChanges.some((c) => isFenceSlotChange(c) && c.slot === p.fenceSlot);

const isFrozen = (readOnly: string | null) => readOnly !== null && ['on', 'true', 'yes', '1'].includes(readOnly.toLowerCase());

export const freezeWrites = defineStep<Params, Result>({
  kind: 'postgres.freeze-writes',
  summary: 'Make every application role read-only on the source and end their sessions',
  params,
  requires: ['postgres'],
  destructive: true,

  async probe(ctx, p) {
    const { findings, roles, states, database } = await assess(ctx, p);
    if (blocks(findings)) return { state: 'blocked', findings };
    return {
      state: 'ready',
      findings,
      plan: [
        `ALTER ROLE … IN DATABASE ${database} SET ${READ_ONLY_SETTING} = on${p.mode === 'enforced' ? ', and NOLOGIN,' : ''} for ${roles.length} roles: ${roles.join(', ')}`,
        ...roles.filter((r) => isFrozen(states.get(r)!.readOnly)).map((r) => `role ${r} is read-only already`),
        `terminate their sessions in ${database} and wait up to ${p.deadlineSeconds} s until none is left and none has uncommitted writes`,
        ...(p.fence ? [`create the write-fence slot ${p.fenceSlot} (pgoutput) on the source`] : []),
      ],
    };
  },

  async apply(ctx, p) {
    try {
      const source = await pool(ctx, 'source');
      const { findings, roles, states, database } = await assess(ctx, p);
      if (blocks(findings)) throw blockedBy(findings.filter((f) => f.severity === 'error'));
      const originals = originalStates(ctx.previousChanges);
      for (const role of roles) {
        const state = states.get(role)!;
        const original = originals.get(role);
        // An earlier attempt recorded this role's true previous state; the current one may be our own freeze.
        const needsLoginRecord = p.mode === 'enforced' && (original?.previousCanLogin ?? null) === null;
        if (!original || needsLoginRecord) {
          const change: RoleFreezeChange = {
            action: 'freeze-role',
            role,
            database,
            previousReadOnly: original ? original.previousReadOnly : state.readOnly,
            previousCanLogin: p.mode === 'enforced' ? state.canLogin : null,
          };
          await ctx.record(change);
          originals.set(role, change);
        }
        await freezeRole(source, role, database, p.mode === 'enforced');
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
            {
              severity: 'error',
              object: `roles ${roles.join(', ')}`,
              message: detail,
              fix: 'resume to try again, or end them by hand (pg_terminate_backend); roll back to unfreeze',
            },
          ]),
      });
      if (p.fence && !(ownFenceSlot(ctx, p) && (await fenceSlotExists(source, p.fenceSlot)))) {
        const change: FenceSlotChange = { action: 'create-fence-slot', slot: p.fenceSlot };
        await ctx.record(change);
        // An attempt killed between the record and here may have left the slot: it fenced from earlier, which is stricter.
        if (!(await fenceSlotExists(source, p.fenceSlot))) await createFenceSlot(source, p.fenceSlot, p.deadlineSeconds * 1000);
      }
      const lsn = (await source.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn;
      const frozenAt = ctx.now();
      ctx.log.info(`froze ${roles.length} roles (${roles.join(', ')}), terminated ${terminated} sessions; source WAL at ${lsn}`);
      const previous = roles.map((role) => {
        const o = originals.get(role)!;
        return { role, previousReadOnly: o.previousReadOnly, previousCanLogin: o.previousCanLogin };
      });
      return { roles, mode: p.mode, frozenAt, lsn, terminated, previous, fenceSlot: p.fence ? p.fenceSlot : null };
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
      if (!isFrozen(state.readOnly))
        findings.push({
          severity: 'error',
          object: `role ${role}`,
          message: `${READ_ONLY_SETTING} is ${state.readOnly ?? 'not set'} in this database`,
        });
      if (p.mode === 'enforced' && state.canLogin)
        findings.push({ severity: 'error', object: `role ${role}`, message: 'can still log in' });
    }
    const writing = await writingSessions(source, result.roles);
    for (const session of writing) {
      findings.push({
        severity: 'error',
        object: `session ${session.pid} (role ${session.role})`,
        message: 'has uncommitted writes after the freeze',
        fix: `select pg_terminate_backend(${session.pid})`,
      });
    }
    if (p.mode === 'enforced') {
      // Background workers (pg_cron and the like) connect without the login check.
      for (const session of (await openSessions(source, result.roles)).filter((s) => !writing.some((w) => w.pid === s.pid))) {
        findings.push({
          severity: 'warning',
          object: `session ${session.pid} (role ${session.role})`,
          message: 'is connected although the role cannot log in (a background worker?); the write fence will report what it writes',
        });
      }
    }
    if (result.fenceSlot && !(await fenceSlotExists(source, result.fenceSlot))) {
      findings.push({
        severity: 'error',
        object: `replication slot ${result.fenceSlot} (source)`,
        message: 'the write-fence slot is missing',
        fix: 'roll back and freeze again, or run without the write fence (with.fence: false)',
      });
    }
    return findings;
  },

  async undo(ctx, _p, changes) {
    const originals = [...originalStates(changes).values()];
    try {
      const source = await pool(ctx, 'source');
      for (const original of originals) await restoreRole(source, original);
      if (originals.length > 0) ctx.log.info(`restored ${originals.map((o) => o.role).join(', ')} to their settings before the freeze`);
      for (const slot of new Set(changes.filter(isFenceSlotChange).map((c) => c.slot))) {
        if (await dropFenceSlot(source, slot)) ctx.log.info(`dropped the write-fence slot ${slot}`);
      }
    } catch (error) {
      throw unable(`restore the frozen roles (${originals.map((o) => o.role).join(', ')})`, error);
    }
  },
});
