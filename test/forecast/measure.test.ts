/**
 * The forecast's readings on two real servers with an application writing to the source: WAL is
 * being written, a transaction held open is the longest one (with its pid and role), the
 * subscription's lag is read, the tables and sequences verify compares are counted, and a timed
 * verification sample reads rows at a positive rate. Pod start-up comes from the pods' own
 * timestamps, and is "unknown" (with the reason) where Kubernetes does not report them.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { measure } from '../../migrate/forecast/measure.ts';
import { median, podStartup, startupSeconds } from '../../migrate/forecast/pod-startup.ts';
import { startKubeStandin } from '../../migrate/local/kube-standin.ts';
import { replicationStart } from '../../migrate/steps/postgres/replication-start.ts';
import { schemaCopy } from '../../migrate/steps/postgres/schema-copy.ts';
import {
  APP_PASSWORD,
  DATABASE,
  type Pair,
  ROLES,
  SCHEMA,
  SEED,
  startPair,
  startWriter,
  TARGET_ROLES,
  type Writer,
} from '../postgres/fixtures.ts';
import { testContext } from '../support/context.ts';
import { fixtureOutputs } from '../support/fake-kinds.ts';

const OPTIONS = { subscription: 'migrate_sub', walIntervalMs: 300, sampleRows: 1000 };

describe('forecast measurements', () => {
  let pair: Pair;
  let writer: Writer;
  let held: pg.Client;

  before(async () => {
    pair = await startPair();
    // The key-less table is published: updates to it need a replica identity (preflight's replicaIdentityFull).
    await pair.sql('source', `${SCHEMA + SEED + ROLES}; alter table crm.audit_log replica identity full;`);
    await pair.sql('target', TARGET_ROLES);
    await schemaCopy.apply(pair.context({ stepId: 'schema' }).ctx, schemaCopy.params.parse({}));
    await replicationStart.apply(pair.context({ stepId: 'replicate' }).ctx, replicationStart.params.parse({ pollMs: 50 }));
    await pair.sql('source', 'analyze');
  });
  after(async () => {
    writer?.stop();
    await writer?.finished.catch(() => {});
    await held?.end().catch(() => {});
    await pair?.stop();
  });

  it('sees WAL written, the transaction held open, the lag, the tables and a verification rate', async () => {
    held = new pg.Client({ connectionString: pair.source.url(DATABASE, 'app_writer', APP_PASSWORD), application_name: 'report-job' });
    await held.connect();
    await held.query('begin');
    const heldPid = (await held.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    writer = startWriter(pair.source, 1_000_000);
    // Every writer transaction in flight from here started after the held one.
    let stopped: unknown;
    writer.finished.then(
      (r) => (stopped = r),
      (e) => (stopped = e),
    );
    while (writer.committed < 3 && stopped === undefined) await new Promise((r) => setTimeout(r, 10));
    assert.ok(writer.committed >= 3, `the writer stopped: ${stopped}`);

    const t = pair.context({ stepId: 'forecast' });
    const m = await measure(t.ctx, { ...OPTIONS, kube: 'not read: no cluster in this test' });

    assert.ok(m.walBytesPerSecond.ok, JSON.stringify(m.walBytesPerSecond));
    assert.ok(m.walBytesPerSecond.value.bytesPerSecond > 0, 'the writer writes WAL');

    assert.ok(m.longestTransaction.ok, JSON.stringify(m.longestTransaction));
    assert.equal(m.longestTransaction.value?.pid, heldPid);
    assert.equal(m.longestTransaction.value?.role, 'app_writer');
    assert.equal(m.longestTransaction.value?.application, 'report-job');
    assert.ok(m.longestTransaction.value!.seconds > 0);

    assert.ok(m.replicationLag.ok, JSON.stringify(m.replicationLag));
    assert.equal(typeof m.replicationLag.value.bytes, 'number');

    assert.deepEqual(m.sequences, { ok: true, value: 4 });
    assert.ok(m.tables.ok, JSON.stringify(m.tables));
    assert.equal(m.tables.value.count, 4, 'the tables verify compares: partitions count through their parent');
    assert.deepEqual(m.tables.value.largest.map((x) => x.table).sort(), [
      'billing.customers',
      'billing.invoices',
      'crm.audit_log',
      'crm.events',
    ]);
    const events = m.tables.value.largest.find((x) => x.table === 'crm.events')!;
    assert.ok(events.rows >= 400 && events.bytes > 0, `a partitioned table is measured by its leaves: ${JSON.stringify(events)}`);
    const customers = await pair.sql('source', "select pg_table_size('billing.customers')::float8 as b");
    // Heap and TOAST, not indexes; read after the measurement, while the writer still grows the table.
    const measuredBytes = m.tables.value.largest.find((x) => x.table === 'billing.customers')!.bytes;
    assert.ok(measuredBytes > 0 && measuredBytes <= customers.rows[0].b, `${measuredBytes} of ${customers.rows[0].b}`);

    assert.ok(m.verifyRate.ok, JSON.stringify(m.verifyRate));
    assert.equal(m.verifyRate.value.table, m.tables.value.largest[0]!.table, 'the sample reads the largest table');
    assert.ok(m.verifyRate.value.rows > 0 && m.verifyRate.value.rows <= OPTIONS.sampleRows, 'a bounded sample');
    assert.ok(m.verifyRate.value.rowsPerSecond > 0);
    assert.ok(m.verifyRate.value.bytesPerSecond! > 0);

    assert.deepEqual(m.podStartup, { ok: false, reason: 'not read: no cluster in this test' });
    assert.deepEqual(m.dns.app, { ttl: 300, cutoverTtl: 60 });
    assert.equal(m.pgbouncerAdmin, false);

    // Read-only: the held transaction is still open, and nothing of this CLI stays in one.
    const open = await pair.sql(
      'source',
      "select count(*)::int as n from pg_stat_activity where application_name = 'migrate' and xact_start is not null",
    );
    assert.equal(open.rows[0].n, 0);
    assert.equal((await held.query('select 1 as one')).rows[0].one, 1);
    await held.query('rollback');
  });

  it('a reading that cannot be taken says why, and leaves the others', async () => {
    const t = pair.context({ stepId: 'forecast', outputs: { ...pair.outputs } });
    const m = await measure(t.ctx, { ...OPTIONS, subscription: 'no_such_sub', kube: 'not read' });
    assert.deepEqual(m.replicationLag, { ok: false, reason: 'subscription no_such_sub does not exist on the target' });
    assert.ok(m.walBytesPerSecond.ok && m.tables.ok && m.verifyRate.ok);
  });
});

describe('pod start-up', () => {
  const pod = (created: string, ready?: string) => ({
    metadata: { name: 'p', creationTimestamp: new Date(created) },
    status: { conditions: ready ? [{ type: 'Ready', status: 'True', lastTransitionTime: new Date(ready) }] : [] },
  });

  it('is Ready time minus creation time, median over pods, and absent timestamps are left out', () => {
    assert.equal(startupSeconds(pod('2026-01-01T00:00:00Z', '2026-01-01T00:00:12Z')), 12);
    assert.equal(startupSeconds(pod('2026-01-01T00:00:00Z')), null);
    assert.equal(median([30, 10, 20]), 20);
    assert.equal(median([10, 20]), 15);
    assert.equal(median([]), null);
  });

  it('reads the pods of the app namespaces through the Kubernetes API', async () => {
    const items = [
      pod('2026-01-01T00:00:00Z', '2026-01-01T00:00:08Z'),
      pod('2026-01-01T00:00:00Z', '2026-01-01T00:00:20Z'),
      pod('2026-01-01T00:01:00Z', '2026-01-01T00:01:11Z'),
      pod('2026-01-01T00:00:00Z'),
    ];
    const paths: string[] = [];
    const server = createServer((req, res) => {
      paths.push(req.url ?? '');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ apiVersion: 'v1', kind: 'PodList', metadata: {}, items }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const kubeconfig = `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: ${url}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n`;
      const t = testContext({
        outputs: { ...fixtureOutputs(), cluster: { ...fixtureOutputs().cluster, kubeconfig }, app: { namespaces: ['web', 'workers'] } },
      });
      try {
        const found = await podStartup(t.ctx, { kubeconfig: 'stack' });
        // 3 pods per namespace have both timestamps: 8, 20, 11 twice over.
        assert.deepEqual(found, { medianSeconds: 11, pods: 6, namespaces: ['web', 'workers'] });
        assert.deepEqual(
          paths.map((p) => p.split('?')[0]),
          ['/api/v1/namespaces/web/pods', '/api/v1/namespaces/workers/pods'],
        );
      } finally {
        await t.close();
      }
    } finally {
      server.close();
    }
  });

  it('is unknown, with the reason, where pods carry no timestamps (the local stand-in)', async () => {
    const kube = await startKubeStandin({ workloads: [{ namespace: 'app', kind: 'Deployment', name: 'web', replicas: 2 }] });
    const t = testContext({ outputs: { ...fixtureOutputs(), cluster: { ...fixtureOutputs().cluster, kubeconfig: kube.kubeconfig } } });
    try {
      const found = await podStartup(t.ctx, { kubeconfig: 'stack' });
      assert.deepEqual(found, { medianSeconds: null, pods: 0, namespaces: ['app'] });
    } finally {
      await t.close();
      await kube.close();
    }
  });
});
