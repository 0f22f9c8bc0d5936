/**
 * freeze-writes and the write fence on a real server, with a hostile application: a login role
 * owning its schema and tables, a group role reached by SET ROLE, a SECURITY DEFINER function, a
 * keyless json table. Enforced, every way of writing fails; advisory, the bypasses commit and the
 * fence names them. Undo (or unfreeze) puts every role back exactly, also after a crash mid-freeze.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, beforeEach, describe, it } from 'node:test';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { StackOutputs } from '../../infra/contract.ts';
import { type Json, type StepContext, StepError } from '../../migrate/core/step.ts';
import { localOutputs } from '../../migrate/local/outputs.ts';
import { type PostgresServer, startPostgres } from '../../migrate/local/postgres-server.ts';
import { freezeWrites } from '../../migrate/steps/postgres/freeze-writes.ts';
import { unfreeze } from '../../migrate/steps/postgres/unfreeze.ts';
import { writeFence } from '../../migrate/steps/postgres/write-fence.ts';
import { type TestContext, testContext } from '../support/context.ts';
import { APP_PASSWORD, DATABASE } from './fixtures.ts';

const HOSTILE = `
  create role app_owner login password '${APP_PASSWORD}';
  create role app_a login password '${APP_PASSWORD}';
  create role app_b login password '${APP_PASSWORD}';
  create role app_c login password '${APP_PASSWORD}';
  create role app_group nologin;
  grant app_group to app_a;
  alter role app_b in database ${DATABASE} set default_transaction_read_only = off;
  alter role app_b in database ${DATABASE} set work_mem = '8MB';
  create schema shop authorization app_owner;
  set role app_owner;
  create table shop.orders (id int primary key, note text);
  create table shop.events (at int, payload json);
  create sequence shop.ticket;
  create function shop.add_order(i int) returns void language sql security definer as $$ insert into shop.orders values (i, 'definer') $$;
  revoke execute on function shop.add_order(int) from public;
  grant execute on function shop.add_order(int) to app_c;
  grant usage on schema shop to app_a, app_b, app_c, app_group;
  grant select, insert, update, delete on shop.orders to app_a, app_b;
  grant usage on sequence shop.ticket to app_a;
  reset role;
  create table shop.ledger (id int primary key);
  alter table shop.ledger owner to app_group;
  create table public.notes (n int);
  grant insert, select on public.notes to app_a, app_b, app_c, app_owner;
  create role replicator login replication;
  create role nobody nologin;
  create publication migrate_pub for all tables;`;

type Attempt = (c: pg.Client) => Promise<unknown>;
const sql =
  (...statements: string[]): Attempt =>
  async (c) => {
    for (const s of statements) await c.query(s);
  };
/** Every way a frozen role might still write: [name, role, what it runs]. */
const BYPASSES: [string, string, Attempt][] = [
  ['BEGIN READ WRITE', 'app_a', sql('begin read write', "insert into shop.orders values (1, 'read write')", 'commit')],
  [
    'SET default_transaction_read_only = off',
    'app_a',
    sql('set default_transaction_read_only = off', "insert into shop.orders values (2, 'guc')"),
  ],
  [
    'SET SESSION CHARACTERISTICS',
    'app_b',
    sql('set session characteristics as transaction read write', "insert into shop.orders values (3, 'characteristics')"),
  ],
  [
    'SET ROLE to a group role owning a table',
    'app_a',
    sql('set role app_group', 'begin read write', 'insert into shop.ledger values (4)', 'commit'),
  ],
  ['a SECURITY DEFINER function', 'app_c', sql('begin read write', 'select shop.add_order(5)', 'commit')],
  [
    'the owner writing its own keyless table',
    'app_owner',
    sql('begin read write', `insert into shop.events values (6, '{"k": 6}')`, 'commit'),
  ],
  [
    'the owner updating and deleting',
    'app_owner',
    sql('begin read write', "update shop.orders set note = 'owner' where id = 1", 'delete from shop.orders where id = 2', 'commit'),
  ],
  [
    'COPY FROM',
    'app_a',
    async (c) => {
      await c.query('set default_transaction_read_only = off');
      await pipeline(Readable.from(['7\tcopied\n']), c.query(copyFrom('copy shop.orders from stdin')));
    },
  ],
  ['TRUNCATE by the owner', 'app_owner', sql('begin read write', 'truncate shop.events', 'commit')],
  ['TRUNCATE through SET ROLE', 'app_a', sql('set role app_group', 'begin read write', 'truncate shop.ledger', 'commit')],
  ['nextval', 'app_a', sql('begin read write', "select nextval('shop.ticket')", 'commit')],
];

