/**
 * postgres.preflight: everything that would stop or spoil the replication, found at once and each
 * with its fix, before anything is changed. Read-only, except for the one fix it may apply when the
 * runbook opts in: REPLICA IDENTITY FULL on tables without a primary key (journalled, undone).
 */
import { z } from 'zod';
import { redact } from '../../core/secret.ts';
import { blockedBy, blocks, defineStep, type Finding, type Json, type StepContext, unable } from '../../core/step.ts';
import { pool, type Side, subscriptionSourceUrl } from '../../postgres/connections.ts';
import { ownershipFindings } from '../../postgres/ownership.ts';
import { clientToolFindings } from '../../postgres/pg-tools.ts';
import {
  equalityFindings,
  extensionFindings,
  fullIdentityWithoutEquality,
  highBitCharFindings,
  type IdentityProblem,
  identityFindings,
  largeObjectFindings,
  missingRoleFindings,
  nameCollisionFindings,
  nonEmptyFindings,
  nonEmptyTargetTables,
  sourcePrivilegeFindings,
  sourceServerFindings,
  tablesWithoutIdentity,
  targetPrivilegeFindings,
  targetServerFindings,
  unloggedFindings,
  versionFindings,
} from '../../postgres/preflight-checks.ts';
import { publicationExists, subscriptionInfo } from '../../postgres/replication.ts';
import { replicationNames } from '../../postgres/replication-names.ts';
import { type ServerInfo, serverInfo } from '../../postgres/server.ts';
import { subscriptionReachFindings } from '../../postgres/subscription-reach.ts';

