/**
 * freeze-writes on a real server: sessions of every application role are ended and new ones cannot
 * write; undo (or unfreeze) puts each role back exactly as it was, also after a crash and resume.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import pg from 'pg';
import { localOutputs } from '../../migrate/local/outputs.ts';
import { startPostgres, type PostgresServer } from '../../migrate/local/postgres-server.ts';
import { freezeWrites } from '../../migrate/steps/postgres/freeze-writes.ts';
import { unfreeze } from '../../migrate/steps/postgres/unfreeze.ts';
import type { StackOutputs } from '../../infra/contract.ts';
import { testContext, type TestContext } from '../support/context.ts';
import { APP_PASSWORD, DATABASE } from './fixtures.ts';

describe('postgres.freeze-writes', () => {
  let server: PostgresServer;
  let admin: pg.Client;
  let outputs: StackOutputs;
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
  /** What each role can do in a fresh session: 'write', 'read-only', or 'no-login'. */
  const canWrite = async (role: string) => {
    let client: pg.Client;
    try {
      client = await connectAs(role);
    } catch {
      return 'no-login';
    }
    try {
      await client.query('insert into public.notes values (1)');
      return 'write';
    } catch (error) {
      assert.equal((error as { code?: string }).code, '25006');
      return 'read-only';
    } finally {
      await client.end();
    }
  };
  const settings = async () =>
    (
      await admin.query(
        `select r.rolname as role, r.rolcanlogin as login, s.setconfig as config from pg_roles r
           left join pg_db_role_setting s on s.setrole = r.oid and s.setdatabase = (select oid from pg_database where datname = $1)
          where r.rolname like 'app_%' order by 1`,
        [DATABASE],
      )
    ).rows;

  before(async () => {
    server = await startPostgres({ name: 'freeze' });
    const root = await server.client();
    await root.query(`create database ${DATABASE}`);
    await root.end();
    admin = new pg.Client({ connectionString: server.url(DATABASE) });
    await admin.connect();
    await admin.query(`
      create table public.notes (n int);
      create role app_a login password '${APP_PASSWORD}';
      create role app_b login password '${APP_PASSWORD}';
      create role app_c login password '${APP_PASSWORD}';
      alter role app_b in database ${DATABASE} set default_transaction_read_only = off;
      alter role app_b in database ${DATABASE} set work_mem = '8MB';
      grant insert, select on public.notes to app_a, app_b, app_c;
      create role replicator login replication;
      create role nobody nologin;`);
    const dir = mkdtempSync(join(tmpdir(), 'migrate-freeze-'));
    outputs = localOutputs({ dir, source: server, target: server, database: DATABASE });
  });
  beforeEach(async () => {
    await admin.query(`alter role app_a in database ${DATABASE} reset default_transaction_read_only; alter role app_a login; alter role app_c login`);
    await admin.query(`alter role app_b in database ${DATABASE} set default_transaction_read_only = off; alter role app_b login`);
  });
  after(async () => {
    for (const t of contexts) await t.close();
    await admin?.end();
    await server?.stop();
  });

  it('freezes every application role, ends their sessions, and undo restores the exact settings', async () => {
    const original = await settings();
    const session = await connectAs('app_a');
    await session.query('begin; insert into public.notes values (0)');

    const t = context();
    const p = freezeWrites.params.parse({});
    const result = await freezeWrites.apply(t.ctx, p);
    assert.deepEqual(result.roles, ['app_a', 'app_b', 'app_c'], 'login roles, not the superuser, the replication role or a nologin role');
    assert.ok(result.terminated >= 1);
    assert.match(result.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
    await assert.rejects(session.query('commit'), 'the open write transaction was ended, not committed');
    assert.equal((await admin.query('select count(*)::int as n from public.notes')).rows[0].n, 0);
    for (const role of result.roles) assert.equal(await canWrite(role), 'read-only');
    assert.deepEqual(await freezeWrites.check(t.ctx, p, result), []);
    assert.deepEqual(result.previous, [
      { role: 'app_a', previousReadOnly: null, previousCanLogin: null },
      { role: 'app_b', previousReadOnly: 'off', previousCanLogin: null },
      { role: 'app_c', previousReadOnly: null, previousCanLogin: null },
    ]);

    await freezeWrites.undo!(t.ctx, p, t.changes, result);
    assert.deepEqual(await settings(), original);
    for (const role of result.roles) assert.equal(await canWrite(role), 'write');
  });

  it('after a crash and resume keeps the original previous values, and nologin mode refuses connections', async () => {
    const original = await settings();
    const p = freezeWrites.params.parse({ roles: ['app_a', 'app_b'], mode: 'nologin' });
    const first = context();
    await freezeWrites.apply(first.ctx, p);
    // The run dies here (after the ALTERs); the resumed attempt sees the first one's journal.
    const second = context(first);
    const result = await freezeWrites.apply(second.ctx, p);
    assert.deepEqual(second.changes, [], 'nothing recorded again: the roles are already journalled');
    assert.deepEqual(result.previous, [
      { role: 'app_a', previousReadOnly: null, previousCanLogin: true },
      { role: 'app_b', previousReadOnly: 'off', previousCanLogin: true },
    ]);
    assert.equal(await canWrite('app_a'), 'no-login');
    assert.equal(await canWrite('app_c'), 'write', 'a role not listed stays as it was');

    await freezeWrites.undo!(second.ctx, p, [...first.changes, ...second.changes], result);
    assert.deepEqual(await settings(), original);
  });

  it('unfreeze restores from the freeze result, or resets by role name', async () => {
    const original = await settings();
    const t = context();
    const result = await freezeWrites.apply(t.ctx, freezeWrites.params.parse({ mode: 'nologin' }));
    const restore = unfreeze.params.parse({ previous: result.previous });
    const u = context();
    assert.equal((await unfreeze.probe(u.ctx, restore)).state, 'ready');
    await unfreeze.apply(u.ctx, restore);
    assert.deepEqual(await unfreeze.check(u.ctx, restore, { roles: [] }), []);
    assert.deepEqual(await settings(), original);

    await freezeWrites.apply(context().ctx, freezeWrites.params.parse({ roles: ['app_c'] }));
    await unfreeze.apply(context().ctx, unfreeze.params.parse({ roles: ['app_c'] }));
    assert.equal(await canWrite('app_c'), 'write');
  });

  it('refuses to freeze the migration user or a role that does not exist', async () => {
    const probe = await freezeWrites.probe(context().ctx, freezeWrites.params.parse({ roles: ['postgres', 'ghost'] }));
    assert.equal(probe.state, 'blocked');
    assert.deepEqual(probe.findings!.map((f) => f.object).sort(), ['role ghost', 'role postgres']);
  });
});
