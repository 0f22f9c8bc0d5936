/**
 * Reverse logical replication, from the switch point on: the target (RDS) publishes, the legacy
 * source subscribes, so a rollback after the switch loses none of the application's writes on RDS.
 *
 * The objects: a publication and a logical slot (pgoutput) on the target, created while nothing
 * writes to it, so the slot's LSN is the switch point; a subscription on the source attached to that
 * slot (no copy: both sides hold the same rows then). What the target role may do decides how: a
 * superuser publishes FOR ALL TABLES; RDS's master user (rds_superuser, not a superuser) lists every
 * table, which needs ownership of each, so it grants itself membership in the owning roles where it
 * lacks it (CREATEROLE allows that up to PostgreSQL 15; from 16 only for roles it has ADMIN OPTION on).
 * The subscription's apply worker writes on the source under the replication origin `pg_<oid>`,
 * which is how the write fence tells its changes from split-brain writes.
 */
import type pg from 'pg';
import { escapeIdentifier, escapeLiteral } from 'pg';
import type { StackOutputs } from '../../infra/contract.ts';
import { type StepContext, StepError } from '../core/step.ts';
import { waitFor } from '../core/wait.ts';
import { subscriptionInfo } from './replication.ts';
import { qualified } from './sql.ts';

export const DEFAULT_REVERSE_NAME = 'migrate_reverse';

export interface ReverseNames {
  /** On the target. */
  publication: string;
  /** Logical slot on the target the subscription attaches to. */
  slot: string;
  /** On the source. */
  subscription: string;
}

export type ReversePath = NonNullable<StackOutputs['reversePath']>;

/** A libpq conninfo value, quoted: backslash and single quote escaped. */
const conninfoValue = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * The conninfo the source's subscription dials the target with. It holds the password: reveal it only
 * into the CREATE SUBSCRIPTION statement.
 */
