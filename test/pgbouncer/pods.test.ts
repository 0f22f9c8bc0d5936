/**
 * Issue 10 #6: pgbouncer.pause / resume / check-backend act on every pod of the PgBouncer
 * deployment, each found through the Kubernetes API and reached by its own port-forward. Two real
 * PgBouncers stand in for two pods behind the Kubernetes stand-in (which lists the pods and carries
 * each portforward to its PgBouncer), with clients committing through both throughout.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { StepError } from '../../migrate/core/step.ts';
import { type KubeStandin, startKubeStandin } from '../../migrate/local/kube-standin.ts';
import { localOutputs } from '../../migrate/local/outputs.ts';
import { type LocalPgbouncer, startPgbouncer } from '../../migrate/local/pgbouncer.ts';
import type { PostgresServer } from '../../migrate/local/postgres-server.ts';
import { pgbouncerCheckBackend } from '../../migrate/steps/pgbouncer/check-backend.ts';
import { pgbouncerPause } from '../../migrate/steps/pgbouncer/pause.ts';
import { pgbouncerResume } from '../../migrate/steps/pgbouncer/resume.ts';
import { testContext } from '../support/context.ts';
import { LEDGER } from '../support/ledger.ts';
import { startServers } from '../support/servers.ts';

const PASSWORD = 'pods-app-password-3d7a';
let server: PostgresServer;
const bouncers: LocalPgbouncer[] = [];
let standin: KubeStandin;
let dir: string;
/** The admin URL of each PgBouncer with the password the pods share. */
let adminUrls: string[] = [];

before(async () => {
  [server] = await startServers([{ name: 'pgb-pods', password: PASSWORD }], { database: 'app', sql: LEDGER });
  // The pods of one deployment share their config, the console password included.
  const adminPassword = randomBytes(12).toString('base64url');
  for (let pod = 1; pod <= 2; pod++) {
    bouncers.push(
      await startPgbouncer({
        database: 'app',
        backend: { host: server.host, port: server.port },
        user: 'postgres',
        password: PASSWORD,
        adminPassword,
      }),
    );
  }
  adminUrls = bouncers.map((b) => b.adminUrl);
  standin = await startKubeStandin({
    workloads: [{ namespace: 'pgbouncer', kind: 'Deployment', name: 'pgbouncer', replicas: 2 }],
    podAddress: ({ name }) => {
      const bouncer = bouncers[Number(name.split('-').pop()) - 1];
      return bouncer && { host: bouncer.host, port: bouncer.port };
    },
  });
  dir = mkdtempSync(join(tmpdir(), 'pgb-pods-'));
});
after(async () => {
  await standin?.close();
  await Promise.all(bouncers.map((b) => b.stop()));
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function context() {
  const outputs = localOutputs({
    dir,
    source: server,
    target: server,
    database: 'app',
    pgbouncer: { port: 6432, adminUrl: bouncers[0]!.adminUrl },
  });
  return testContext({ outputs: { ...outputs, cluster: { ...outputs.cluster, kubeconfig: standin.kubeconfig } } });
}

/** SHOW DATABASES on each PgBouncer directly (not through the steps): is `app` paused? */
async function pausedOnEach(): Promise<boolean[]> {
  return Promise.all(
    adminUrls.map(async (url) => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const { rows } = await client.query('SHOW DATABASES');
        return Number(rows.find((r) => r.name === 'app').paused) === 1;
      } finally {
        await client.end();
      }
    }),
  );
}

/** RESUME on each PgBouncer directly: a failed assertion must not leave clients held forever. */
async function resumeEach(): Promise<void> {
  await Promise.all(
    adminUrls.map(async (url) => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query('RESUME app').catch(() => {});
      await client.end();
    }),
  );
}

/** Two clients per PgBouncer committing small transactions until stopped (bounded). */
function startClients(stop: { now: boolean }) {
  const commits = bouncers.map(() => [] as number[]);
  const errors: string[] = [];
  let next = 0;
  const done = Promise.all(
    bouncers.flatMap((bouncer, b) =>
      [0, 1].map(async () => {
        const client = new pg.Client({ connectionString: bouncer.url() });
        await client.connect();
        try {
          for (let n = 0; n < 20_000 && !stop.now; n++) {
            const id = ++next + b * 10_000_000 + Math.floor(Math.random() * 1e6) * 20;
            try {
              await client.query('BEGIN');
              await client.query(`INSERT INTO ledger VALUES (${id}, ${b})`);
              await client.query('SELECT pg_sleep(0.002)');
              await client.query('COMMIT');
              commits[b]!.push(performance.now());
            } catch (error) {
              errors.push(`pgbouncer ${b + 1}: ${(error as Error).message}`);
              await client.query('ROLLBACK').catch(() => {});
            }
          }
        } finally {
          await client.end();
        }
      }),
    ),
  );
  return { commits, errors, done };
}

