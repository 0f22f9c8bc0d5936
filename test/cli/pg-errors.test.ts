/**
 * No pg client may crash the process with an 'error' event: the server terminating a connection
 * (the freeze, a restart, a rehearsal stopping its servers) while the CLI's clients sit idle, in a
 * pool or checked out by a step, or holding the run lock. And Ctrl-C cancels a statement that the
 * server is still running, instead of waiting for it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { ResourcePool, type RunServices } from '../../migrate/core/context.ts';
import type { Runbook } from '../../migrate/core/runbook.ts';
import { createSecretResolver } from '../../migrate/core/secret-refs.ts';
import { serverOutputs } from '../../migrate/local/outputs.ts';
import { type PostgresServer, startPostgres } from '../../migrate/local/postgres-server.ts';
import { pool } from '../../migrate/postgres/connections.ts';
import { targetAdvisoryLock } from '../../migrate/postgres/run-lock.ts';
import { testContext } from '../support/context.ts';

describe('pg clients and the server ending their sessions', () => {
  let server: PostgresServer;
  let dir: string;
  let outputs: ReturnType<typeof serverOutputs>;
  let admin: pg.Client;

  before(async () => {
    server = await startPostgres({ name: 'pg-errors' });
    dir = mkdtempSync(join(tmpdir(), 'migrate-pg-errors-'));
    writeFileSync(join(dir, 'source.url'), server.url(), { mode: 0o600 });
    writeFileSync(join(dir, 'target.password'), server.password, { mode: 0o600 });
    outputs = serverOutputs({
      environment: 'test',
      target: {
        host: server.host,
        port: server.port,
        user: 'postgres',
        database: 'postgres',
        sslMode: 'disable',
        version: String(server.major),
        passwordRef: `file:${join(dir, 'target.password')}`,
      },
      sourceUrlRef: `file:${join(dir, 'source.url')}`,
    });
    admin = await server.client();
  });

  after(async () => {
    await admin.end().catch(() => {});
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const terminateOthers = () =>
    admin.query('select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid() and backend_type = $1', [
      'client backend',
    ]);

  it('terminated while idle in a pool, checked out by a step, holding the run lock or opened by test support: no crash', async () => {
    const t = testContext({ outputs });
    const source = await pool(t.ctx, 'source');
    const target = await pool(t.ctx, 'target');
    await Promise.all([source.query('select 1'), target.query('select 1')]);
    const checkedOut = await source.connect();
    const services = {
      runId: 'run-1',
      stack: 'test',
      outputs,
      secret: createSecretResolver({ region: 'local' }),
      signal: new AbortController().signal,
      resources: new ResourcePool(),
    } as unknown as RunServices;
    const runbook = { steps: [{ kind: { requires: ['postgres'] } }] } as unknown as Runbook;
    const release = await targetAdvisoryLock(runbook, services);
    const local = await server.client();

    await terminateOthers();
    // The 'error' events arrive asynchronously: give them time to crash the process if unhandled.
    await delay(500);

    await assert.rejects(checkedOut.query('select 1'), 'the checked-out client reports the lost connection on its next query');
    checkedOut.release(true);
    assert.equal((await source.query('select 1 as one')).rows[0].one, 1, 'the pool replaces the dead clients');
    await release();
    await local.end().catch(() => {});
    await t.close();
  });

  it('an abort (Ctrl-C) cancels a statement the server is running', async () => {
    const t = testContext({ outputs });
    const source = await pool(t.ctx, 'source');
    const sleeping = source.query('select pg_sleep(600)');
    const outcome = sleeping.then(
      () => 'finished',
      (error: { code?: string }) => error.code,
    );
    await delay(300);
    const closing = t.close();
    const code = await Promise.race([outcome, delay(10_000).then(() => 'still running after 10 s')]);
    assert.equal(code, '57014', 'query_canceled');
    await closing;
  });
});