export function reverseConninfo(
  path: ReversePath,
  database: { name: string; masterUsername: string },
  password: string,
  sslRootCert?: string,
): string {
  const parts: [string, string | number | undefined][] = [
    ['host', path.host],
    ['hostaddr', path.hostaddr],
    ['port', path.port],
    ['dbname', database.name],
    ['user', database.masterUsername],
    ['password', password],
    ['sslmode', path.sslMode],
    ['sslrootcert', sslRootCert],
    ['application_name', 'migrate_reverse'],
  ];
  return parts
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${conninfoValue(String(v))}`)
    .join(' ');
}

export interface TargetRole {
  name: string;
  superuser: boolean;
  /** REPLICATION, or membership in rds_replication: may create a logical slot and stream from it. */
  replication: boolean;
  createRole: boolean;
  /** CREATE on the database: may create a publication. */
  createInDatabase: boolean;
  rds: boolean;
  major: number;
}

export async function targetRole(target: pg.Pool): Promise<TargetRole> {
  const { rows } = await target.query(
    `select r.rolname as name, r.rolsuper as superuser, r.rolcreaterole as createrole,
            r.rolreplication or exists (select 1 from pg_roles g where g.rolname = 'rds_replication' and pg_has_role(r.oid, g.oid, 'MEMBER')) as replication,
            has_database_privilege(current_database(), 'CREATE') as create_db,
            exists (select 1 from pg_roles where rolname = 'rds_superuser') as rds,
            current_setting('server_version_num')::int / 10000 as major
       from pg_roles r where r.rolname = current_user`,
  );
  const r = rows[0]!;
  return {
    name: r.name,
    superuser: r.superuser,
    replication: r.superuser || r.replication,
    createRole: r.createrole,
    createInDatabase: r.superuser || r.create_db,
    rds: r.rds,
    major: r.major,
  };
}

export interface TargetTable {
  /** `schema.name`, unquoted. */
  name: string;
  schema: string;
  table: string;
  owner: string;
  /** A leaf of a partitioned table (published through its root). */
  partition: boolean;
  partitioned: boolean;
  /** d(efault), n(othing), f(ull), i(ndex). */
  replicaIdentity: string;
  primaryKey: boolean;
  /** The connecting role has its owner's rights (superuser, or an inheriting member). */
  owned: boolean;
}

/** Every permanent user table on the target, as the forward publication (FOR ALL TABLES) had them. */
export async function targetTables(target: pg.Pool): Promise<TargetTable[]> {
  const { rows } = await target.query(
    `select n.nspname as schema, c.relname as table, pg_get_userbyid(c.relowner) as owner, c.relkind, c.relispartition,
            c.relreplident, exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary) as pk,
            pg_has_role(current_user, c.relowner, 'USAGE') as owned
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p') and c.relpersistence = 'p'
        and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'
        and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
      order by 1, 2`,
  );
  return rows.map((r) => ({
    name: `${r.schema}.${r.table}`,
    schema: r.schema,
    table: r.table,
    owner: r.owner,
    partition: r.relispartition,
    partitioned: r.relkind === 'p',
    replicaIdentity: r.relreplident,
    primaryKey: r.pk,
    owned: r.owned,
  }));
}

/** The tables a FOR TABLE publication lists: roots, since partitions are published through them. */
export const publishedTables = (tables: TargetTable[]) => tables.filter((t) => !t.partition);

/**
 * Tables whose UPDATE and DELETE the target would refuse once published: no primary key and
 * REPLICA IDENTITY DEFAULT, or NOTHING. Leaves, since the identity that counts is the partition's.
 */
export const keylessTables = (tables: TargetTable[]) =>
  tables.filter((t) => !t.partitioned && ((t.replicaIdentity === 'd' && !t.primaryKey) || t.replicaIdentity === 'n'));

/** Keyless tables of the target, for a go/no-go before the freeze. */
export async function keylessTargetTables(target: pg.Pool): Promise<TargetTable[]> {
  return keylessTables(await targetTables(target));
}

/** Owners of sequences the connecting role cannot read (carrying sequences back reads them all). */
export async function unreadableSequenceOwners(target: pg.Pool): Promise<string[]> {
  const { rows } = await target.query<{ owner: string }>(
    `select distinct pg_get_userbyid(c.relowner) as owner from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind = 'S' and n.nspname not in ('pg_catalog', 'information_schema') 
        and case when c.relkind = 'S' then not has_sequence_privilege(c.oid, 'SELECT') else false end
      order by 1`,
  );
  return rows.map((r) => r.owner);
}

export async function isSuperuserRole(db: pg.Pool, role: string): Promise<boolean> {
  const { rows } = await db.query<{ s: boolean }>('select rolsuper as s from pg_roles where rolname = $1', [role]);
  return rows[0]?.s ?? false;
}

export async function grantMembership(target: pg.Pool, role: string): Promise<void> {
  await target.query(`grant ${escapeIdentifier(role)} to current_user`);
}

export async function revokeMembership(target: pg.Pool, role: string): Promise<void> {
  await target.query(`revoke ${escapeIdentifier(role)} from current_user`);
}

export async function setReplicaIdentity(target: pg.Pool, schema: string, table: string, identity: 'full' | 'default' | 'nothing') {
  await target.query(`alter table ${qualified(schema, table)} replica identity ${identity}`);
}

export const identityName = (code: string): 'full' | 'default' | 'nothing' =>
  code === 'f' ? 'full' : code === 'n' ? 'nothing' : 'default';

export interface PublicationState {
  allTables: boolean;
  tables: number;
}

export async function publicationState(db: pg.Pool, name: string): Promise<PublicationState | null> {
  const { rows } = await db.query(
    `select p.puballtables as all, (select count(*)::int from pg_publication_tables t where t.pubname = p.pubname) as n
       from pg_publication p where p.pubname = $1`,
    [name],
  );
  return rows[0] ? { allTables: rows[0].all, tables: rows[0].n } : null;
}

/** FOR ALL TABLES (superuser only), else FOR TABLE every root table; partitions publish through their roots either way. */
export async function createReversePublication(target: pg.Pool, name: string, tables: TargetTable[] | 'all'): Promise<void> {
  const what =
    tables === 'all'
      ? ' for all tables'
      : tables.length > 0
        ? ` for table ${tables.map((t) => qualified(t.schema, t.table)).join(', ')}`
        : '';
  await target.query(`create publication ${escapeIdentifier(name)}${what} with (publish_via_partition_root = true)`);
}

export interface TargetSlot {
  active: boolean;
  confirmedFlushLsn: string | null;
  plugin: string | null;
  database: string | null;
}

export async function targetSlot(target: pg.Pool, name: string): Promise<TargetSlot | null> {
  const { rows } = await target.query(
    'select active, confirmed_flush_lsn::text as confirmed, plugin, database from pg_replication_slots where slot_name = $1',
    [name],
  );
  const r = rows[0];
  return r ? { active: r.active, confirmedFlushLsn: r.confirmed, plugin: r.plugin, database: r.database } : null;
}

/** The slot's LSN is the switch point: every target commit after it reaches the source. */
export async function createReverseSlot(target: pg.Pool, name: string): Promise<string> {
  const { rows } = await target.query<{ lsn: string }>("select lsn::text from pg_create_logical_replication_slot($1, 'pgoutput')", [name]);
  return rows[0]!.lsn;
}

export async function createReverseSubscription(source: pg.Pool, names: ReverseNames, conninfo: string): Promise<void> {
  const major = (await source.query<{ n: number }>("select current_setting('server_version_num')::int / 10000 as n")).rows[0]!.n;
  // From 16 the apply worker otherwise acts as each table's owner: the frozen application roles, and
  // their forced row-level security. As the migration's own role it writes whatever the target sent.
  const runAsOwner = major >= 16 ? ', run_as_owner = true' : '';
  await source.query(
    `create subscription ${escapeIdentifier(names.subscription)} connection ${escapeLiteral(conninfo)} publication ${escapeIdentifier(names.publication)}
       with (create_slot = false, slot_name = ${escapeLiteral(names.slot)}, copy_data = false, enabled = true${runAsOwner})`,
  );
}

export interface ApplyWorker {
  pid: number;
  receivedLsn: string | null;
  latestEndLsn: string | null;
  secondsSinceLatestEnd: number | null;
}

/** The subscription's apply worker on the source (the row without relid), when it runs. */
export async function applyWorker(source: pg.Pool, subscriptionOid: number): Promise<ApplyWorker | null> {
  const { rows } = await source.query(
    `select pid, received_lsn::text as received, latest_end_lsn::text as latest,
            extract(epoch from now() - latest_end_time)::float8 as since
       from pg_stat_subscription where subid = $1 and relid is null and pid is not null`,
    [subscriptionOid],
  );
  const r = rows[0];
  return r ? { pid: r.pid, receivedLsn: r.received, latestEndLsn: r.latest, secondsSinceLatestEnd: r.since } : null;
}

/** Bytes from `from` to `to`; negative once `from` has passed `to`. */
export function lsnDistance(from: string, to: string): bigint {
  const value = (lsn: string) => {
    const [hi, lo] = lsn.split('/');
    return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
  };
  return value(to) - value(from);
}

/**
 * The target's WAL position, after a flushed transactional message where the role may emit one: its
 * walsender then tells the subscriber at once, which confirms within a round trip, not a keepalive.
 */
export async function targetPosition(target: pg.Pool, tag: string): Promise<string> {
  const client = await target.connect();
  try {
    await client.query('begin');
    await client.query('set local synchronous_commit = on');
    await client.query("select pg_logical_emit_message(true, 'migrate', $1)", [tag]);
    await client.query('commit');
  } catch {
    // Not every managed role may emit one; the wait then ends at the next keepalive instead.
    await client.query('rollback').catch(() => {});
  } finally {
    client.release();
  }
  return (await target.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn;
}

/**
 * Waits until the source has applied and flushed everything the target wrote up to now: the reverse
 * slot's confirmed_flush_lsn (what the subscriber reported flushed) reaches the target's WAL position.
 */
export async function waitApplied(
  ctx: StepContext,
  source: pg.Pool,
  target: pg.Pool,
  names: ReverseNames,
  options: { deadline: number; pollMs: number },
): Promise<{ lsn: string; confirmed: string }> {
  const lsn = await targetPosition(target, `reverse catch-up ${ctx.runId}`);
  const sub = await subscriptionInfo(source, names.subscription);
  const confirmed = await waitFor(ctx, {
    label: 'reverse replication: source applying the target’s writes',
    deadline: options.deadline,
    intervalMs: options.pollMs,
    poll: async () => {
      const slot = await targetSlot(target, names.slot);
      if (!slot?.confirmedFlushLsn) throw new Error(`slot ${names.slot} disappeared from the target`);
      const lag = lsnDistance(slot.confirmedFlushLsn, lsn);
      if (lag <= 0n) return { ready: true, value: slot.confirmedFlushLsn };
      const worker = sub ? await applyWorker(source, sub.oid) : null;
      return {
        ready: false,
        detail: `${lag} bytes behind ${lsn} (confirmed ${slot.confirmedFlushLsn}${worker ? `, source applied to ${worker.latestEndLsn}` : ', no apply worker on the source'}${slot.active ? '' : ', slot inactive'})`,
      };
    },
    timedOut: ({ detail }) =>
      new StepError(`the source did not apply the target's writes in time: ${detail}`, [
        {
          severity: 'error',
          object: `subscription ${names.subscription} (source)`,
          message: detail,
          fix: "check `migrate status` (reverse: worker running, lag) and the source server's log (apply errors, cannot connect to the target), then run the rollback again; nothing was dropped",
        },
      ]),
  });
  return { lsn, confirmed };
}

