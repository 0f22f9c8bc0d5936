/**
 * The enforced freeze inside D-day's switch, with a real PgBouncer logging in as the application's
 * own (non-superuser) role: pause → freeze (NOLOGIN, sessions ended, PgBouncer's server connections
 * among them) → write fence → reload onto the other server → resume. Held clients must not notice:
 * no query fails, every commit lands on the server that answered it, none on the source after the
 * freeze.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { localOutputs } from '../../migrate/local/outputs.ts';
import { type LocalPgbouncer, startPgbouncer } from '../../migrate/local/pgbouncer.ts';
import type { PostgresServer } from '../../migrate/local/postgres-server.ts';
import { pgbouncerPause } from '../../migrate/steps/pgbouncer/pause.ts';
import { pgbouncerReload } from '../../migrate/steps/pgbouncer/reload.ts';
import { pgbouncerResume } from '../../migrate/steps/pgbouncer/resume.ts';
import { freezeWrites } from '../../migrate/steps/postgres/freeze-writes.ts';
import { writeFence } from '../../migrate/steps/postgres/write-fence.ts';
import { type TestContext, testContext } from '../support/context.ts';
import { ledgerIds as ids, LEDGER, startLedgerClient, until } from '../support/ledger.ts';
import { startServers } from '../support/servers.ts';

const PASSWORD = 'app-user-pw-7c1d';
let source: PostgresServer;
let target: PostgresServer;
let bouncer: LocalPgbouncer;
let dir: string;
const contexts: TestContext[] = [];

before(async () => {
  // The hostile case: the app's login role owns its table.
  const app = `${LEDGER}; create role app_user login password '${PASSWORD}'; alter table ledger owner to app_user; create publication migrate_pub for all tables`;
  [source, target] = await startServers([{ name: 'fzb-source' }, { name: 'fzb-target' }], { database: 'app', sql: app });
  bouncer = await startPgbouncer({
    database: 'app',
    backend: { host: source.host, port: source.port },
    user: 'app_user',
    password: PASSWORD,
    queryWaitTimeout: 30,
  });
  dir = mkdtempSync(join(tmpdir(), 'freeze-pgb-'));
});
after(async () => {
  for (const t of contexts) await t.close();
  await bouncer?.stop();
  await Promise.all([source?.stop(), target?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const context = () => {
  const t = testContext({
    outputs: localOutputs({ dir, source, target, database: 'app', pgbouncer: { port: bouncer.port, adminUrl: bouncer.adminUrl } }),
  });
  contexts.push(t);
  return t;
};

const startClient = (index: number, stop: { now: boolean }) => startLedgerClient(bouncer.url(), index, stop, 0.002);

test('pause → enforced freeze → fence → reload → resume: held clients continue on the new server, nothing written on the source after the freeze', async () => {
  const stop = { now: false };
  const clients = Array.from({ length: 4 }, (_, i) => startClient(i + 1, stop));
  try {
    await until(() => clients.every((c) => c.log.length >= 20), 'clients to commit on the source');
    const t = context();
    await pgbouncerPause.apply(t.ctx, pgbouncerPause.params.parse({ configFile: bouncer.configFile }));
    const frozen = await freezeWrites.apply(t.ctx, freezeWrites.params.parse({}));
    assert.deepEqual(frozen.roles, ['app_user']);
    const left = await source.client('app');
    const sessions = await left.query("select count(*)::int as n from pg_stat_activity where usename = 'app_user'");
    await left.end();
    assert.equal(sessions.rows[0].n, 0, 'no server connection of the frozen role is left (PAUSE closed them, or the freeze did)');
    const onSourceAtFreeze = (await ids(source)).size;
    await writeFence.apply(t.ctx, writeFence.params.parse({}));
    await pgbouncerReload.apply(
      t.ctx,
      pgbouncerReload.params.parse({ backend: { host: target.host, port: target.port }, configFile: bouncer.configFile }),
    );
    await pgbouncerResume.apply(t.ctx, pgbouncerResume.params.parse({ configFile: bouncer.configFile }));
    const switched = clients.map((c) => c.log.length);
    await until(() => clients.every((c, i) => c.log.length >= switched[i]! + 20), 'clients to commit on the target');
    stop.now = true;
    await Promise.all(clients.map((c) => c.done));

    assert.deepEqual(
      clients.flatMap((c) => c.errors),
      [],
      'no client query failed',
    );
    const [onSource, onTarget] = await Promise.all([ids(source), ids(target)]);
    assert.equal(onSource.size, onSourceAtFreeze, 'nothing committed on the source after the freeze');
    for (const c of clients) {
      for (const commit of c.log)
        assert.ok(
          (commit.port === source.port ? onSource : onTarget).has(commit.id),
          `committed ${commit.id} is on the server that answered`,
        );
      assert.ok(c.log.at(-1)!.port === target.port, 'each client ends on the target');
    }
  } finally {
    stop.now = true;
    // Clients held by a pause that a failure left in place would never finish.
    await pgbouncerResume.apply(context().ctx, pgbouncerResume.params.parse({ configFile: bouncer.configFile })).catch(() => {});
    await Promise.allSettled(clients.map((c) => c.done));
  }
});
