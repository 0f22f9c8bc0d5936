/**
 * postgres.schema-copy: the source's schema (no data) into the target, through `pg_dump
 * --schema-only` and `psql`. The restore runs in one transaction, so a failure leaves the target as
 * it was and a rerun starts clean. With `section`, it copies the schema in pg_dump's two halves
 * around a data copy (postgres.snapshot-copy): pre-data (types, tables, sequences) before it, and
 * post-data (indexes, keys, foreign keys, triggers) after it, built by `pg_restore -j` in parallel,
 * which is much faster than maintaining the indexes row by row during the copy. Owners arrive as on
 * the source (migrate/postgres/ownership.ts), in the last section, so that the data copy still fills
 * tables the migration user owns. Done means the target's schema equals the source's, object by
 * object (migrate/postgres/schema-compare/), not merely that every index exists: post-data also
 * carries REPLICA IDENTITY USING INDEX, row-level security and its policies, statistics objects and
 * comments. Undo takes back only the role memberships and CREATE grants a dead attempt left behind:
 * the target is a new database, and an operator who wants to start over drops and recreates it, which
 * is simpler and safer than a generated list of DROPs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { escapeIdentifier } from 'pg';
import { z } from 'zod';
import { blockedBy, blocks, defineStep, type Finding, type StepContext, unable } from '../../core/step.ts';
import { applyAcls } from '../../postgres/acl-sync.ts';
import { pool, sourceUrl, targetUrl } from '../../postgres/connections.ts';
import { applyOwners, arrangeMemberships, owningRoles, releaseMemberships, undoMemberships } from '../../postgres/ownership.ts';
import { clientBindir, runTool, runToolStatus, toolMajor } from '../../postgres/pg-tools.ts';
import {
  compareServers,
  differenceFindings,
  fingerprint,
  ignoringProperties,
  type SchemaDifference,
} from '../../postgres/schema-compare/compare.ts';
import {
  compareInventories,
  type InventoryDifference,
  postDataObjects,
  type SchemaInventory,
  schemaInventory,
} from '../../postgres/schema-inventory.ts';
import { serverInfo } from '../../postgres/server.ts';

const params = z
  .object({
    /** Directory holding pg_dump and psql, of a major version >= the source's; `pg_config --bindir` when absent. */
    pgBinDir: z.string().min(1).optional(),
    /** Give every object its source owner (section all and post-data): the owning roles must exist on the target. */
    withOwners: z.boolean().default(true),
    /** Keep GRANT/REVOKE: the grantee roles must exist on the target. */
    withPrivileges: z.boolean().default(false),
    /** When the target already holds part of the schema: refuse, or restore what is missing and skip what exists. */
    onPartialTarget: z.enum(['refuse', 'complete']).default('refuse'),
    /**
     * all: the whole schema. pre-data: without indexes, keys, foreign keys and triggers, for a data
     * copy to fill. post-data: those, once the data is in (a rerun completes what is missing).
     */
    section: z.enum(['all', 'pre-data', 'post-data']).default('all'),
    /** Parallel restore jobs for post-data (index builds run side by side). */
    jobs: z.number().int().min(1).max(64).default(4),
  })
  .strict();
type Params = z.infer<typeof params>;
type Counts = { schemas: number; tables: number; sequences: number; types: number };
/**
 * post-data: how many indexes, constraints and triggers the source has, how many this attempt built,
 * how many objects it gave their source owner, and the source schema's fingerprint (what D-day's
 * schema-parity step and `migrate status` compare against).
 */
type PostDataResult = { postData: number; built: number; owners: number; fingerprint: string };
type Result = Counts | PostDataResult;

const counts = (inventory: SchemaInventory): Counts => ({
  schemas: inventory.schemas.length,
  tables: inventory.tables.length,
  sequences: inventory.sequences.length,
  types: inventory.types.length,
});

function describeMissing(difference: InventoryDifference): string {
  return Object.entries(difference.missing)
    .map(([kind, names]) => `${names.length} ${kind} (${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''})`)
    .join('; ');
}

