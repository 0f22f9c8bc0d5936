/**
 * postgres.unfreeze: lets application roles write to the source again, for a rollback runbook or an
 * emergency by hand. A normal rollback does not need it (it undoes freeze-writes with the journalled
 * previous settings); this step exists for when that journal is not at hand. Given freeze-writes'
 * `previous` result it restores exactly; given only role names it removes the read-only setting.
 * It also drops the write-fence slot: once writes resume, a slot left behind only holds WAL on the
 * source until its disk fills.
 */
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type Finding, type StepContext, unable } from '../../core/step.ts';
import { pool } from '../../postgres/connections.ts';
import { READ_ONLY_SETTING, type RoleFreezeChange, restoreRole, roleStates } from '../../postgres/role-freeze.ts';
import { REPLICATION_NAME } from '../../postgres/sql.ts';
import { DEFAULT_FENCE_SLOT, dropFenceSlot, fenceSlotExists } from '../../postgres/write-fence.ts';

const previousSchema = z.object({
  role: z.string().min(1),
  previousReadOnly: z.string().nullable(),
  previousCanLogin: z.boolean().nullable(),
});

const params = z
  .object({
    /** freeze-writes' result.previous, e.g. `${{ steps.freeze.result.previous }}`. */
    previous: z.array(previousSchema).min(1).optional(),
    /** Roles whose read-only setting is simply reset. */
    roles: z.array(z.string().min(1)).min(1).optional(),
    /** With `roles`: also ALTER ROLE … LOGIN (after an enforced freeze). */
    login: z.boolean().default(false),
    /** The write-fence slot freeze-writes made, dropped if present. */
    fenceSlot: z
      .string()
      .regex(REPLICATION_NAME, 'must be a lower-case identifier (a-z, 0-9, _; at most 63 characters)')
      .default(DEFAULT_FENCE_SLOT),
  })
  .strict()
  .refine((p) => Boolean(p.previous) !== Boolean(p.roles), 'give exactly one of previous (freeze-writes result) or roles');
type Params = z.infer<typeof params>;
type Result = { roles: string[] };

async function plannedRestores(ctx: StepContext, p: Params): Promise<RoleFreezeChange[]> {
  const database = (await (await pool(ctx, 'source')).query<{ d: string }>('select current_database() as d')).rows[0]!.d;
  if (p.previous) return p.previous.map((r) => ({ action: 'freeze-role', database, ...r }));
  return p.roles!.map((role) => ({
    action: 'freeze-role',
    role,
    database,
    previousReadOnly: null,
    previousCanLogin: p.login ? true : null,
  }));
}

/** The restores to make, and the roles among them that do not exist (which block). */
async function assess(ctx: StepContext, p: Params): Promise<{ findings: Finding[]; restores: RoleFreezeChange[] }> {
  const restores = await plannedRestores(ctx, p);
  const states = await roleStates(
    await pool(ctx, 'source'),
    restores.map((r) => r.role),
  );
  const findings = restores
    .filter((r) => !states.get(r.role)?.exists)
    .map((r) => ({
      severity: 'error' as const,
      object: `role ${r.role}`,
      message: 'does not exist on the source',
      fix: 'remove it from the step parameters',
    }));
  return { findings, restores };
}

export const unfreeze = defineStep<Params, Result>({
  kind: 'postgres.unfreeze',
  summary: 'Let application roles write to the source again (reverse of freeze-writes)',
  params,
  requires: ['postgres'],
  destructive: true,

  async probe(ctx, p) {
    const { findings, restores } = await assess(ctx, p);
    if (blocks(findings)) return { state: 'blocked', findings };
    const slot = (await fenceSlotExists(await pool(ctx, 'source'), p.fenceSlot)) ? [`drop the write-fence slot ${p.fenceSlot}`] : [];
    return {
      state: 'ready',
      plan: [
        ...restores.map(
          (r) =>
            `role ${r.role}: ${r.previousReadOnly === null ? `RESET ${READ_ONLY_SETTING}` : `SET ${READ_ONLY_SETTING} = ${r.previousReadOnly}`}${r.previousCanLogin ? ', LOGIN' : ''} in ${r.database}`,
        ),
        ...slot,
      ],
    };
  },

  async apply(ctx, p) {
    try {
      const { findings, restores } = await assess(ctx, p);
      if (blocks(findings)) throw blockedBy(findings);
      const source = await pool(ctx, 'source');
      for (const restore of restores) {
        await ctx.record({ action: 'unfreeze-role', role: restore.role });
        await restoreRole(source, restore);
      }
      ctx.log.info(`unfroze ${restores.map((r) => r.role).join(', ')}`);
      if (await fenceSlotExists(source, p.fenceSlot)) {
        await ctx.record({ action: 'drop-fence-slot', slot: p.fenceSlot });
        await dropFenceSlot(source, p.fenceSlot);
        ctx.log.info(`dropped the write-fence slot ${p.fenceSlot}`);
      }
      return { roles: restores.map((r) => r.role) };
    } catch (error) {
      throw unable('unfreeze the application roles on the source', error);
    }
  },

  async check(ctx, p) {
    const restores = await plannedRestores(ctx, p);
    const states = await roleStates(
      await pool(ctx, 'source'),
      restores.map((r) => r.role),
    );
    return restores
      .filter(
        (r) =>
          (states.get(r.role)?.readOnly ?? null) !== r.previousReadOnly || (r.previousCanLogin === true && !states.get(r.role)?.canLogin),
      )
      .map((r) => ({
        severity: 'error' as const,
        object: `role ${r.role}`,
        message: `${READ_ONLY_SETTING} is ${states.get(r.role)?.readOnly ?? 'not set'}, expected ${r.previousReadOnly ?? 'not set'}`,
      }));
  },
});
