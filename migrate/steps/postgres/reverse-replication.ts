/**
 * Reverse replication after the switch, so that a rollback loses none of the writes made on RDS.
 *
 * postgres.reverse-ready (go/no-go, before the freeze): everything reverse-replication needs, as findings.
 *
 * postgres.reverse-replication (inside the write window, after replication-stop, before writes resume
 * on the target): a publication and a logical slot on the target, created while nothing writes there
 * (the slot's LSN is the switch point), then a subscription on the source attached to that slot, no
 * copy. Undo is the lossless way back, run by rollback with PgBouncer paused: wait until the source
 * has applied every target write (LSN-exact), carry every sequence back (never moving one of the
 * source's backwards), then drop the subscription, the slot and the publication, put back the replica
 * identities and memberships it changed, and drop the write fence (its slot and publication).
 *
 * postgres.reverse-replication-stop (the legacy is retired): drops all of it without carrying back.
 */
import { escapeIdentifier } from 'pg';
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type Finding, type Json, type StepContext, StepError, unable } from '../../core/step.ts';
import { waitFor } from '../../core/wait.ts';
import { pool } from '../../postgres/connections.ts';
import { subscriptionInfo } from '../../postgres/replication.ts';
import { replicationNames } from '../../postgres/replication-names.ts';
import {
  applyWorker,
  carrySequencesBack,
  createReversePublication,
  createReverseSlot,
  createReverseSubscription,
  DEFAULT_REVERSE_NAME,
  dropReversePublication,
  dropReverseSlot,
  dropReverseSubscription,
  grantMembership,
  identityName,
  isSuperuserRole,
  keylessTables,
  publicationState,
  publishedTables,
  type ReverseNames,
  reverseConninfo,
  revokeMembership,
  setReplicaIdentity,
  type TargetRole,
  type TargetTable,
  targetRole,
  targetSlot,
  targetTables,
  unreadableSequenceOwners,
  waitApplied,
} from '../../postgres/reverse-replication.ts';
import { REPLICATION_NAME } from '../../postgres/sql.ts';
import {
  DEFAULT_FENCE_PUBLICATION,
  DEFAULT_FENCE_SLOT,
  dropFencePublication,
  dropFenceSlot,
  publicationExists,
} from '../../postgres/write-fence.ts';

const name = z.string().regex(REPLICATION_NAME, 'must be a lower-case identifier (a-z, 0-9, _; at most 63 characters)');
const names = {
  /** Publication on the target. */
  publication: name.default(DEFAULT_REVERSE_NAME),
  /** Logical slot (pgoutput) on the target. */
  slot: name.default(DEFAULT_REVERSE_NAME),
  /** Subscription on the source. */
  subscription: name.default(DEFAULT_REVERSE_NAME),
};
/** Keyless tables: make their replica identity FULL on the target (recorded, put back by undo), or refuse. */
const keyless = z.enum(['replica-identity-full', 'block']).default('replica-identity-full');
const fence = { fenceSlot: name.default(DEFAULT_FENCE_SLOT), fencePublication: name.default(DEFAULT_FENCE_PUBLICATION) };

// ---------------------------------------------------------------------------------------------
// What both the go/no-go and the step check on the target.

/** Keyless tables as findings: errors when refused, else what the step will do to them. */
export function keylessFindings(tables: TargetTable[], mode: 'replica-identity-full' | 'block'): Finding[] {
  return keylessTables(tables).map((t) =>
    mode === 'block'
      ? {
          severity: 'error',
          object: `table ${t.name} (target)`,
          message: `has no primary key and REPLICA IDENTITY ${identityName(t.replicaIdentity).toUpperCase()}: once published for the reverse replication, the application's UPDATE and DELETE on it fail`,
          fix: `add a primary key, or alter table ${t.name} replica identity full (or with.keyless: replica-identity-full)`,
        }
      : {
          severity: 'info',
          object: `table ${t.name} (target)`,
          message: `has no primary key: its REPLICA IDENTITY will be set FULL for the reverse replication (put back by rollback)`,
        },
  );
}