interface SequenceState {
  name: string;
  schema: string;
  sequence: string;
  last: bigint;
  called: boolean;
  increment: bigint;
  min: bigint;
  max: bigint;
  cycle: boolean;
}

async function readSequences(db: pg.Pool): Promise<Map<string, SequenceState>> {
  const { rows } = await db.query(
    `select schemaname, sequencename, increment_by::text as inc, min_value::text as min, max_value::text as max, cycle
       from pg_sequences where schemaname not in ('pg_catalog', 'information_schema') order by 1, 2`,
  );
  const result = new Map<string, SequenceState>();
  const CHUNK = 500;
  for (let i = 0; i < rows.length; i += CHUNK) {
    const chunk = rows.slice(i, i + CHUNK);
    // pg_sequences hides last_value while is_called is false: the relation itself says both.
    const sql = chunk
      .map((r, j) => `select ${j}::int as i, last_value::text, is_called from ${qualified(r.schemaname, r.sequencename)}`)
      .join(' union all ');
    for (const v of (await db.query(sql)).rows) {
      const r = chunk[v.i];
      result.set(`${r.schemaname}.${r.sequencename}`, {
        name: `${r.schemaname}.${r.sequencename}`,
        schema: r.schemaname,
        sequence: r.sequencename,
        last: BigInt(v.last_value),
        called: v.is_called,
        increment: BigInt(r.inc),
        min: BigInt(r.min),
        max: BigInt(r.max),
        cycle: r.cycle,
      });
    }
  }
  return result;
}