test('pause holds the clients of every pod, resume releases them all; none fails', { timeout: 120_000 }, async () => {
  const t = context();
  const stop = { now: false };
  const clients = startClients(stop);
  try {
    await delay(300);
    const probe = await pgbouncerPause.probe(t.ctx, pgbouncerPause.params.parse({}));
    assert.equal(probe.state, 'ready');
    assert.deepEqual(
      probe.plan!.map((l) => l.split(':')[0]),
      ['pod pgbouncer/pgbouncer-1', 'pod pgbouncer/pgbouncer-2', 'all or nothing'],
    );

    const paused = await pgbouncerPause.apply(t.ctx, pgbouncerPause.params.parse({}));
    assert.deepEqual(paused.consoles, ['pod pgbouncer/pgbouncer-1', 'pod pgbouncer/pgbouncer-2']);
    assert.deepEqual(await pausedOnEach(), [true, true]);
    const during = clients.commits.map((c) => c.length);
    await delay(400);
    assert.deepEqual(
      clients.commits.map((c) => c.length),
      during,
      'no commit through either PgBouncer while paused',
    );
    const backend = await pgbouncerCheckBackend.probe(t.ctx, pgbouncerCheckBackend.params.parse({}));
    assert.deepEqual(
      backend.result!.consoles.map((c) => [c.console, c.port, c.paused]),
      [
        ['pod pgbouncer/pgbouncer-1', server.port, true],
        ['pod pgbouncer/pgbouncer-2', server.port, true],
      ],
    );

    const resumed = await pgbouncerResume.apply(t.ctx, pgbouncerResume.params.parse({}));
    assert.ok(resumed.longestWaitMs > 0, 'held clients had waited');
    assert.deepEqual(await pausedOnEach(), [false, false]);
    await delay(300);
    clients.commits.forEach((c, i) => {
      assert.ok(c.length > during[i]!, `clients of pgbouncer ${i + 1} committed after the resume`);
    });
  } finally {
    stop.now = true;
    await resumeEach();
    await clients.done;
    await t.close();
  }
  assert.deepEqual(clients.errors, []);
  const forwarded = standin.requests.filter((r) => r.method === 'UPGRADE').map((r) => r.path.split('?')[0]);
  assert.ok(forwarded.includes('/api/v1/namespaces/pgbouncer/pods/pgbouncer-1/portforward'));
  assert.ok(forwarded.includes('/api/v1/namespaces/pgbouncer/pods/pgbouncer-2/portforward'));
});

test('a pod that cannot pause fails the step and every pod is resumed: all or nothing', { timeout: 120_000 }, async () => {
  const t = context();
  const stop = { now: false };
  const clients = startClients(stop);
  // A transaction left open on the second pod's PgBouncer: its PAUSE cannot complete.
  const long = new pg.Client({ connectionString: bouncers[1]!.url() });
  await long.connect();
  try {
    await long.query('BEGIN');
    await long.query('INSERT INTO ledger VALUES (-1, -1)');
    await delay(200);
    await assert.rejects(
      pgbouncerPause.apply(t.ctx, pgbouncerPause.params.parse({ deadlineSeconds: 1, pollSeconds: 0.1 })),
      (error: unknown) => {
        assert.ok(error instanceof StepError);
        assert.match(error.message, /on pod pgbouncer\/pgbouncer-2: transactions still running/);
        assert.match(error.message, /resumed pod pgbouncer\/pgbouncer-1, pod pgbouncer\/pgbouncer-2/);
        return true;
      },
    );
    assert.deepEqual(await pausedOnEach(), [false, false], 'the first pod was paused, and is resumed');
    const after = clients.commits.map((c) => c.length);
    await delay(300);
    clients.commits.forEach((c, i) => {
      assert.ok(c.length > after[i]!, `clients of pgbouncer ${i + 1} go on`);
    });
    await long.query('COMMIT');
  } finally {
    await long.end();
    stop.now = true;
    await resumeEach();
    await clients.done;
    await t.close();
  }
  assert.deepEqual(clients.errors, []);
});
