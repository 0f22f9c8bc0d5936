/**
 * Every connection error names the side (source/target), its host:port and the outputs field to
 * fix, through the real CLI; and preflight blocks when pg_dump/psql are missing on this machine,
 * even when it cannot reach the servers. No password reaches the output.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXIT } from '../../migrate/commands/exit-codes.ts';
import { serverOutputs } from '../../migrate/local/outputs.ts';
import { type PostgresServer, startPostgres } from '../../migrate/local/postgres-server.ts';
import { cli, describeResult, startCli } from './support.ts';

const WRONG = 'Wr0ngTargetPassw0rd';
const SOURCE_PASSWORD = 'S0urcePassw0rdHere';

describe('connection errors name the server and the field to fix', { concurrency: true }, () => {
  let dir: string;
  let server: PostgresServer;
  const outputsFor = (name: string, port: number, password: string) => {
    writeFileSync(join(dir, `${name}.password`), password, { mode: 0o600 });
    writeFileSync(join(dir, `${name}.source`), `postgres://postgres:${SOURCE_PASSWORD}@127.0.0.1:1/app`, { mode: 0o600 });
    const file = join(dir, `${name}.json`);
    const outputs = serverOutputs({
      environment: 'rehearsal',
      target: {
        host: '127.0.0.1',
        port,
        user: 'postgres',
        database: 'postgres',
        sslMode: 'disable',
        version: '15',
        passwordRef: `file:${join(dir, `${name}.password`)}`,
      },
      sourceUrlRef: `file:${join(dir, `${name}.source`)}`,
    });
    writeFileSync(file, JSON.stringify(outputs));
    return file;
  };
  const noSecret = (text: string) => {
    assert.ok(!text.includes(WRONG) && !text.includes(SOURCE_PASSWORD), `a password leaked: ${text}`);
    assert.doesNotMatch(text, /\n\s+at /, 'no stack trace');
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'migrate-cli-connect-'));
    server = await startPostgres({ name: 'connect-errors' });
  });

  after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a wrong target password: names the target, host:port and database.masterPasswordRef', async () => {
    const file = outputsFor('wrong-password', server.port, WRONG);
    const r = await cli(['--outputs', file, '--state-dir', join(dir, 'state-1'), 'run', 'runbooks/week-prior.yaml', '--yes']);
    assert.equal(r.code, EXIT.failed, describeResult(r));
    assert.ok(r.stderr.includes(`target (rehearsal-target) at 127.0.0.1:${server.port}`), r.stderr);
    assert.match(r.stderr, /password authentication failed/);
    assert.match(r.stderr, /database\.masterPasswordRef/);
    noSecret(r.stdout + r.stderr);
  });

  it('an unreachable target: names the target, host:port, that nothing listens, and database.endpoint / port', async () => {
    const file = outputsFor('refused', 1, WRONG);
    const r = await cli(['--outputs', file, '--state-dir', join(dir, 'state-2'), 'run', 'runbooks/week-prior.yaml', '--yes']);
    assert.equal(r.code, EXIT.failed, describeResult(r));
    assert.match(
      r.stderr,
      /target \(rehearsal-target\) at 127\.0\.0\.1:1: .*ECONNREFUSED.*nothing listens there.*database\.endpoint \/ database\.port/,
    );
    noSecret(r.stdout + r.stderr);
  });

  it('preflight without pg_dump/psql: blocked (exit 4) with the fix, even when the servers cannot be reached', async () => {
    const file = outputsFor('no-tools', 1, WRONG);
    const empty = join(dir, 'empty-bindir');
    mkdirSync(empty, { recursive: true });
    const r = await startCli(['--outputs', file, '--state-dir', join(dir, 'state-3'), 'preflight'], { PG_BINDIR: empty }).done;
    assert.equal(r.code, EXIT.blocked, describeResult(r));
    const out = r.stdout + r.stderr;
    assert.ok(out.includes(`client tools in ${empty}`), out);
    assert.match(out, /pg_dump, pg_restore, psql not found there/);
    assert.match(out, /apt-get install postgresql-client/);
    assert.match(out, /source \(legacy\) at 127\.0\.0\.1:1/);
    assert.match(out, /source\.urlRef/);
    noSecret(out);
  });
});
