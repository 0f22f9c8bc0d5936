/**
 * Issue 9 #1 and #4 on the hostile application fixture: week-prior's schema copy run by a migration
 * user that is NOT a superuser (CREATEDB and CREATEROLE, the powers RDS's rds_superuser has), then
 * D-day. Owners, privileges, policies, row-level security, replica identities, statistics objects
 * and comments arrive object by object, the memberships the copy needed are taken back, and each
 * app role connected to the target can do exactly what it could on the source.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StackOutputs } from '../../infra/contract.ts';
import type { Json } from '../../migrate/core/step.ts';
import { pool } from '../../migrate/postgres/connections.ts';
import { readSchema } from '../../migrate/postgres/schema-compare/catalog.ts';
import { compareServers, fingerprint } from '../../migrate/postgres/schema-compare/compare.ts';
import { catchUp } from '../../migrate/steps/postgres/catch-up.ts';
import { freezeWrites } from '../../migrate/steps/postgres/freeze-writes.ts';
import { preflight } from '../../migrate/steps/postgres/preflight.ts';
import { refreshMatviews } from '../../migrate/steps/postgres/refresh-matviews.ts';
import { replicationStart } from '../../migrate/steps/postgres/replication-start.ts';
import { replicationStop } from '../../migrate/steps/postgres/replication-stop.ts';
import { schemaCopy } from '../../migrate/steps/postgres/schema-copy.ts';
import { sequenceSync } from '../../migrate/steps/postgres/sequence-sync.ts';
import { snapshotCopy } from '../../migrate/steps/postgres/snapshot-copy.ts';
import { verify } from '../../migrate/steps/postgres/verify.ts';
import { writeFence } from '../../migrate/steps/postgres/write-fence.ts';
import { APP_ROLE_PASSWORD, capabilities, HOSTILE_ROLES, HOSTILE_SCHEMA, HOSTILE_SEED } from '../support/hostile-app.ts';
import { DATABASE, type Pair, startPair } from './fixtures.ts';

const MIGRATOR_PASSWORD = 'migrator-not-super-pw';

describe('owners and privileges arrive as on the source, copied by a migration user that is not a superuser', () => {
  let pair: Pair;
  let restricted: StackOutputs;
  let onSource: Record<string, Record<string, string>>;
  const context = (stepId: string, outputs: StackOutputs = pair.outputs) => pair.context({ outputs, stepId });
  const actions = (changes: Json[]) =>
    changes.map((c) => `${(c as { action: string }).action}${(c as { role?: string }).role ? ` ${(c as { role: string }).role}` : ''}`);

  before(async () => {
    pair = await startPair();
    await pair.sql('source', HOSTILE_ROLES);
    await pair.sql('target', HOSTILE_ROLES);
    await pair.sql('source', HOSTILE_SCHEMA + HOSTILE_SEED);
    // What rds_superuser is: CREATEDB and CREATEROLE, owner of the database RDS created for it, no superuser.
    await pair.sql(
      'target',
      `create role migrator login createdb createrole password '${MIGRATOR_PASSWORD}'; alter database ${DATABASE} owner to migrator;`,
    );
    const passwordRef = join(pair.dir, 'migrator.password');
    writeFileSync(passwordRef, MIGRATOR_PASSWORD, { mode: 0o600 });
    restricted = {
      ...pair.outputs,
      database: { ...pair.outputs.database, masterUsername: 'migrator', masterPasswordRef: `file:${passwordRef}` },
    };
    onSource = await capabilities(pair.source, DATABASE);
  });
  after(async () => {
    await pair?.stop();
  });

  it('preflight refuses a role that would lose a right: missing on the target, a database privilege not granted, an owner the migration user cannot join', async () => {
    await pair.sql(
      'source',
      'create role app_auditor; grant select on shop.ledger to app_auditor; create role legacy_owner; create table public.legacy (x int); alter table public.legacy owner to legacy_owner;',
    );
    await pair.sql('target', 'create role legacy_owner superuser');
    const t = context('preflight', restricted);
    const findings = (await preflight.probe(t.ctx, preflight.params.parse({}))).findings ?? [];
    const errors = findings.filter((f) => f.severity === 'error' && f.object.startsWith('role ')).map((f) => `${f.object}: ${f.message}`);
    assert.ok(
      errors.some((e) => /^role app_auditor: holds privileges on the source but does not exist on the target/.test(e)),
      errors.join('\n'),
    );
    assert.ok(
      errors.some((e) => /^role legacy_owner: owns objects .* cannot become one \(it is a superuser\)/.test(e)),
      errors.join('\n'),
    );
    assert.ok(
      errors.some((e) => /^role app_owner: may CREATE on the source database app but not on the target's/.test(e)),
      errors.join('\n'),
    );

    await pair.sql(
      'source',
      'drop table public.legacy; drop role legacy_owner; revoke select on shop.ledger from app_auditor; drop role app_auditor;',
    );
    await pair.sql('target', `drop role legacy_owner; grant create on database ${DATABASE} to app_owner;`);
    const again = (await preflight.probe(context('preflight-again', restricted).ctx, preflight.params.parse({}))).findings ?? [];
    assert.deepEqual(
      again.filter((f) => f.severity === 'error' && f.object.startsWith('role ')),
      [],
    );
  });

  it('pre-data, the copy and post-data as the non-superuser: every object equals the source, owners and privileges included', async () => {
    const schema = context('schema', restricted);
    await schemaCopy.apply(schema.ctx, schemaCopy.params.parse({ section: 'pre-data', withPrivileges: true }));
    // Default privileges FOR ROLE app_owner need the membership; it is taken back at once.
    assert.deepEqual(actions(schema.changes), ['grant-membership app_owner', 'restore-schema', 'revoke-membership app_owner']);

    const copy = context('copy', restricted);
    await snapshotCopy.apply(copy.ctx, snapshotCopy.params.parse({}));

    const indexes = context('indexes', restricted);
    const post = schemaCopy.params.parse({ section: 'post-data', withPrivileges: true });
    // The copy built every index and key (no foreign keys, no triggers here): post-data must still run.
    assert.equal((await schemaCopy.probe(indexes.ctx, post)).state, 'ready');
    const result = await schemaCopy.apply(indexes.ctx, post);
    assert.ok('owners' in result);
    assert.ok(result.owners >= 10, `owners given: ${result.owners}`);
    assert.deepEqual(actions(indexes.changes), [
      'grant-membership app_owner',
      'restore-schema',
      // app_owner may no longer create in public on the source, yet owns a table there.
      'grant-create app_owner',
      'revoke-create app_owner',
      // app_owner took TRUNCATE away from itself on the source; the owner change gave it back.
      'set-privileges',
      'revoke-membership app_owner',
    ]);
    assert.deepEqual(await schemaCopy.check(indexes.ctx, post, result), []);
    assert.equal((await schemaCopy.probe(indexes.ctx, post)).state, 'done');

    const { differences } = await compareServers(await pool(indexes.ctx, 'source'), await pool(indexes.ctx, 'target'));
    assert.deepEqual(differences, []);
    assert.equal(fingerprint(await readSchema(await pool(indexes.ctx, 'target'))), result.fingerprint);

    const target = await pair.sql(
      'target',
      `select (select relowner::regrole::text from pg_class where oid = 'shop.orders'::regclass) as orders_owner,
              (select nspowner::regrole::text from pg_namespace where nspname = 'shop') as schema_owner,
              (select relowner::regrole::text from pg_class where oid = 'public.app_settings'::regclass) as settings_owner,
              (select relrowsecurity from pg_class where oid = 'shop.orders'::regclass) as rls,
              (select count(*)::int from pg_policy where polrelid = 'shop.orders'::regclass) as policies,
              (select relreplident from pg_class where oid = 'shop.ledger'::regclass) as ledger_identity,
              (select count(*)::int from pg_statistic_ext where stxname = 'orders_tenant_product') as statistics,
              obj_description('shop.orders'::regclass, 'pg_class') as comment,
              (select count(*)::int from pg_auth_members where member = 'migrator'::regrole) as memberships_left,
              has_schema_privilege('app_owner', 'public', 'CREATE') as owner_creates_in_public`,
    );
    assert.deepEqual(target.rows[0], {
      orders_owner: 'app_owner',
      schema_owner: 'app_owner',
      settings_owner: 'app_owner',
      rls: true,
      policies: 2,
      ledger_identity: 'i',
      statistics: 1,
      comment: 'orders, one tenant per row',
      memberships_left: 0,
      owner_creates_in_public: false,
    });
  });

  it('replication, then D-day: rows, owners and privileges verified, and every app role can do on the target exactly what it could on the source', async () => {
    await replicationStart.apply(context('replication').ctx, replicationStart.params.parse({ copyData: false, pollMs: 50 }));
    const rw = await pair.source.client(DATABASE);
    await rw.query(
      `set role app_rw; insert into shop.orders (tenant, product_id, qty) select 'acme', 1, g from generate_series(1, 20) g; update shop.ledger set amount = amount + 1 where tenant = 'acme'; reset role;`,
    );
    await rw.end();
    onSource = await capabilities(pair.source, DATABASE);

    // In D-day's order: materialized views refreshed before the window, the write fence after catch-up.
    await refreshMatviews.apply(context('refresh-matviews').ctx, refreshMatviews.params.parse({}));
    await freezeWrites.apply(context('freeze').ctx, freezeWrites.params.parse({ roles: ['app_owner', 'app_rw', 'app_ro'] }));
    await catchUp.apply(context('catch-up').ctx, catchUp.params.parse({}));
    await writeFence.apply(context('write-fence').ctx, writeFence.params.parse({}));
    const checking = context('verify');
    const verified = await verify.apply(checking.ctx, verify.params.parse({}));
    assert.deepEqual(verified.privileges, []);
    assert.deepEqual(await verify.check(checking.ctx, verify.params.parse({}), verified), []);
    await sequenceSync.apply(context('sequences').ctx, sequenceSync.params.parse({}));
    await replicationStop.apply(context('stop').ctx, replicationStop.params.parse({}));

    const onTarget = await capabilities(pair.target, DATABASE);
    assert.deepEqual(onTarget, onSource);
    // The fixture is hostile enough for the comparison to mean something.
    assert.deepEqual(
      [onSource.app_owner!['select orders'], onSource.app_rw!['select orders'], onSource.app_ro!['select orders']],
      ['ok 50', 'ok 40', 'ok 30'],
      'each role sees its tenants through its policy',
    );
    assert.equal(onSource.app_ro!['select products.secret_cost'], 'denied 42501');
    assert.equal(onSource.app_rw!['insert order for initech'], 'denied 42501');
    assert.equal(onSource.app_owner!['create table in shop'], 'ok');
  });

  it('verify reports an owner or a grant that differs, with its fix', async () => {
    await pair.sql('target', 'alter table shop.ledger owner to migrator; revoke update on shop.orders from app_rw;');
    const t = context('verify-again');
    const result = await verify.apply(t.ctx, verify.params.parse({ mode: 'counts' }));
    const findings = (await verify.check(t.ctx, verify.params.parse({ mode: 'counts' }), result)) ?? [];
    assert.deepEqual(findings.map((f) => f.object).sort(), ['table shop.ledger', 'table shop.orders']);
    assert.match(findings.find((f) => f.object === 'table shop.ledger')!.message, /owner: app_owner on the source, migrator on the target/);
    assert.match(findings.find((f) => f.object === 'table shop.orders')!.message, /acl: .*app_rw:UPDATE/);
    await pair.sql('target', 'alter table shop.ledger owner to app_owner; grant update on shop.orders to app_rw;');
  });

  it('never lets a password out', () => {
    for (const t of pair.contexts) {
      const text = JSON.stringify({ lines: t.lines, changes: t.changes, progress: t.progress });
      for (const secret of [pair.source.password, MIGRATOR_PASSWORD, APP_ROLE_PASSWORD])
        assert.ok(!text.includes(secret), `${t.ctx.stepId} leaked a password`);
    }
  });
});
