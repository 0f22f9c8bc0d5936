/**
 * pgbouncer.pause → reload (switch backend) → resume with a real PgBouncer (Debian binary) in front
 * of two real PostgreSQL servers, while clients run transactions through it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { StepError } from '../../migrate/core/step.ts';
import { startKubeStandin } from '../../migrate/local/kube-standin.ts';
import { localOutputs } from '../../migrate/local/outputs.ts';
import { type LocalPgbouncer, startPgbouncer } from '../../migrate/local/pgbouncer.ts';
import type { PostgresServer } from '../../migrate/local/postgres-server.ts';
import { kubeRestart } from '../../migrate/steps/kube/restart.ts';
import { pgbouncerCheckBackend } from '../../migrate/steps/pgbouncer/check-backend.ts';
import { pgbouncerPause } from '../../migrate/steps/pgbouncer/pause.ts';
import { pgbouncerReload } from '../../migrate/steps/pgbouncer/reload.ts';
import { pgbouncerResume } from '../../migrate/steps/pgbouncer/resume.ts';
import { testContext } from '../support/context.ts';
import { ledgerIds as ids, LEDGER, startLedgerClient, until } from '../support/ledger.ts';
import { startServers } from '../support/servers.ts';

const PASSWORD = 'shared-app-password-9f2c';
let a: PostgresServer;
let b: PostgresServer;
let bouncer: LocalPgbouncer;
let dir: string;

before(async () => {
  [a, b] = await startServers(
    [
      { name: 'pgb-a', password: PASSWORD },
      { name: 'pgb-b', password: PASSWORD },
    ],
    { database: 'app', sql: LEDGER },
  );
  bouncer = await startPgbouncer({ database: 'app', backend: { host: a.host, port: a.port }, user: 'postgres', password: PASSWORD });
  dir = mkdtempSync(join(tmpdir(), 'pgb-test-'));
});
after(async () => {
  await bouncer?.stop();
  await Promise.all([a?.stop(), b?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const context = () =>
  testContext({
    outputs: localOutputs({ dir, source: a, target: b, database: 'app', pgbouncer: { port: bouncer.port, adminUrl: bouncer.adminUrl } }),
  });
const adminPassword = () => decodeURIComponent(new URL(bouncer.adminUrl).password);

const startClient = (index: number, stop: { now: boolean }) => startLedgerClient(bouncer.url(), index, stop, 0.003);

test('the admin console answers node-postgres simple queries; a dry run plans the pause without pausing', async () => {
  const t = context();
  const probe = await pgbouncerPause.probe(t.ctx, pgbouncerPause.params.parse({ configFile: bouncer.configFile }));
  assert.equal(probe.state, 'ready');
  assert.match(probe.plan![0]!, new RegExp(`^PgBouncer: PAUSE app on 127.0.0.1:${a.port}`));
  const backend = await pgbouncerCheckBackend.probe(t.ctx, pgbouncerCheckBackend.params.parse({ configFile: bouncer.configFile }));
  assert.deepEqual(backend.result, {
    database: 'app',
    host: '127.0.0.1',
    port: a.port,
    dbname: 'app',
    paused: false,
    consoles: [{ console: 'PgBouncer', host: '127.0.0.1', port: a.port, dbname: 'app', paused: false }],
  });
  const reloadPlan = await pgbouncerReload.probe(
    t.ctx,
    pgbouncerReload.params.parse({ backend: { host: b.host, port: b.port }, configFile: bouncer.configFile }),
  );
  assert.deepEqual(reloadPlan.plan, [
    `rewrite ${bouncer.configFile} [databases] app: 127.0.0.1:${a.port}/app → 127.0.0.1:${b.port}`,
    'RELOAD',
    'RECONNECT app; wait for connections to the old backend to close (up to 60 s)',
  ]);
  assert.equal(
    (await pgbouncerCheckBackend.probe(t.ctx, pgbouncerCheckBackend.params.parse({ configFile: bouncer.configFile }))).result!.port,
    a.port,
    'probes changed nothing',
  );
  await t.close();
});

test('pause → switch backend → resume under load: no committed transaction lost, no client query failed', async () => {
  const stop = { now: false };
  const clients = Array.from({ length: 6 }, (_, i) => startClient(i + 1, stop));
  try {
    await until(() => clients.every((c) => c.log.length >= 20), 'clients to commit on the first server');
    const t = context();
    const pause = await pgbouncerPause.apply(t.ctx, pgbouncerPause.params.parse({ configFile: bouncer.configFile }));
    assert.equal(
      (await pgbouncerCheckBackend.probe(t.ctx, pgbouncerCheckBackend.params.parse({ configFile: bouncer.configFile }))).result!.paused,
      true,
    );
    const reload = await pgbouncerReload.apply(
      t.ctx,
      pgbouncerReload.params.parse({ backend: { host: b.host, port: b.port }, configFile: bouncer.configFile }),
    );
    assert.deepEqual(reload, { database: 'app', host: '127.0.0.1', port: b.port, dbname: 'app', consoles: ['PgBouncer'] });
    const resume = await pgbouncerResume.apply(t.ctx, pgbouncerResume.params.parse({ configFile: bouncer.configFile }));
    const switched = clients.map((c) => c.log.length);
    await until(() => clients.every((c, i) => c.log.length >= switched[i]! + 20), 'clients to commit on the second server');
    stop.now = true;
    await Promise.all(clients.map((c) => c.done));

    assert.deepEqual(
      clients.flatMap((c) => c.errors),
      [],
      'no client query failed',
    );
    const [onA, onB] = await Promise.all([ids(a), ids(b)]);
    for (const c of clients) {
      for (const commit of c.log) {
        const server = commit.port === a.port ? onA : commit.port === b.port ? onB : undefined;
        assert.ok(server?.has(commit.id), `committed ${commit.id} is on the server that answered (${commit.port})`);
        assert.ok(!(onA.has(commit.id) && onB.has(commit.id)), `${commit.id} on one server only`);
      }
      const firstOnB = c.log.findIndex((x) => x.port === b.port);
      assert.ok(firstOnB > 0, 'each client committed on A, then on B');
      assert.ok(
        c.log.slice(firstOnB).every((x) => x.port === b.port),
        'once switched, never back on A',
      );
    }
    assert.equal(
      onA.size + onB.size,
      clients.reduce((n, c) => n + c.log.length, 0),
      'no row committed that a client did not see commit',
    );

    const longest = Math.max(...clients.flatMap((c) => c.log.map((x) => x.latencyMs)));
    console.log(
      `pgbouncer switch: ${onA.size} commits on A, ${onB.size} on B; PAUSE took ${pause.waitedMs} ms; ` +
        `longest client transaction ${longest.toFixed(1)} ms; PgBouncer's longest hold at RESUME ${resume.longestWaitMs} ms`,
    );
    assert.deepEqual(t.changes, [
      { action: 'pause', database: 'app', consoles: ['PgBouncer'] },
      { action: 'reload', database: 'app', configFile: bouncer.configFile, previous: { host: '127.0.0.1', port: a.port, database: 'app' } },
      { action: 'resume', database: 'app', consoles: ['PgBouncer'] },
    ]);
    const everything = JSON.stringify([t.changes, t.lines, t.progress, pause, reload, resume]);
    assert.ok(!everything.includes(adminPassword()), 'the console password appears nowhere');

    // Rolling back, newest first: pause again, point back at A, resume.
    await pgbouncerResume.undo!(t.ctx, pgbouncerResume.params.parse({ configFile: bouncer.configFile }), [t.changes[2]!], resume);
    await pgbouncerReload.undo!(
      t.ctx,
      pgbouncerReload.params.parse({ backend: { host: b.host, port: b.port }, configFile: bouncer.configFile }),
      [t.changes[1]!],
      reload,
    );
    await pgbouncerPause.undo!(t.ctx, pgbouncerPause.params.parse({ configFile: bouncer.configFile }), [t.changes[0]!], pause);
    const back = await pgbouncerCheckBackend.probe(t.ctx, pgbouncerCheckBackend.params.parse({ configFile: bouncer.configFile }));
    assert.deepEqual(
      { ...back.result, consoles: undefined },
      { database: 'app', host: '127.0.0.1', port: a.port, dbname: 'app', paused: false, consoles: undefined },
    );
    assert.match(readFileSync(bouncer.configFile, 'utf8'), new RegExp(`^app = host=127.0.0.1 port=${a.port} dbname=app$`, 'm'));
    await t.close();
  } finally {
    stop.now = true;
    await Promise.allSettled(clients.map((c) => c.done));
  }
});

test('a resumed reload keeps the original backend for undo; check-backend fails on the wrong backend', async () => {
  const t = context();
  const params = pgbouncerReload.params.parse({ backend: { host: b.host, port: b.port }, configFile: bouncer.configFile });
  // Without a pause, an idle server connection to the old backend must not serve the next query.
  const app = new pg.Client({ connectionString: bouncer.url() });
  await app.connect();
  const port = async () => Number((await app.query('SELECT inet_server_port() AS port')).rows[0].port);
  assert.equal(await port(), a.port);
  await pgbouncerReload.apply(t.ctx, params);
  assert.equal(await port(), b.port, 'next transaction goes to the new backend');
  const again = t.retry();
  assert.equal((await pgbouncerReload.probe(again.ctx, params)).state, 'done');
  await pgbouncerReload.apply(again.ctx, params);
  assert.deepEqual(again.changes, [], 'no second record, whose "previous" would be the new backend');
  const check = pgbouncerCheckBackend.params.parse({ configFile: bouncer.configFile, expect: { host: '127.0.0.1', port: a.port } });
  const findings = await pgbouncerCheckBackend.check(t.ctx, check, (await pgbouncerCheckBackend.probe(t.ctx, check)).result!);
  assert.match(findings?.[0]?.message ?? '', new RegExp(`points at 127.0.0.1:${b.port}/app, expected 127.0.0.1:${a.port}`));
  await pgbouncerReload.undo!(t.ctx, params, t.changes, undefined);
  assert.equal(await port(), a.port, 'and back to the old one after undo');
  await app.end();
  assert.deepEqual(await pgbouncerCheckBackend.check(t.ctx, check, (await pgbouncerCheckBackend.probe(t.ctx, check)).result!), undefined);
  await t.close();
});

test('a pause that cannot finish in time resumes the clients and names the cause', async () => {
  const long = new pg.Client({ connectionString: bouncer.url() });
  await long.connect();
  await long.query('BEGIN');
  await long.query('SELECT 1');
  const t = context();
  try {
    await assert.rejects(
      pgbouncerPause.apply(t.ctx, pgbouncerPause.params.parse({ configFile: bouncer.configFile, deadlineSeconds: 1, pollSeconds: 0.2 })),
      (error: unknown) => {
        assert.ok(error instanceof StepError);
        assert.match(
          error.message,
          /^Unable to pause PgBouncer database app on PgBouncer: transactions still running after 1 s \(1 server connections still in a transaction/,
        );
        assert.match(error.findings[0]!.fix ?? '', /long transactions/);
        return true;
      },
    );
    assert.equal(
      (await pgbouncerCheckBackend.probe(t.ctx, pgbouncerCheckBackend.params.parse({ configFile: bouncer.configFile }))).result!.paused,
      false,
      'resumed',
    );
    await long.query('COMMIT');
  } finally {
    await long.end();
    await t.close();
  }
});

test('reload refuses a backend without the ini to rewrite', () => {
  const parsed = pgbouncerReload.params.safeParse({ backend: { host: 'x', port: 1 } });
  assert.equal(parsed.success, false);
});

test('the rehearsal wiring: kube.restart of the PgBouncer deployment in the stand-in switches the local PgBouncer', async () => {
  const outputs = localOutputs({
    dir,
    source: a,
    target: b,
    database: 'app',
    pgbouncer: { port: bouncer.port, adminUrl: bouncer.adminUrl },
  });
  const standin = await startKubeStandin({
    workloads: [{ namespace: outputs.pgbouncer.namespace, kind: 'Deployment', name: outputs.pgbouncer.deployment, replicas: 1 }],
    // New pods would start with the swapped config; the local PgBouncer is pointed at the target instead.
    onRestart: () => bouncer.switchBackend({ host: b.host, port: b.port }),
  });
  const t = testContext({ outputs: { ...outputs, cluster: { ...outputs.cluster, kubeconfig: standin.kubeconfig } } });
  try {
    await kubeRestart.apply(t.ctx, kubeRestart.params.parse({ pollSeconds: 0.05 }));
    const check = pgbouncerCheckBackend.params.parse({ configFile: bouncer.configFile, expect: { host: b.host, port: b.port } });
    assert.deepEqual(await pgbouncerCheckBackend.check(t.ctx, check, (await pgbouncerCheckBackend.probe(t.ctx, check)).result!), undefined);
  } finally {
    await bouncer.switchBackend({ host: a.host, port: a.port });
    await t.close();
    await standin.close();
  }
});