/** pg_dump cannot dump a server newer than itself. */
async function dumpVersionFindings(bindir: string, source: pg.Pool): Promise<Finding[]> {
  const [dumpMajor, info] = await Promise.all([toolMajor(bindir, 'pg_dump'), serverInfo(source)]);
  if (dumpMajor >= info.major) return [];
  return [
    {
      severity: 'error',
      object: `${bindir}/pg_dump`,
      message: `pg_dump ${dumpMajor} cannot dump a PostgreSQL ${info.major} source`,
      fix: `install the PostgreSQL ${info.major} (or newer) client and set with.pgBinDir to its bin directory`,
    },
  ];
}

interface Assessment {
  state: 'done' | 'ready' | 'blocked';
  findings: Finding[];
  source: SchemaInventory;
  difference: InventoryDifference;
  /** Every schema, table, sequence and type exists: what is left (owners) needs no restore. */
  complete: boolean;
  bindir: string;
}

async function assess(ctx: StepContext, p: Params): Promise<Assessment> {
  const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
  const bindir = clientBindir(p.pgBinDir);
  const [dumpFindings, sourceInventory, targetInventory] = await Promise.all([
    dumpVersionFindings(bindir, source),
    schemaInventory(source),
    schemaInventory(target),
  ]);
  const findings: Finding[] = [...dumpFindings];
  const difference = compareInventories(sourceInventory, targetInventory);
  const complete = difference.present === difference.expected && Object.keys(difference.missing).length === 0;
  let state: Assessment['state'] = complete ? 'done' : 'ready';
  if (complete && p.section === 'all' && (await remainingDifferences(ctx, p)).differences.length > 0) state = 'ready';
  if (state === 'ready' && difference.present > 0) {
    const partial: Finding = {
      severity: p.onPartialTarget === 'refuse' ? 'error' : 'warning',
      object: `target database ${ctx.outputs.database.name}`,
      message: `already holds ${difference.present} of the source's ${difference.expected} tables, sequences and types; missing: ${describeMissing(difference)}`,
      fix:
        p.onPartialTarget === 'refuse'
          ? 'drop and recreate the target database to copy the schema from scratch, or set with.onPartialTarget: complete to add only what is missing'
          : undefined,
    };
    findings.push(partial);
  }
  if (blocks(findings)) state = 'blocked';
  return { state, findings, source: sourceInventory, difference, complete, bindir };
}

function dumpArgs(p: Params): string[] {
  return [
    '--schema-only',
    ...(p.section === 'all' ? [] : [`--section=${p.section}`]),
    // Publications and subscriptions of the source are the source's business, not the target's.
    '--no-publications',
    '--no-subscriptions',
    // Managed targets have no custom tablespaces.
    '--no-tablespaces',
    // Owners are given afterwards (applyOwners): restored as the migration user, the data copy can fill every table.
    '--no-owner',
    ...(p.withPrivileges ? [] : ['--no-privileges']),
  ];
}

/**
 * A newer pg_dump writes SETs for settings an older target does not know (e.g. pg_dump 17's
 * `SET transaction_timeout = 0`), which stop the restore; they only tune the restoring session,
 * so lines setting anything the target does not have are dropped.
 */
export function withoutUnknownSettings(dump: string, known: ReadonlySet<string>): { dump: string; dropped: string[] } {
  const dropped: string[] = [];
  const kept = dump.split('\n').filter((line) => {
    const match = /^SET\s+([a-z_.]+)\s*(=|TO)/i.exec(line);
    if (!match || known.has(match[1]!.toLowerCase())) return true;
    dropped.push(match[1]!);
    return false;
  });
  return { dump: kept.join('\n'), dropped };
}

/** With onPartialTarget: complete, errors about objects that exist already are expected; any other is not. */
const EXISTING_OBJECT = /already exists|multiple primary keys for table/;

/** The schema differences a section leaves the target with; owners and grants count only when asked for. */
async function remainingDifferences(ctx: StepContext, p: Params): Promise<{ differences: SchemaDifference[]; fingerprint: string }> {
  const { differences, source } = await compareServers(await pool(ctx, 'source'), await pool(ctx, 'target'));
  const ignored = [...(p.withOwners ? [] : ['owner']), ...(p.withPrivileges ? [] : ['acl'])];
  return { differences: ignoringProperties(differences, ignored), fingerprint: fingerprint(source) };
}