/** The roles whose membership the connecting role needs, and what stops it getting them. */
async function membershipNeeds(
  target: Awaited<ReturnType<typeof pool>>,
  role: TargetRole,
  tables: TargetTable[],
  mode: 'replica-identity-full' | 'block',
): Promise<{ needed: string[]; findings: Finding[] }> {
  if (role.superuser) return { needed: [], findings: [] };
  const owners = new Set<string>();
  for (const t of publishedTables(tables)) if (!t.owned) owners.add(t.owner);
  if (mode === 'replica-identity-full') for (const t of keylessTables(tables)) if (!t.owned) owners.add(t.owner);
  for (const owner of await unreadableSequenceOwners(target)) owners.add(owner);
  owners.delete(role.name);
  const needed = [...owners].sort();
  const findings: Finding[] = [];
  for (const owner of needed) {
    if (await isSuperuserRole(target, owner))
      findings.push({
        severity: 'error',
        object: `role ${owner} (target)`,
        message: `owns replicated tables or sequences and is a superuser, so role ${role.name} cannot gain its rights to publish them`,
        fix: `alter the tables' owner to a non-superuser role, or connect as a superuser`,
      });
    else if (!role.createRole)
      findings.push({
        severity: 'error',
        object: `role ${role.name} (target)`,
        message: `does not own what role ${owner} owns and cannot grant itself membership (no CREATEROLE): publishing a table needs its ownership`,
        fix: `grant ${owner} to ${role.name}`,
      });
    else if (role.major >= 16)
      findings.push({
        severity: 'warning',
        object: `role ${owner} (target)`,
        message: `role ${role.name} will grant itself membership; from PostgreSQL 16 CREATEROLE allows that only with ADMIN OPTION on ${owner}`,
        fix: `if the grant is refused: grant ${owner} to ${role.name} with admin option, as a role that may`,
      });
  }
  return { needed, findings };
}

function roleFindings(role: TargetRole, publicationMissing: boolean): Finding[] {
  const findings: Finding[] = [];
  if (!role.replication)
    findings.push({
      severity: 'error',
      object: `role ${role.name} (target)`,
      message: 'may not create a logical replication slot or stream from it (no REPLICATION, not a member of rds_replication)',
      fix: role.rds ? `grant rds_replication to ${role.name}` : `alter role ${role.name} replication`,
    });
  if (publicationMissing && !role.createInDatabase)
    findings.push({
      severity: 'error',
      object: `role ${role.name} (target)`,
      message: 'has no CREATE on the database, so it cannot create the reverse publication',
      fix: `grant create on database <name> to ${role.name}`,
    });
  return findings;
}

function missingPath(ctx: StepContext): Finding[] {
  return ctx.outputs.reversePath
    ? []
    : [
        {
          severity: 'error',
          object: 'outputs reversePath',
          message: 'is not set: the source does not know how to reach the target',
          fix: 'deploy the stack version that outputs reversePath (the reverse network path), or set it in the outputs',
        },
      ];
}

// ---------------------------------------------------------------------------------------------
// postgres.reverse-ready

const readyParams = z
  .object({
    ...names,
    keyless,
  })
  .strict();
type ReadyParams = z.infer<typeof readyParams>;
type ReadyResult = { tables: number; keyless: string[]; allTables: boolean; memberships: string[] };