/** What nextval would return; null when exhausted. */
function nextValue(s: SequenceState): bigint | null {
  if (!s.called) return s.last;
  const next = s.last + s.increment;
  if (next > s.max || next < s.min) return s.cycle ? (s.increment > 0n ? s.min : s.max) : null;
  return next;
}

/** The target's sequence has moved further than the source's (an exhausted one is furthest). */
function further(target: SequenceState, source: SequenceState): boolean {
  const [t, s] = [nextValue(target), nextValue(source)];
  if (t === s) return false;
  if (t === null) return true;
  if (s === null) return false;
  return target.increment > 0n ? t > s : t < s;
}

export interface SequenceCarry {
  /** Source sequences moved forward to the target's position. */
  moved: string[];
  /** Target sequences the source lacks (cannot be carried). */
  missing: string[];
}

/**
 * Every sequence's position on the target set on the source, `is_called` included, unless the
 * source's is already as far: a source sequence never moves backwards, so rerunning is harmless.
 */
export async function carrySequencesBack(source: pg.Pool, target: pg.Pool): Promise<SequenceCarry> {
  const [onTarget, onSource] = await Promise.all([readSequences(target), readSequences(source)]);
  const missing = [...onTarget.keys()].filter((n) => !onSource.has(n));
  const moving = [...onTarget.values()].filter((t) => onSource.has(t.name) && further(t, onSource.get(t.name)!));
  if (moving.length > 0) {
    await source.query(
      `select count(setval(format('%I.%I', s, n)::regclass, v, c)) from unnest($1::text[], $2::text[], $3::bigint[], $4::bool[]) as u(s, n, v, c)`,
      [moving.map((s) => s.schema), moving.map((s) => s.sequence), moving.map((s) => s.last.toString()), moving.map((s) => s.called)],
    );
  }
  return { moved: moving.map((s) => s.name), missing };
}