interface PostDataAssessment {
  state: 'done' | 'ready' | 'blocked';
  findings: Finding[];
  /** Source indexes, keys and triggers missing on the target, and the `<catalog oid> <oid>` of those present (left out of the restore). */
  missing: string[];
  built: Set<string>;
  total: number;
  differences: SchemaDifference[];
  fingerprint: string;
  bindir: string;
}

async function assessPostData(ctx: StepContext, p: Params): Promise<PostDataAssessment> {
  const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
  const bindir = clientBindir(p.pgBinDir);
  const [dumpFindings, sourceObjects, targetObjects, sourceTables, targetTables, remaining] = await Promise.all([
    dumpVersionFindings(bindir, source),
    postDataObjects(source),
    postDataObjects(target),
    schemaInventory(source),
    schemaInventory(target),
    remainingDifferences(ctx, p),
  ]);
  const findings: Finding[] = [...dumpFindings];
  const tablesMissing = compareInventories(sourceTables, targetTables).missing.tables ?? [];
  if (tablesMissing.length > 0) {
    findings.push({
      severity: 'error',
      object: `target database ${ctx.outputs.database.name}`,
      message: `lacks ${tablesMissing.length} table(s) the indexes and keys belong to: ${tablesMissing.slice(0, 5).join(', ')}`,
      fix: 'run postgres.schema-copy with section pre-data first',
      awaitsEarlierStep: true,
    });
  }
  const missing = [...sourceObjects.keys()].filter((name) => !targetObjects.has(name));
  const built = new Set([...sourceObjects].filter(([name]) => targetObjects.has(name)).map(([, oid]) => oid));
  // Every index and key may exist while policies, row-level security, replica identities, statistics or owners do not.
  const state = blocks(findings) ? 'blocked' : remaining.differences.length === 0 ? 'done' : 'ready';
  return {
    state,
    findings,
    missing,
    built,
    total: sourceObjects.size,
    differences: remaining.differences,
    fingerprint: remaining.fingerprint,
    bindir,
  };
}

/**
 * `pg_restore --list` names each entry `<id>; <catalog oid> <object oid> <type> …`; entries for an
 * index, key or trigger the copy already built are left out, so the rest of the section (policies,
 * statistics, comments, row-level security) restores without a failed CREATE taking its neighbours along.
 */
export function withoutBuilt(list: string, built: ReadonlySet<string>): string {
  return list
    .split('\n')
    .map((line) => {
      const match = /^(\d+); (\d+) (\d+) (INDEX|CONSTRAINT|FK CONSTRAINT|TRIGGER) /.exec(line);
      return match && built.has(`${match[2]} ${match[3]}`) ? `;${line}` : line;
    })
    .join('\n');
}

/** A replica identity on an index the copy built came with that index's CREATE in the dump, which was left out. */
async function restoreReplicaIdentities(target: pg.Pool, differences: readonly SchemaDifference[]): Promise<void> {
  for (const d of differences) {
    const wanted = d.properties?.['replica identity']?.source;
    if (!wanted?.startsWith('index ')) continue;
    const table = d.object.slice('table '.length);
    await target.query(`alter table only ${table} replica identity using index ${escapeIdentifier(wanted.slice('index '.length))}`);
  }
}