async function readiness(ctx: StepContext, p: ReadyParams): Promise<{ findings: Finding[]; result: ReadyResult }> {
  const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
  const findings: Finding[] = [...missingPath(ctx)];
  const t = (
    await target.query(
      `select current_setting('wal_level') as wal_level,
              current_setting('max_replication_slots')::int - (select count(*)::int from pg_replication_slots) as free_slots,
              current_setting('max_wal_senders')::int - (select count(*)::int from pg_stat_replication) as free_senders,
              (select setting from pg_settings where name = 'rds.logical_replication') as rds_logical`,
    )
  ).rows[0];
  if (t.wal_level !== 'logical')
    findings.push({
      severity: 'error',
      object: 'target parameter wal_level',
      message: `is ${t.wal_level}; the reverse replication publishes from the target`,
      fix:
        t.rds_logical !== null
          ? 'set rds.logical_replication = 1 in the parameter group and reboot'
          : 'set wal_level = logical and restart',
    });
  if (t.free_slots < 1)
    findings.push({
      severity: 'error',
      object: 'target parameter max_replication_slots',
      message: 'no free replication slot for the reverse slot',
      fix: 'raise max_replication_slots (a reboot), or drop an unused slot',
    });
  if (t.free_senders < 1)
    findings.push({
      severity: 'error',
      object: 'target parameter max_wal_senders',
      message: 'no free WAL sender for the source’s subscription',
      fix: 'raise max_wal_senders (a reboot)',
    });
  const role = await targetRole(target);
  const tables = await targetTables(target);
  findings.push(...roleFindings(role, true));
  const memberships = await membershipNeeds(target, role, tables, p.keyless);
  findings.push(...memberships.findings, ...keylessFindings(tables, p.keyless));

  const s = (
    await source.query(
      `select current_setting('max_replication_slots')::int - (select count(*)::int from pg_replication_origin) as free_origins,
              current_setting('max_logical_replication_workers')::int
                - (select count(*)::int from pg_stat_subscription where pid is not null) as free_workers,
              current_setting('max_worker_processes')::int
                - (select count(*)::int from pg_stat_activity where backend_type not in
                    ('client backend', 'autovacuum launcher', 'autovacuum worker', 'walsender', 'checkpointer', 'background writer',
                     'walwriter', 'startup', 'archiver', 'walreceiver', 'io worker', 'walsummarizer', 'slotsync worker')) as free_bgworkers,
              (select rolsuper from pg_roles where rolname = current_user) as superuser,
              current_setting('server_version_num')::int / 10000 as major`,
    )
  ).rows[0];
  if (s.free_origins < 1)
    findings.push({
      severity: 'error',
      object: 'source parameter max_replication_slots',
      message:
        'no free replication origin for the reverse subscription (the subscriber tracks its progress in one; their number is max_replication_slots)',
      fix: 'raise max_replication_slots on the source (a restart)',
    });
  if (s.free_workers < 1)
    findings.push({
      severity: 'error',
      object: 'source parameter max_logical_replication_workers',
      message: 'no free logical replication worker for the reverse subscription’s apply worker',
      fix: 'raise max_logical_replication_workers on the source (a restart)',
    });
  if (s.free_bgworkers < 1)
    findings.push({
      severity: 'error',
      object: 'source parameter max_worker_processes',
      message: 'no free background worker for the reverse subscription’s apply worker',
      fix: 'raise max_worker_processes on the source (a restart)',
    });
  if (!s.superuser && s.major < 16)
    findings.push({
      severity: 'error',
      object: 'source role (the migration user)',
      message: `is not a superuser; CREATE SUBSCRIPTION on PostgreSQL ${s.major} needs one`,
      fix: 'connect to the source as a superuser',
    });
  const [pub, slot, sub] = await Promise.all([
    publicationState(target, p.publication),
    targetSlot(target, p.slot),
    subscriptionInfo(source, p.subscription),
  ]);
  if (pub)
    findings.push({
      severity: 'error',
      object: `publication ${p.publication} (target)`,
      message: 'already exists (left by an earlier run?)',
      fix: `drop publication ${p.publication} on the target, or run postgres.reverse-replication-stop`,
    });
  if (slot)
    findings.push({
      severity: 'error',
      object: `replication slot ${p.slot} (target)`,
      message: 'already exists (left by an earlier run?); it holds WAL on the target',
      fix: `select pg_drop_replication_slot('${p.slot}') on the target`,
    });
  if (sub)
    findings.push({
      severity: 'error',
      object: `subscription ${p.subscription} (source)`,
      message: 'already exists (left by an earlier run?)',
      fix: `drop subscription ${p.subscription} on the source`,
    });
  return {
    findings,
    result: {
      tables: publishedTables(tables).length,
      keyless: keylessTables(tables).map((x) => x.name),
      allTables: role.superuser,
      memberships: memberships.needed,
    },
  };
}

export const reverseReady = defineStep<ReadyParams, ReadyResult>({
  kind: 'postgres.reverse-ready',
  summary: 'Go/no-go: the target can publish and the source can subscribe for the reverse replication',
  params: readyParams,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    const { findings, result } = await readiness(ctx, p);
    if (blocks(findings)) return { state: 'blocked', findings };
    return { state: 'ready', findings, plan: ['check that the reverse replication can be set up at the switch (read-only)'], result };
  },

  async apply(ctx, p) {
    const { findings, result } = await readiness(ctx, p);
    if (blocks(findings)) throw blockedBy(findings, 'the reverse replication could not be set up');
    for (const f of findings) ctx.log.info(`${f.object}: ${f.message}`);
    return result;
  },

  async check() {},
});