const params = z
  .object({
    ...replicationNames,
    /** Set REPLICA IDENTITY FULL on tables without a primary key instead of refusing them. */
    replicaIdentityFull: z.boolean().default(false),
    /** Where pg_dump lives (checked against the source version); `pg_config --bindir` when absent. */
    pgBinDir: z.string().min(1).optional(),
    /** The schema copy will keep owners: missing roles then stop it rather than just lose grants. */
    withOwners: z.boolean().default(false),
    /** How long the target may take to connect to the source, as its subscription will, before the path counts as blocked. */
    reachTimeoutSeconds: z.number().positive().default(20),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { errors: number; warnings: number; replicaIdentityFull: string[] };

interface Report {
  findings: Finding[];
  identity: IdentityProblem[];
}

const failedCheck = (what: string, error: unknown): Finding => ({
  severity: 'error',
  object: what,
  message: `could not be checked: ${redact((error as Error).message)}`,
  fix: 'fix the cause above and run preflight again',
});

async function connect(ctx: StepContext, side: Side): Promise<{ info: ServerInfo } | { finding: Finding }> {
  try {
    return { info: await serverInfo(await pool(ctx, side)) };
  } catch (error) {
    return {
      finding: {
        severity: 'error',
        object: `${side} connection`,
        message: `cannot connect: ${redact((error as Error).message)}`,
        fix:
          side === 'source'
            ? 'check outputs.source.urlRef (host, port, credentials) and that this machine can reach the source'
            : 'check outputs.database (endpoint, port, master password) and that this machine can reach the target',
      },
    };
  }
}

/** Every check on both servers, run once for probe, apply and check alike. */
async function assess(ctx: StepContext, p: Params): Promise<Report> {
  const [source, target] = await Promise.all([connect(ctx, 'source'), connect(ctx, 'target')]);
  const findings: Finding[] = [];
  if ('finding' in source) findings.push(source.finding);
  if ('finding' in target) findings.push(target.finding);
  let identity: IdentityProblem[] = [];
  const checks: [string, () => Promise<Finding[]>][] = [];
  // Only reached for a side that connected, so its pool exists.
  const s = 'info' in source ? await pool(ctx, 'source') : undefined!;
  const t = 'info' in target ? await pool(ctx, 'target') : undefined!;

  // Missing pg_dump/psql is found even when a server cannot be reached: the fix is on this machine.
  if (!('info' in source && 'info' in target)) checks.push(['client tools', async () => (await clientToolFindings(p.pgBinDir)).findings]);
  if ('info' in source) {
    const info = source.info;
    checks.push(
      [
        'source settings',
        async () =>
          sourceServerFindings(
            s,
            info,
            'info' in target ? Number((await t.query("select current_setting('max_sync_workers_per_subscription') as n")).rows[0].n) : 2,
          ),
      ],
      ['source privileges', () => sourcePrivilegeFindings(s, info)],
      [
        'source tables without a primary key',
        async () => {
          const [keyless, unequal] = await Promise.all([tablesWithoutIdentity(s), fullIdentityWithoutEquality(s)]);
          // REPLICA IDENTITY FULL cannot help these: they are refused, not fixed.
          const refused = new Set(unequal.map((u) => u.table));
          identity = keyless.filter((i) => !refused.has(i.table));
          return [...equalityFindings(unequal), ...identityFindings(identity, p.replicaIdentityFull)];
        },
      ],
      ['source large objects', () => largeObjectFindings(s)],
      ['source "char" columns', () => highBitCharFindings(s, info)],
      ['source unlogged tables', () => unloggedFindings(s)],
    );
  }
  if ('info' in target) {
    const info = target.info;
    checks.push(['target settings', () => targetServerFindings(t)], ['target privileges', () => targetPrivilegeFindings(t, info)]);
    checks.push([
      'target → source connection',
      async () =>
        subscriptionReachFindings(t, {
          conninfo: (await subscriptionSourceUrl(ctx)).reveal(),
          natPublicIps: ctx.outputs.network.natPublicIps,
          timeoutSeconds: p.reachTimeoutSeconds,
        }),
    ]);
  }
  if ('info' in source && 'info' in target) {
    checks.push(
      [
        'versions',
        async () => {
          const tools = await clientToolFindings(p.pgBinDir, target.info);
          return [...versionFindings(source.info, target.info, tools.dumpMajor, tools.bindir ?? 'pg_dump'), ...tools.findings];
        },
      ],
      ['extensions', () => extensionFindings(s, t)],
      [
        'roles',
        async () => {
          // A role that would lose a right it has on the source is an error; the general missing-role notice is kept for the rest.
          const losing = await ownershipFindings(s, t);
          const named = new Set(losing.map((f) => f.object));
          return [...losing, ...(await missingRoleFindings(s, t, p.withOwners)).filter((f) => !named.has(f.object))];
        },
      ],
      [
        'replication objects and target tables',
        async () => {
          const sub = await subscriptionInfo(t, p.subscription);
          if (sub?.publications.includes(p.publication) && (await publicationExists(s, p.publication))) {
            // A rerun once replication runs: its objects and the target's rows are expected now.
            return [
              {
                severity: 'info',
                object: `subscription ${p.subscription}`,
                message: `replication from publication ${p.publication} is already set up`,
              },
            ];
          }
          return [
            ...(await nameCollisionFindings(s, t, p.publication, p.subscription)),
            ...nonEmptyFindings(await nonEmptyTargetTables(t)),
          ];
        },
      ],
    );
  }
  const settled = await Promise.allSettled(checks.map(([, check]) => check()));
  settled.forEach((outcome, i) => {
    if (outcome.status === 'fulfilled') findings.push(...outcome.value);
    else findings.push(failedCheck(checks[i]![0], outcome.reason));
  });
  const order = { error: 0, warning: 1, info: 2 } as const;
  findings.sort((a, b) => order[a.severity] - order[b.severity]);
  return { findings, identity };
}

const count = (findings: Finding[], severity: Finding['severity']) => findings.filter((f) => f.severity === severity).length;

interface IdentityChange {
  action: 'replica-identity-full';
  table: string;
  previous: 'default' | 'nothing';
  [key: string]: Json;
}

export const preflight = defineStep<Params, Result>({
  kind: 'postgres.preflight',
  summary: 'Check both servers for everything the replication needs, listing every problem with its fix',
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    const { findings, identity } = await assess(ctx, p);
    if (blocks(findings)) return { state: 'blocked', findings };
    if (p.replicaIdentityFull && identity.length > 0) {
      return { state: 'ready', findings, plan: identity.map((i) => `ALTER TABLE ${i.table} REPLICA IDENTITY FULL on the source`) };
    }
    return { state: 'done', findings, result: { errors: 0, warnings: count(findings, 'warning'), replicaIdentityFull: [] } };
  },

  async apply(ctx, p) {
    try {
      const { findings, identity } = await assess(ctx, p);
      const errors = findings.filter((f) => f.severity === 'error');
      if (errors.length > 0) throw blockedBy(errors, `${errors.length} preflight checks failed`);
      const fixed: string[] = [];
      if (p.replicaIdentityFull) {
        const source = await pool(ctx, 'source');
        for (const problem of identity) {
          await ctx.record({ action: 'replica-identity-full', table: problem.table, previous: problem.identity } satisfies IdentityChange);
          // The name comes from format('%I.%I') on the server, so it is already quoted.
          await source.query(`alter table ${problem.table} replica identity full`);
          fixed.push(problem.table);
        }
        if (fixed.length > 0) ctx.log.info(`set REPLICA IDENTITY FULL on ${fixed.join(', ')}`);
      }
      return { errors: 0, warnings: count(findings, 'warning'), replicaIdentityFull: fixed };
    } catch (error) {
      throw unable('pass the PostgreSQL preflight', error);
    }
  },

  async check(ctx, p) {
    return (await assess(ctx, p)).findings.filter((f) => f.severity === 'error');
  },

  async undo(ctx, _p, changes) {
    const changed = new Map<string, IdentityChange>();
    // The first record per table holds its identity from before this run.
    for (const change of changes as readonly Partial<IdentityChange>[]) {
      if (change?.action === 'replica-identity-full' && change.table && !changed.has(change.table))
        changed.set(change.table, change as IdentityChange);
    }
    try {
      const source = await pool(ctx, 'source');
      for (const { table, previous } of changed.values()) {
        const exists = (await source.query('select to_regclass($1) is not null as e', [table])).rows[0].e;
        if (exists) await source.query(`alter table ${table} replica identity ${previous === 'nothing' ? 'nothing' : 'default'}`);
      }
    } catch (error) {
      throw unable(`restore the replica identity of ${[...changed.keys()].join(', ')}`, error);
    }
  },
});