/** pg_restore -j needs an archive, so the post-data section goes through a custom-format dump file. */
async function restorePostData(ctx: StepContext, p: Params, a: PostDataAssessment): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'migrate-post-data-'));
  try {
    const file = join(dir, 'post-data.dump');
    await runTool(a.bindir, 'pg_dump', ['--format=custom', `--file=${file}`, ...dumpArgs(p)], await sourceUrl(ctx), undefined, ctx.signal);
    const listFile = join(dir, 'post-data.list');
    writeFileSync(
      listFile,
      withoutBuilt((await runTool(a.bindir, 'pg_restore', ['--list', file], await targetUrl(ctx), undefined, ctx.signal)).stdout, a.built),
    );
    await ctx.record({ action: 'restore-schema', section: 'post-data', missing: a.missing.length });
    const restoreArgs = [
      '--section=post-data',
      `--jobs=${p.jobs}`,
      `--use-list=${listFile}`,
      '--no-owner',
      ...(p.withPrivileges ? [] : ['--no-privileges']),
      // The connection itself comes from the environment; -d makes pg_restore restore instead of print.
      `--dbname=${ctx.outputs.database.name}`,
      file,
    ];
    ctx.log.progress({
      label: 'building indexes, keys and triggers',
      done: a.total - a.missing.length,
      total: a.total,
      detail: `pg_restore --jobs=${p.jobs}`,
    });
    const { code, stderr } = await runToolStatus(a.bindir, 'pg_restore', restoreArgs, await targetUrl(ctx), undefined, ctx.signal);
    // An interrupted earlier attempt built some of them: those report "already exists", nothing else may fail.
    const unexpected = stderr.split('\n').filter((line) => /ERROR:/.test(line) && !EXISTING_OBJECT.test(line));
    if (unexpected.length > 0 || (code !== 0 && !/errors ignored on restore/.test(stderr))) {
      throw new Error(`pg_restore reported: ${(unexpected.length > 0 ? unexpected : stderr.split('\n')).slice(0, 5).join(' | ')}`);
    }
    await restoreReplicaIdentities(await pool(ctx, 'target'), a.differences);
    ctx.log.info(
      `built ${a.missing.length} indexes, keys and triggers, and the rest of post-data (policies, statistics, comments, replica identities)`,
    );
    return a.missing.length;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs `restore` with the migration user a member of every owning role (ALTER DEFAULT PRIVILEGES
 * FOR ROLE, policies on their tables, and owners need it when it is not a superuser), then, when
 * `owners`, gives each object its source owner and its source privileges; the memberships it added
 * are taken back in any case.
 */
async function asOwners<T>(
  ctx: StepContext,
  p: Params,
  owners: boolean,
  restore: () => Promise<T>,
): Promise<{ result: T; owners: number }> {
  const [source, target] = [await pool(ctx, 'source'), await pool(ctx, 'target')];
  const added = await arrangeMemberships(ctx, target, await owningRoles(source));
  try {
    const result = await restore();
    const changed = owners && p.withOwners ? await applyOwners(ctx, source, target) : 0;
    if (changed > 0) ctx.log.info(`gave ${changed} objects their source owner`);
    const privileges = owners && p.withPrivileges ? await applyAcls(ctx, source, target) : 0;
    if (privileges > 0) ctx.log.info(`set the privileges of ${privileges} objects to the source's`);
    return { result, owners: changed };
  } finally {
    await releaseMemberships(ctx, target, added);
  }
}

export const schemaCopy = defineStep<Params, Result>({
  kind: 'postgres.schema-copy',
  summary: 'Copy the source schema (pg_dump --schema-only) into the target, owners and privileges included',
  params,
  requires: ['postgres', 'shell'],
  destructive: false,

  async probe(ctx, p) {
    if (p.section === 'post-data') {
      const a = await assessPostData(ctx, p);
      if (a.state === 'done')
        return { state: 'done', findings: a.findings, result: { postData: a.total, built: 0, owners: 0, fingerprint: a.fingerprint } };
      return {
        state: a.state,
        findings: a.findings,
        plan: [
          `pg_dump --section=post-data from the source, then pg_restore --jobs=${p.jobs} of the ${a.missing.length} missing indexes, keys and triggers (of ${a.total}) and the rest of post-data (policies, row-level security, statistics, comments, replica identities)`,
          `${a.differences.length} schema differences to resolve: ${a.differences
            .slice(0, 5)
            .map((d) => d.object)
            .join(', ')}${a.differences.length > 5 ? ', …' : ''}`,
          ...(p.withOwners
            ? ['give every object its source owner (the migration user made a member of the owning roles for it, then not any more)']
            : []),
        ],
      };
    }
    const a = await assess(ctx, p);
    if (a.state === 'done') return { state: 'done', findings: a.findings, result: counts(a.source) };
    return {
      state: a.state,
      findings: a.findings,
      plan: [
        `pg_dump ${dumpArgs(p).join(' ')} from the source (${a.source.tables.length} tables, ${a.source.sequences.length} sequences, ${a.source.types.length} types)`,
        `psql ${p.onPartialTarget === 'complete' && a.difference.present > 0 ? 'skipping objects that exist' : 'in one transaction, stopping at the first error'} into the target`,
        ...(p.section === 'all' && p.withOwners ? ['give every object its source owner'] : []),
      ],
    };
  },

  async apply(ctx, p) {
    try {
      if (p.section === 'post-data') {
        const a = await assessPostData(ctx, p);
        if (a.state === 'blocked') throw blockedBy(a.findings);
        if (a.state === 'done') return { postData: a.total, built: 0, owners: 0, fingerprint: a.fingerprint };
        const { result: built, owners } = await asOwners(ctx, p, true, () => restorePostData(ctx, p, a));
        return { postData: a.total, built, owners, fingerprint: a.fingerprint };
      }
      const a = await assess(ctx, p);
      if (a.state === 'blocked') throw blockedBy(a.findings);
      // pre-data leaves owners to post-data: the data copy in between fills tables the migration user owns.
      const owners = p.section === 'all';
      if (a.state === 'done') return counts(a.source);
      await asOwners(ctx, p, owners, async () => {
        if (!a.complete) await restoreSchema(ctx, p, a);
      });
      return counts(a.source);
    } catch (error) {
      throw unable('copy the schema from the source to the target', error);
    }
  },

  async check(ctx, p) {
    if (p.section !== 'pre-data') {
      const { differences } = await remainingDifferences(ctx, p);
      return differenceFindings(differences).map((f) => ({ ...f, message: `after restore: ${f.message}` }));
    }
    const [source, target] = await Promise.all([schemaInventory(await pool(ctx, 'source')), schemaInventory(await pool(ctx, 'target'))]);
    const difference = compareInventories(source, target);
    if (Object.keys(difference.missing).length === 0) return [];
    return [
      {
        severity: 'error',
        object: `target database ${ctx.outputs.database.name}`,
        message: `schema incomplete after restore: missing ${describeMissing(difference)}`,
      },
    ];
  },

  async undo(ctx, _p, changes) {
    try {
      await undoMemberships(await pool(ctx, 'target'), changes);
    } catch (error) {
      throw unable('take back the role memberships and CREATE grants the schema copy added', error);
    }
  },
});

async function restoreSchema(ctx: StepContext, p: Params, a: Assessment): Promise<void> {
  const target = await pool(ctx, 'target');
  const known = new Set((await target.query<{ name: string }>('select name from pg_settings')).rows.map((r) => r.name));
  const { stdout } = await runTool(a.bindir, 'pg_dump', dumpArgs(p), await sourceUrl(ctx), undefined, ctx.signal);
  const { dump, dropped } = withoutUnknownSettings(stdout, known);
  if (dropped.length > 0) ctx.log.info(`dropped settings the target does not know from the dump: ${dropped.join(', ')}`);
  await ctx.record({
    action: 'restore-schema',
    missing: Object.fromEntries(Object.entries(a.difference.missing).map(([k, v]) => [k, v.length])),
  });
  const completing = p.onPartialTarget === 'complete' && a.difference.present > 0;
  const psqlArgs = ['-X', '-q', '-v', `ON_ERROR_STOP=${completing ? 0 : 1}`, ...(completing ? [] : ['--single-transaction']), '-f', '-'];
  const { stderr } = await runTool(a.bindir, 'psql', psqlArgs, await targetUrl(ctx), dump, ctx.signal);
  const unexpected = stderr.split('\n').filter((line) => /ERROR:/.test(line) && !EXISTING_OBJECT.test(line));
  if (unexpected.length > 0) throw new Error(`psql reported: ${unexpected.slice(0, 5).join(' | ')}`);
  ctx.log.info(`schema restored: ${a.source.tables.length} tables, ${a.source.sequences.length} sequences, ${a.source.types.length} types`);
}