describe('postgres.freeze-writes', () => {
  let server: PostgresServer;
  let admin: pg.Client;
  let outputs: StackOutputs;
  let dir: string;
  const contexts: TestContext[] = [];
  const context = (previous?: TestContext) => {
    const t = previous ? previous.retry() : testContext({ outputs });
    contexts.push(t);
    return t;
  };
  const connectAs = async (role: string) => {
    const client = new pg.Client({ connectionString: server.url(DATABASE, role, APP_PASSWORD) });
    client.on('error', () => {});
    await client.connect();
    return client;
  };
  /** Runs `attempt` as `role` in a new session (or `session`): 'ok', or the SQLSTATE (or message) it failed with. */
  const tryAs = async (role: string, attempt: Attempt, session?: pg.Client): Promise<string> => {
    let client = session;
    try {
      client ??= await connectAs(role);
      await attempt(client);
      return 'ok';
    } catch (error) {
      return (error as { code?: string }).code ?? (error as Error).message;
    } finally {
      await client?.end().catch(() => {});
    }
  };
  /** What each role can do in a fresh session: 'write', 'read-only', or 'no-login'. */
  const canWrite = async (role: string) => {
    const outcome = await tryAs(role, sql('insert into public.notes values (1)'));
    return outcome === 'ok' ? 'write' : outcome === '25006' ? 'read-only' : outcome === '28000' ? 'no-login' : outcome;
  };
  /** Everything a freeze may touch: role attributes, per-database settings, memberships, owners and ACLs, slots. */
  const catalog = async () =>
    (
      await admin.query(`select json_build_object(
        'roles', (select json_agg(json_build_object('r', rolname, 'login', rolcanlogin, 'super', rolsuper, 'inherit', rolinherit, 'repl', rolreplication,
                   'bypassrls', rolbypassrls, 'limit', rolconnlimit, 'until', rolvaliduntil, 'pw', md5(coalesce(rolpassword, ''))) order by rolname) from pg_authid),
        'settings', (select json_agg(json_build_object('db', d.datname, 'r', r.rolname, 'c', s.setconfig) order by d.datname, r.rolname)
                       from pg_db_role_setting s left join pg_roles r on r.oid = s.setrole left join pg_database d on d.oid = s.setdatabase),
        'members', (select json_agg(json_build_object('role', roleid::regrole::text, 'member', member::regrole::text, 'admin', admin_option) order by 1, 2) from pg_auth_members),
        'relations', (select json_agg(json_build_object('c', c.oid::regclass::text, 'owner', c.relowner::regrole::text, 'acl', c.relacl::text) order by c.oid::regclass::text)
                        from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname in ('shop', 'public')),
        'functions', (select json_agg(json_build_object('f', p.oid::regprocedure::text, 'owner', p.proowner::regrole::text, 'acl', p.proacl::text, 'definer', p.prosecdef))
                        from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'shop'),
        'schemas', (select json_agg(json_build_object('n', nspname, 'owner', nspowner::regrole::text, 'acl', nspacl::text) order by nspname) from pg_namespace where nspname in ('shop', 'public')),
        'slots', (select coalesce(json_agg(slot_name order by slot_name), '[]') from pg_replication_slots)
      ) as snapshot`)
    ).rows[0].snapshot;

  before(async () => {
    server = await startPostgres({ name: 'freeze' });
    const root = await server.client();
    await root.query(`create database ${DATABASE}`);
    await root.end();
    admin = new pg.Client({ connectionString: server.url(DATABASE) });
    await admin.connect();
    await admin.query(HOSTILE);
    dir = mkdtempSync(join(tmpdir(), 'migrate-freeze-'));
    outputs = localOutputs({ dir, source: server, target: server, database: DATABASE });
  });
  const pristine: { snapshot?: Json } = {};
  beforeEach(async () => {
    pristine.snapshot ??= await catalog();
    assert.deepEqual(await catalog(), pristine.snapshot, 'the previous test left the catalog as it found it');
    await admin.query('truncate shop.orders, shop.events, shop.ledger, public.notes');
  });
  after(async () => {
    for (const t of contexts) await t.close();
    await admin?.end();
    await server?.stop();
  });

  it('enforced by default: every bypass fails, in a new session and in one opened before; undo restores the catalog exactly', async () => {
    const original = await catalog();
    const opened = await Promise.all(BYPASSES.map(([, role]) => connectAs(role)));
    const writing = await connectAs('app_owner');
    await writing.query("begin; insert into shop.orders values (100, 'in flight')");

    const t = context();
    const p = freezeWrites.params.parse({});
    const probe = await freezeWrites.probe(t.ctx, p);
    assert.equal(probe.state, 'ready');
    assert.match(probe.plan!.join('\n'), /NOLOGIN/);
    assert.match(probe.plan!.join('\n'), /write-fence slot migrate_fence/);
    const result = await freezeWrites.apply(t.ctx, p);
    assert.equal(result.mode, 'enforced');
    assert.deepEqual(
      result.roles,
      ['app_a', 'app_b', 'app_c', 'app_owner'],
      'login roles, not the superuser, the replication role or a nologin role',
    );
    assert.equal(result.fenceSlot, 'migrate_fence');
    assert.ok(result.terminated >= BYPASSES.length + 1);
    await assert.rejects(writing.query('commit'), 'the open write transaction was ended, not committed');

    for (const [i, [name, role, attempt]] of BYPASSES.entries()) {
      assert.equal(await tryAs(role, attempt), '28000', `${name} as ${role}, new session: refused at login`);
      assert.notEqual(await tryAs(role, attempt, opened[i]), 'ok', `${name} as ${role}, session opened before the freeze`);
    }
    const rows =
      await admin.query(`select (select count(*) from shop.orders) + (select count(*) from shop.events) + (select count(*) from shop.ledger) as n,
                                           (select last_value from shop.ticket) as ticket, (select is_called from shop.ticket) as called`);
    assert.deepEqual(rows.rows[0], { n: '0', ticket: '1', called: false }, 'nothing written, no number handed out');
    assert.deepEqual(await freezeWrites.check(t.ctx, p, result), []);
    assert.deepEqual(result.previous, [
      { role: 'app_a', previousReadOnly: null, previousCanLogin: true },
      { role: 'app_b', previousReadOnly: 'off', previousCanLogin: true },
      { role: 'app_c', previousReadOnly: null, previousCanLogin: true },
      { role: 'app_owner', previousReadOnly: null, previousCanLogin: true },
    ]);

    const fence = context();
    const passed = await writeFence.apply(fence.ctx, writeFence.params.parse({}));
    assert.equal(passed.slot, 'migrate_fence');
    assert.deepEqual(
      await writeFence.check(fence.ctx, writeFence.params.parse({}), passed),
      [],
      'the slot is dropped once the fence passed',
    );
    assert.equal(
      (await writeFence.probe(fence.retry().ctx, writeFence.params.parse({}))).state,
      'done',
      'a resumed fence that already passed is done',
    );

    await freezeWrites.undo!(t.ctx, p, t.changes, result);
    assert.deepEqual(await catalog(), original);
    for (const role of result.roles) assert.equal(await canWrite(role), 'write');
  });

  it('advisory: the bypasses commit, and the write fence stops the run naming each table and key', async () => {
    const original = await catalog();
    const t = context();
    const p = freezeWrites.params.parse({ mode: 'advisory' });
    const probe = await freezeWrites.probe(t.ctx, p);
    assert.ok(
      probe.findings!.some((f) => f.object === 'mode advisory'),
      'the plan says what advisory lets through',
    );
    const result = await freezeWrites.apply(t.ctx, p);
    for (const role of result.roles) assert.equal(await canWrite(role), 'read-only', `${role} is read-only by default`);
    const fenceParams = writeFence.params.parse({});
    await writeFence.apply(context().ctx, fenceParams); // nothing yet: passes and drops the slot

    // A second freeze (a new run) with a fresh fence; then every bypass.
    await freezeWrites.undo!(t.ctx, p, t.changes, result);
    const again = context();
    const frozen = await freezeWrites.apply(again.ctx, p);
    for (const [name, role, attempt] of BYPASSES)
      assert.equal(await tryAs(role, attempt), 'ok', `${name} as ${role} gets through an advisory freeze`);

    const fence = context();
    const error = await writeFence.apply(fence.ctx, fenceParams).then(
      () => assert.fail('the fence passed'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof StepError);
    assert.match(error.message, /row change\(s\) in 3 table\(s\) were written on the source after the freeze/);
    const byTable = Object.fromEntries(error.findings.map((f) => [f.object, f.message]));
    assert.deepEqual(Object.keys(byTable).sort(), ['table shop.events', 'table shop.ledger', 'table shop.orders']);
    assert.match(byTable['table shop.orders']!, /5 insert, 1 update, 1 delete/);
    for (const key of [
      'insert (id)=(1)',
      'insert (id)=(2)',
      'insert (id)=(3)',
      'insert (id)=(5)',
      'insert (id)=(7)',
      'update (id)=(1)',
      'delete (id)=(2)',
    ]) {
      assert.ok(byTable['table shop.orders']!.includes(key), `shop.orders names ${key}: ${byTable['table shop.orders']}`);
    }
    assert.match(byTable['table shop.ledger']!, /1 insert, 1 truncate\): insert \(id\)=\(4\)/);
    assert.match(
      byTable['table shop.events']!,
      /1 insert, 1 truncate\): insert \(at, payload\)=\(6, \{"k": 6\}\)/,
      'a keyless table is named by its whole row',
    );
    assert.deepEqual(fence.changes, [], 'nothing recorded: the fence did not pass');
    assert.equal((await writeFence.probe(fence.retry().ctx, fenceParams)).state, 'ready', 'the slot stays: a rerun sees the same writes');

    await freezeWrites.undo!(again.ctx, p, again.changes, frozen);
    assert.deepEqual(await catalog(), original, 'undo restored the roles and dropped the fence slot');
  });

  it('killed mid-freeze: undo from the partial journal, or resume then undo, restores the catalog exactly', async () => {
    const original = await catalog();
    const p = freezeWrites.params.parse({});
    // Dies right after the k-th write-ahead record, before its effect: roles, then the fence slot.
    const dying = (t: TestContext, k: number): StepContext => {
      let n = 0;
      return {
        ...t.ctx,
        record: async (change) => {
          await t.ctx.record(change);
          if (++n === k) throw new Error('killed');
        },
      };
    };
    for (const k of [1, 3, 5]) {
      const first = context();
      await assert.rejects(freezeWrites.apply(dying(first, k), p), /killed/);
      assert.equal(first.changes.length, k);
      await freezeWrites.undo!(first.ctx, p, first.changes, undefined);
      assert.deepEqual(await catalog(), original, `undo after a kill at record ${k}`);

      const killed = context();
      await assert.rejects(freezeWrites.apply(dying(killed, k), p), /killed/);
      const resumed = context(killed);
      const result = await freezeWrites.apply(resumed.ctx, p);
      assert.deepEqual(await freezeWrites.check(resumed.ctx, p, result), []);
      assert.ok(
        result.previous.every((r) => r.previousCanLogin === true),
        `the first records win after a kill at ${k}: ${JSON.stringify(result.previous)}`,
      );
      await freezeWrites.undo!(resumed.ctx, p, [...killed.changes, ...resumed.changes], result);
      assert.deepEqual(await catalog(), original, `resume then undo after a kill at record ${k}`);
    }
    // Killed after the slot was made: the resumed attempt records nothing again and keeps that slot.
    const done = context();
    await freezeWrites.apply(done.ctx, p);
    const resumed = context(done);
    await freezeWrites.apply(resumed.ctx, p);
    assert.deepEqual(resumed.changes, []);
    await freezeWrites.undo!(resumed.ctx, p, [...done.changes, ...resumed.changes], undefined);
    assert.deepEqual(await catalog(), original);
  });

  it('kill -9 of the process mid-freeze (waiting for the fence slot): rollback, or resume then rollback, restores the catalog exactly', async () => {
    const original = await catalog();
    const p = freezeWrites.params.parse({});
    writeFileSync(join(dir, 'outputs.json'), JSON.stringify(outputs));
    /** Starts the freeze in a child process and kills it while it waits for a transaction that holds the fence slot back. */
    const killedMidFreeze = async (journal: string) => {
      const blocker = new pg.Client({ connectionString: server.url(DATABASE) });
      await blocker.connect();
      await blocker.query('begin; select pg_current_xact_id()');
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join(import.meta.dirname, 'freeze-child.ts'), join(dir, 'outputs.json'), journal],
        { stdio: 'ignore' },
      );
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
      const waiting = async () =>
        (
          await admin.query(
            "select 1 from pg_stat_activity where query like '%pg_create_logical_replication_slot%' and pid <> pg_backend_pid()",
          )
        ).rows.length > 0;
      while (!(await waiting())) await new Promise((r) => setTimeout(r, 50));
      child.kill('SIGKILL');
      assert.equal(await exited, 'SIGKILL');
      await blocker.query('rollback');
      await blocker.end();
      // The killed process's backend finishes the slot once the blocker is gone: the slot outlives the run, journalled.
      while (await waiting()) await new Promise((r) => setTimeout(r, 50));
      return readFileSync(journal, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Json);
    };

    const journal = join(dir, 'killed-then-rolled-back.jsonl');
    const changes = await killedMidFreeze(journal);
    assert.deepEqual(
      changes.map((c) => (c as { action: string }).action),
      ['freeze-role', 'freeze-role', 'freeze-role', 'freeze-role', 'create-fence-slot'],
    );
    assert.equal(await canWrite('app_a'), 'no-login', 'killed after the roles were frozen');
    await freezeWrites.undo!(context().ctx, p, changes, undefined);
    assert.deepEqual(await catalog(), original, 'rollback from the journal of the killed run');

    const second = join(dir, 'killed-then-resumed.jsonl');
    const before = await killedMidFreeze(second);
    const resumed = testContext({ outputs, previousChanges: before });
    contexts.push(resumed);
    const result = await freezeWrites.apply(resumed.ctx, p);
    assert.deepEqual(resumed.changes, [], 'the resumed attempt finds every role and the slot journalled');
    assert.deepEqual(await freezeWrites.check(resumed.ctx, p, result), []);
    assert.ok(result.previous.every((r) => r.previousCanLogin === true));
    await freezeWrites.undo!(resumed.ctx, p, [...before, ...resumed.changes], result);
    assert.deepEqual(await catalog(), original, 'rollback after the resumed freeze');
  });

  it('after a crash and resume an advisory freeze turned enforced keeps the original values', async () => {
    const original = await catalog();
    const first = context();
    await freezeWrites.apply(first.ctx, freezeWrites.params.parse({ roles: ['app_a', 'app_b'], mode: 'advisory', fence: false }));
    const second = context(first);
    const result = await freezeWrites.apply(second.ctx, freezeWrites.params.parse({ roles: ['app_a', 'app_b'], fence: false }));
    assert.deepEqual(result.previous, [
      { role: 'app_a', previousReadOnly: null, previousCanLogin: true },
      { role: 'app_b', previousReadOnly: 'off', previousCanLogin: true },
    ]);
    assert.equal(result.fenceSlot, null);
    assert.equal(await canWrite('app_a'), 'no-login');
    assert.equal(await canWrite('app_c'), 'write', 'a role not listed stays as it was');
    await freezeWrites.undo!(second.ctx, freezeWrites.params.parse({}), [...first.changes, ...second.changes], result);
    assert.deepEqual(await catalog(), original);
  });

  it('warns about an unfrozen member of a frozen role; refuses a leftover fence slot, the migration user, a missing role', async () => {
    const members = await freezeWrites.probe(context().ctx, freezeWrites.params.parse({ roles: ['app_group', 'app_owner'], fence: false }));
    assert.deepEqual(
      members.findings!.filter((f) => f.severity === 'warning').map((f) => f.object),
      ['role app_a'],
      'app_a can SET ROLE app_group',
    );
    await admin.query("select pg_create_logical_replication_slot('migrate_fence', 'pgoutput')");
    try {
      const probe = await freezeWrites.probe(context().ctx, freezeWrites.params.parse({ roles: ['postgres', 'ghost'] }));
      assert.equal(probe.state, 'blocked');
      assert.deepEqual(
        probe
          .findings!.filter((f) => f.severity === 'error')
          .map((f) => f.object)
          .sort(),
        ['replication slot migrate_fence (source)', 'role ghost', 'role postgres'],
      );
    } finally {
      await admin.query("select pg_drop_replication_slot('migrate_fence')");
    }
  });

  it('unfreeze restores from the freeze result and drops the fence slot, or resets by role name', async () => {
    const original = await catalog();
    const t = context();
    const result = await freezeWrites.apply(t.ctx, freezeWrites.params.parse({}));
    const restore = unfreeze.params.parse({ previous: result.previous });
    const u = context();
    const probe = await unfreeze.probe(u.ctx, restore);
    assert.equal(probe.state, 'ready');
    assert.equal(probe.plan!.at(-1), 'drop the write-fence slot migrate_fence');
    await unfreeze.apply(u.ctx, restore);
    assert.deepEqual(await unfreeze.check(u.ctx, restore, { roles: [] }), []);
    assert.deepEqual(await catalog(), original);

    await freezeWrites.apply(context().ctx, freezeWrites.params.parse({ roles: ['app_c'], mode: 'advisory', fence: false }));
    await unfreeze.apply(context().ctx, unfreeze.params.parse({ roles: ['app_c'] }));
    assert.equal(await canWrite('app_c'), 'write');
    assert.deepEqual(await catalog(), original);
  });
});