/** Drops the subscription on the source; through it the slot on the target too, when the source reaches it. */
export async function dropReverseSubscription(source: pg.Pool, name: string): Promise<boolean> {
  const info = await subscriptionInfo(source, name);
  if (!info) return false;
  try {
    await source.query(`drop subscription if exists ${escapeIdentifier(name)}`);
  } catch (error) {
    if (!/could not connect|could not drop (the )?replication slot/i.test(String((error as Error).message))) throw error;
    // The target is out of reach: detach the slot (dropped on the target directly) and drop the rest.
    await source.query(`alter subscription ${escapeIdentifier(name)} disable`);
    await source.query(`alter subscription ${escapeIdentifier(name)} set (slot_name = none)`);
    await source.query(`drop subscription if exists ${escapeIdentifier(name)}`);
  }
  return true;
}

/** Drops the slot on the target once no walsender holds it. */
export async function dropReverseSlot(ctx: StepContext, target: pg.Pool, slot: string, deadline: number): Promise<void> {
  await waitFor(ctx, {
    label: `dropping replication slot ${slot} on the target`,
    deadline,
    intervalMs: 100,
    poll: async () => {
      const { rows } = await target.query<{ active: boolean }>('select active from pg_replication_slots where slot_name = $1', [slot]);
      if (rows.length === 0) return { ready: true, value: undefined };
      if (rows[0]!.active) return { ready: false, detail: 'slot still in use by a walsender' };
      await target.query('select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active', [
        slot,
      ]);
      return { ready: false, detail: 'dropped; confirming' };
    },
    timedOut: () =>
      new Error(
        `replication slot ${slot} on the target is still in use; terminate its walsender (select active_pid from pg_replication_slots where slot_name = '${slot}'), then select pg_drop_replication_slot('${slot}')`,
      ),
  });
}

export async function dropReversePublication(target: pg.Pool, name: string): Promise<void> {
  await target.query(`drop publication if exists ${escapeIdentifier(name)}`);
}

export interface ReverseStatus {
  /** absent: none of the objects; streaming: all in place and the worker runs; stalled: in place, no worker; partial: some missing. */
  state: 'absent' | 'streaming' | 'stalled' | 'disabled' | 'partial';
  publication: boolean;
  slot: { active: boolean; confirmedFlushLsn: string | null } | null;
  subscription: { enabled: boolean; oid: number } | null;
  workerRunning: boolean;
  /** Target WAL not yet confirmed flushed by the source. */
  lagBytes: number | null;
  /** The last target position the source's worker reported as applied. */
  lastApplied: string | null;
  secondsSinceLastApplied: number | null;
  targetLsn: string;
}

/** The reverse replication's state, read from both servers; for `migrate status` and the steps' checks. */
export async function reverseStatus(source: pg.Pool, target: pg.Pool, names: ReverseNames): Promise<ReverseStatus> {
  const [slot, pub, sub, lsn] = await Promise.all([
    targetSlot(target, names.slot),
    publicationState(target, names.publication),
    subscriptionInfo(source, names.subscription),
    target.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn').then((r) => r.rows[0]!.lsn),
  ]);
  const worker = sub ? await applyWorker(source, sub.oid) : null;
  const state: ReverseStatus['state'] =
    !slot && !pub && !sub ? 'absent' : !slot || !pub || !sub ? 'partial' : !sub.enabled ? 'disabled' : worker ? 'streaming' : 'stalled';
  return {
    state,
    publication: pub !== null,
    slot: slot ? { active: slot.active, confirmedFlushLsn: slot.confirmedFlushLsn } : null,
    subscription: sub ? { enabled: sub.enabled, oid: sub.oid } : null,
    workerRunning: worker !== null,
    lagBytes: slot?.confirmedFlushLsn ? Math.max(0, Number(lsnDistance(slot.confirmedFlushLsn, lsn))) : null,
    lastApplied: worker?.latestEndLsn ?? null,
    secondsSinceLastApplied: worker?.secondsSinceLatestEnd ?? null,
    targetLsn: lsn,
  };
}

/** The replication origin the subscription's apply worker writes under on the source. */
export async function subscriptionOrigin(source: pg.Pool, subscription: string): Promise<string | null> {
  const info = await subscriptionInfo(source, subscription);
  return info ? `pg_${info.oid}` : null;
}