// ---------------------------------------------------------------------------------------------
// postgres.reverse-replication

const params = z
  .object({
    ...names,
    /** The forward subscription on the target: it must be gone, or the two would echo each other's changes. */
    forwardSubscription: replicationNames.subscription,
    /** CA bundle path on the legacy server for sslmode verify-ca/verify-full (the RDS CA). */
    // An empty string is a runbook's "none" (config values cannot be absent).
    sslRootCert: z.preprocess(
      (v) => (v === '' ? undefined : v),
      z.string().startsWith('/', 'must be an absolute path on the legacy server').optional(),
    ),
    keyless,
    /**
     * Wait for the source's apply worker to start before returning (and check it runs). false: only
     * the objects inside the write window (the slot keeps every target write from its LSN, whenever
     * the worker starts); postgres.reverse-health waits for the worker once writes have resumed.
     */
    waitForWorker: z.boolean().default(true),
    /** How long the source's apply worker may take to start. */
    workerDeadlineSeconds: z.number().positive().default(60),
    /** Undo: how long the source may take to apply the target's writes. */
    deadlineSeconds: z.number().positive().default(600),
    pollMs: z.number().int().positive().default(100),
    ...fence,
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = {
  publication: string;
  slot: string;
  subscription: string;
  /** The reverse slot's LSN on the target: the switch point. */
  lsn: string | null;
  tables: number;
  allTables: boolean;
  replicaIdentityFull: string[];
  membershipsGranted: string[];
};

type Change =
  | { action: 'reverse-grant-membership'; role: string }
  | { action: 'reverse-replica-identity'; schema: string; table: string; previous: string }
  | { action: 'reverse-create-publication'; name: string }
  | { action: 'reverse-create-slot'; name: string }
  | { action: 'reverse-slot-lsn'; name: string; lsn: string }
  | { action: 'reverse-create-subscription'; name: string };

const recorded = <A extends Change['action']>(changes: readonly Json[], action: A): Extract<Change, { action: A }>[] =>
  changes.filter(
    (c): c is Json => typeof c === 'object' && c !== null && !Array.isArray(c) && (c as { action?: string }).action === action,
  ) as unknown as Extract<Change, { action: A }>[];

const reverseNames = (p: Params): ReverseNames => ({ publication: p.publication, slot: p.slot, subscription: p.subscription });

async function assess(ctx: StepContext, p: Params) {
  const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
  const findings: Finding[] = [...missingPath(ctx)];
  const [role, tables, pub, slot, sub, forward] = await Promise.all([
    targetRole(target),
    targetTables(target),
    publicationState(target, p.publication),
    targetSlot(target, p.slot),
    subscriptionInfo(source, p.subscription),
    subscriptionInfo(target, p.forwardSubscription),
  ]);
  if (forward)
    findings.push({
      severity: 'error',
      object: `subscription ${p.forwardSubscription} (target)`,
      message: 'the forward replication still runs: the target would send its changes back to the source that sent them',
      fix: 'run postgres.replication-stop first',
      awaitsEarlierStep: true,
    });
  const mine = (action: Change['action'], n: string) =>
    recorded(ctx.previousChanges, action).some((c) => (c as { name: string }).name === n);
  const complete = Boolean(pub && slot && sub && sub.slotName === p.slot && sub.publications.includes(p.publication));
  if (!complete) {
    if (pub && !mine('reverse-create-publication', p.publication))
      findings.push({
        severity: 'error',
        object: `publication ${p.publication} (target)`,
        message: 'exists, but this run did not create it',
        fix: `drop publication ${p.publication} on the target if it is a leftover`,
      });
    if (slot && !mine('reverse-create-slot', p.slot))
      findings.push({
        severity: 'error',
        object: `replication slot ${p.slot} (target)`,
        message: 'exists, but this run did not create it: its position is not the switch point',
        fix: `select pg_drop_replication_slot('${p.slot}') on the target if it is a leftover`,
      });
    if (sub && !mine('reverse-create-subscription', p.subscription))
      findings.push({
        severity: 'error',
        object: `subscription ${p.subscription} (source)`,
        message: 'exists, but this run did not create it',
        fix: `drop subscription ${p.subscription} on the source if it is a leftover`,
      });
  }
  findings.push(...roleFindings(role, !pub));
  const memberships = await membershipNeeds(target, role, tables, p.keyless);
  findings.push(...memberships.findings, ...keylessFindings(tables, p.keyless).filter((f) => f.severity === 'error'));
  return { findings, role, tables, pub, slot, sub, complete, needed: memberships.needed };
}

function resultOf(p: Params, a: Awaited<ReturnType<typeof assess>>, lsn: string | null, changes: readonly Json[]): Result {
  return {
    publication: p.publication,
    slot: p.slot,
    subscription: p.subscription,
    lsn,
    tables: a.role.superuser ? a.tables.length : publishedTables(a.tables).length,
    allTables: a.role.superuser,
    replicaIdentityFull: [...new Set(recorded(changes, 'reverse-replica-identity').map((c) => `${c.schema}.${c.table}`))],
    membershipsGranted: [...new Set(recorded(changes, 'reverse-grant-membership').map((c) => c.role))],
  };
}

async function waitForWorker(ctx: StepContext, p: Pick<Params, 'subscription' | 'workerDeadlineSeconds' | 'pollMs'>): Promise<void> {
  const source = await pool(ctx, 'source');
  await waitFor(ctx, {
    label: `apply worker of subscription ${p.subscription} on the source`,
    deadline: ctx.now() + p.workerDeadlineSeconds * 1000,
    intervalMs: p.pollMs,
    poll: async () => {
      const sub = await subscriptionInfo(source, p.subscription);
      if (sub && (await applyWorker(source, sub.oid))) return { ready: true, value: undefined };
      return { ready: false, detail: sub ? (sub.enabled ? 'not running yet' : 'subscription disabled') : 'subscription missing' };
    },
    timedOut: ({ detail }) =>
      new StepError(`the reverse subscription's apply worker did not start: ${detail}`, [
        {
          severity: 'error',
          object: `subscription ${p.subscription} (source)`,
          message: `no apply worker (${detail})`,
          fix: "read the source's server log (cannot connect to the target through outputs.reversePath? no free worker?), fix it, and resume",
        },
      ]),
  });
}

export const reverseReplication = defineStep<Params, Result>({
  kind: 'postgres.reverse-replication',
  summary: 'Replicate the target back to the source from the switch point, so a rollback loses nothing',
  params,
  requires: ['postgres'],
  destructive: true,

  async probe(ctx, p) {
    const a = await assess(ctx, p);
    if (a.complete) {
      const lsn = recorded(ctx.previousChanges, 'reverse-slot-lsn').at(-1)?.lsn ?? null;
      return { state: 'done', findings: a.findings, result: resultOf(p, a, lsn, ctx.previousChanges) };
    }
    if (blocks(a.findings)) return { state: 'blocked', findings: a.findings };
    const keyless = keylessTables(a.tables);
    return {
      state: 'ready',
      findings: a.findings,
      plan: [
        ...a.needed.map((r) => `GRANT ${r} TO ${a.role.name} on the target (it owns replicated tables; revoked by rollback)`),
        ...(p.keyless === 'replica-identity-full' ? keyless.map((t) => `ALTER TABLE ${t.name} REPLICA IDENTITY FULL on the target`) : []),
        a.pub
          ? `publication ${p.publication} exists on the target`
          : `CREATE PUBLICATION ${p.publication} ${a.role.superuser ? 'FOR ALL TABLES' : `FOR TABLE (${publishedTables(a.tables).length} tables)`} on the target`,
        a.slot ? `slot ${p.slot} exists on the target` : `create logical slot ${p.slot} (pgoutput) on the target: the switch point`,
        a.sub
          ? `subscription ${p.subscription} exists on the source`
          : `CREATE SUBSCRIPTION ${p.subscription} on the source to ${ctx.outputs.reversePath?.host ?? '?'}:${ctx.outputs.reversePath?.port ?? '?'} (${ctx.outputs.reversePath?.via ?? '?'}) attached to slot ${p.slot}, no copy`,
      ],
    };
  },

  async apply(ctx, p) {
    try {
      const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
      const a = await assess(ctx, p);
      const made: Json[] = [];
      const all = () => [...ctx.previousChanges, ...made];
      const record = async (change: Change) => {
        await ctx.record(change as unknown as Json);
        made.push(change as unknown as Json);
      };
      if (a.complete) {
        if (p.waitForWorker) await waitForWorker(ctx, p);
        return resultOf(p, a, recorded(all(), 'reverse-slot-lsn').at(-1)?.lsn ?? null, all());
      }
      if (blocks(a.findings)) throw blockedBy(a.findings);
      for (const role of a.needed) {
        await record({ action: 'reverse-grant-membership', role });
        await grantMembership(target, role);
      }
      if (p.keyless === 'replica-identity-full') {
        for (const t of keylessTables(a.tables)) {
          await record({ action: 'reverse-replica-identity', schema: t.schema, table: t.table, previous: t.replicaIdentity });
          await setReplicaIdentity(target, t.schema, t.table, 'full');
        }
      }
      if (!a.pub) {
        await record({ action: 'reverse-create-publication', name: p.publication });
        await createReversePublication(target, p.publication, a.role.superuser ? 'all' : publishedTables(a.tables));
        ctx.log.info(
          `created publication ${p.publication} on the target (${a.role.superuser ? 'all tables' : `${publishedTables(a.tables).length} tables`})`,
        );
      }
      let lsn = recorded(all(), 'reverse-slot-lsn').at(-1)?.lsn ?? null;
      if (!a.slot) {
        await record({ action: 'reverse-create-slot', name: p.slot });
        lsn = await createReverseSlot(target, p.slot);
        await record({ action: 'reverse-slot-lsn', name: p.slot, lsn });
        ctx.log.info(`created slot ${p.slot} on the target at ${lsn} (the switch point)`);
      } else if (!lsn) {
        // Killed between creating the slot and recording its position: nothing has consumed it since.
        lsn = a.slot.confirmedFlushLsn;
        if (lsn) await record({ action: 'reverse-slot-lsn', name: p.slot, lsn });
      }
      if (!a.sub) {
        const password = await ctx.secret(ctx.outputs.database.masterPasswordRef);
        const conninfo = reverseConninfo(ctx.outputs.reversePath!, ctx.outputs.database, password.reveal(), p.sslRootCert);
        await record({ action: 'reverse-create-subscription', name: p.subscription });
        await createReverseSubscription(source, reverseNames(p), conninfo);
        ctx.log.info(`created subscription ${p.subscription} on the source, streaming from the target's slot ${p.slot}`);
      }
      if (p.waitForWorker) await waitForWorker(ctx, p);
      return resultOf(p, a, lsn, all());
    } catch (error) {
      throw unable(
        `set up the reverse replication (publication and slot ${p.publication}/${p.slot} on the target, subscription ${p.subscription} on the source)`,
        error,
      );
    }
  },

  async check(ctx, p) {
    const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
    const findings: Finding[] = [];
    const sub = await subscriptionInfo(source, p.subscription);
    if (!sub) return [{ severity: 'error', object: `subscription ${p.subscription} (source)`, message: 'does not exist' }];
    if (!sub.enabled)
      findings.push({
        severity: 'error',
        object: `subscription ${p.subscription} (source)`,
        message: 'is disabled: the target’s writes do not reach the source',
        fix: `alter subscription ${p.subscription} enable (on the source)`,
      });
    else if (p.waitForWorker && !(await applyWorker(source, sub.oid)))
      findings.push({
        severity: 'error',
        object: `subscription ${p.subscription} (source)`,
        message: 'has no running apply worker: the target’s writes do not reach the source',
        fix: "read the source's server log",
      });
    if (!(await targetSlot(target, p.slot)))
      findings.push({ severity: 'error', object: `replication slot ${p.slot} (target)`, message: 'does not exist' });
    if (!(await publicationState(target, p.publication)))
      findings.push({ severity: 'error', object: `publication ${p.publication} (target)`, message: 'does not exist' });
    return findings;
  },

  async undo(ctx, p, changes) {
    const created = {
      subscription: recorded(changes, 'reverse-create-subscription').length > 0,
      slot: recorded(changes, 'reverse-create-slot').length > 0,
      publication: recorded(changes, 'reverse-create-publication').length > 0,
    };
    try {
      const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
      const sub = await subscriptionInfo(source, p.subscription);
      const slot = await targetSlot(target, p.slot);
      if (created.subscription && sub && slot) {
        if (!sub.enabled) await source.query(`alter subscription ${escapeIdentifier(p.subscription)} enable`);
        const { lsn, confirmed } = await waitApplied(ctx, source, target, reverseNames(p), {
          deadline: ctx.now() + p.deadlineSeconds * 1000,
          pollMs: p.pollMs,
        });
        ctx.log.info(`the source applied every write of the target up to ${lsn} (confirmed ${confirmed})`);
      } else if (created.subscription && slot && !sub) {
        ctx.log.warn(
          `subscription ${p.subscription} is gone from the source but slot ${p.slot} is still on the target: writes after its position ${slot.confirmedFlushLsn} may not have reached the source`,
        );
      }
      if (created.subscription || created.slot || created.publication) {
        const carried = await carrySequencesBack(source, target);
        ctx.log.info(`carried ${carried.moved.length} sequence(s) back to the source`);
        if (carried.missing.length > 0)
          ctx.log.warn(`sequences on the target that the source lacks, not carried back: ${carried.missing.join(', ')}`);
      }
      if (created.subscription && (await dropReverseSubscription(source, p.subscription)))
        ctx.log.info(`dropped subscription ${p.subscription} on the source`);
      if (created.slot || created.subscription) await dropReverseSlot(ctx, target, p.slot, ctx.now() + 60_000);
      if (created.publication) await dropReversePublication(target, p.publication);
      const identities = new Map<string, { schema: string; table: string; previous: string }>();
      for (const c of recorded(changes, 'reverse-replica-identity'))
        if (!identities.has(`${c.schema}.${c.table}`)) identities.set(`${c.schema}.${c.table}`, c);
      for (const c of identities.values()) {
        const exists = await target.query(
          'select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2',
          [c.schema, c.table],
        );
        if (exists.rows.length > 0) await setReplicaIdentity(target, c.schema, c.table, identityName(c.previous));
      }
      for (const role of new Set(recorded(changes, 'reverse-grant-membership').map((c) => c.role))) await revokeMembership(target, role);
      if (await dropFenceSlot(source, p.fenceSlot)) ctx.log.info(`dropped the write-fence slot ${p.fenceSlot} on the source`);
      if (await publicationExists(source, p.fencePublication)) await dropFencePublication(source, p.fencePublication);
    } catch (error) {
      throw unable(`bring the target's writes back to the source and drop the reverse replication (${p.subscription})`, error);
    }
  },
});

// ---------------------------------------------------------------------------------------------
// postgres.reverse-health

const healthParams = z
  .object({
    ...names,
    /** How long the source's apply worker may take to start, counted from this step. */
    workerDeadlineSeconds: z.number().positive().default(60),
    pollMs: z.number().int().positive().default(100),
  })
  .strict();
type HealthParams = z.infer<typeof healthParams>;
type HealthResult = { subscription: string; workerPid: number };

/** What stops the target's writes reaching the source, apart from a worker still starting. */
async function healthFindings(ctx: StepContext, p: HealthParams): Promise<{ findings: Finding[]; workerPid: number | null }> {
  const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
  const [sub, slot, pub] = await Promise.all([
    subscriptionInfo(source, p.subscription),
    targetSlot(target, p.slot),
    publicationState(target, p.publication),
  ]);
  const findings: Finding[] = [];
  const fix = 'run postgres.reverse-replication (resume D-day), or roll back now: the target has been taking writes since the switch';
  if (!sub) findings.push({ severity: 'error', object: `subscription ${p.subscription} (source)`, message: 'does not exist', fix });
  else if (!sub.enabled)
    findings.push({
      severity: 'error',
      object: `subscription ${p.subscription} (source)`,
      message: 'is disabled: the target’s writes do not reach the source',
      fix: `alter subscription ${p.subscription} enable (on the source)`,
    });
  if (!slot)
    findings.push({
      severity: 'error',
      object: `replication slot ${p.slot} (target)`,
      message: 'does not exist: the target’s writes since the switch cannot reach the source',
      fix,
    });
  if (!pub) findings.push({ severity: 'error', object: `publication ${p.publication} (target)`, message: 'does not exist', fix });
  const worker = sub?.enabled ? await applyWorker(source, sub.oid) : null;
  return { findings, workerPid: worker?.pid ?? null };
}

export const reverseHealth = defineStep<HealthParams, HealthResult>({
  kind: 'postgres.reverse-health',
  summary: "Reverse replication streams: the source's apply worker runs (waited for once writes have resumed, out of the write window)",
  params: healthParams,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    const { findings, workerPid } = await healthFindings(ctx, p);
    if (blocks(findings)) return { state: 'blocked', findings };
    if (workerPid !== null) return { state: 'done', result: { subscription: p.subscription, workerPid } };
    return {
      state: 'ready',
      plan: [`wait up to ${p.workerDeadlineSeconds} s for the apply worker of subscription ${p.subscription} on the source (read-only)`],
    };
  },

  async apply(ctx, p) {
    const { findings } = await healthFindings(ctx, p);
    if (blocks(findings)) throw blockedBy(findings, 'the reverse replication is not in place');
    await waitForWorker(ctx, p);
    const { workerPid } = await healthFindings(ctx, p);
    if (workerPid === null) throw new StepError(`the reverse subscription ${p.subscription}'s apply worker stopped right after starting`);
    ctx.log.info(`the reverse subscription ${p.subscription}'s apply worker runs on the source (pid ${workerPid})`);
    return { subscription: p.subscription, workerPid };
  },

  async check(ctx, p) {
    const { findings, workerPid } = await healthFindings(ctx, p);
    if (workerPid === null && !blocks(findings))
      findings.push({
        severity: 'error',
        object: `subscription ${p.subscription} (source)`,
        message: 'has no running apply worker: the target’s writes do not reach the source',
        fix: "read the source's server log (cannot connect to the target through outputs.reversePath? no free worker?), fix it, and resume",
      });
    return findings;
  },
});

// ---------------------------------------------------------------------------------------------
// postgres.reverse-replication-stop

const stopParams = z
  .object({
    ...names,
    ...fence,
    deadlineSeconds: z.number().positive().default(60),
  })
  .strict();
type StopParams = z.infer<typeof stopParams>;
type StopResult = { dropped: string[] };

async function leftOver(ctx: StepContext, p: StopParams): Promise<string[]> {
  const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
  const [sub, slot, pub, fenceSlot, fencePub] = await Promise.all([
    subscriptionInfo(source, p.subscription),
    targetSlot(target, p.slot),
    publicationState(target, p.publication),
    source.query('select 1 from pg_replication_slots where slot_name = $1', [p.fenceSlot]).then((r) => r.rows.length > 0),
    publicationExists(source, p.fencePublication),
  ]);
  return [
    ...(sub ? [`subscription ${p.subscription} (source)`] : []),
    ...(slot ? [`replication slot ${p.slot} (target)`] : []),
    ...(pub ? [`publication ${p.publication} (target)`] : []),
    ...(fenceSlot ? [`replication slot ${p.fenceSlot} (source)`] : []),
    ...(fencePub ? [`publication ${p.fencePublication} (source)`] : []),
  ];
}

export const reverseReplicationStop = defineStep<StopParams, StopResult>({
  kind: 'postgres.reverse-replication-stop',
  summary: 'The legacy is retired: drop the reverse replication and the write fence, carrying nothing back',
  params: stopParams,
  requires: ['postgres'],
  destructive: true,

  async probe(ctx, p) {
    const left = await leftOver(ctx, p);
    if (left.length === 0) return { state: 'done', result: { dropped: [] } };
    return { state: 'ready', plan: left.map((o) => `drop ${o}`) };
  },

  async apply(ctx, p) {
    try {
      const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
      const left = await leftOver(ctx, p);
      await ctx.record({ action: 'reverse-stop', dropping: left });
      await dropReverseSubscription(source, p.subscription);
      await dropReverseSlot(ctx, target, p.slot, ctx.now() + p.deadlineSeconds * 1000);
      await dropReversePublication(target, p.publication);
      await dropFenceSlot(source, p.fenceSlot);
      await dropFencePublication(source, p.fencePublication);
      ctx.log.info(`reverse replication stopped: ${left.length > 0 ? left.join(', ') : 'nothing was left'} dropped`);
      return { dropped: left };
    } catch (error) {
      throw unable(`stop the reverse replication (subscription ${p.subscription}, slot ${p.slot})`, error);
    }
  },

  async check(ctx, p) {
    return (await leftOver(ctx, p)).map((o) => ({ severity: 'error' as const, object: o, message: 'still exists' }));
  },
});
