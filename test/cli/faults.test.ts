/**
 * Faults the CLI must survive without hanging: a server that accepts TCP but never answers (the run
 * lock's connection, the pools), and a signal during such a wait or during a statement blocked on
 * the server. Each runs the real CLI process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { EXIT } from '../../migrate/commands/exit-codes.ts';
import { Secret } from '../../migrate/core/secret.ts';
import { serverOutputs } from '../../migrate/local/outputs.ts';
import { clientBindir, libpqEnv, runTool } from '../../migrate/postgres/pg-tools.ts';
import { type CliProcess, type CliResult, describeResult, journalFiles, startCli, state, waitUntil } from './support.ts';

/** Accepts connections and never says a word, like a hung server or a black-holing proxy. */
async function silentServer(): Promise<{ port: number; accepted: () => number; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => {
    socket.on('error', () => {});
    sockets.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    accepted: () => sockets.length,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Waits for the process to exit, or gives up after `ms` (then kills it so the suite does not hang). */
async function exitWithin(cli: CliProcess, ms: number): Promise<CliResult | 'hung'> {
  const result = await Promise.race([cli.done, delay(ms).then(() => 'hung' as const)]);
  if (result === 'hung') cli.child.kill('SIGKILL');
  return result;
}

describe('a server that accepts but never answers', () => {
  let dir: string;
  let silent: Awaited<ReturnType<typeof silentServer>>;
  let outputsFile: string;
  const running: CliProcess[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'migrate-cli-faults-'));
    silent = await silentServer();
    writeFileSync(join(dir, 'target.password'), 'silent-target-secret', { mode: 0o600 });
    writeFileSync(join(dir, 'source.url'), `postgres://postgres:silent-source-secret@127.0.0.1:${silent.port}/app`, { mode: 0o600 });
    const outputs = serverOutputs({
      environment: 'rehearsal',
      target: {
        host: '127.0.0.1',
        port: silent.port,
        user: 'postgres',
        database: 'app',
        sslMode: 'disable',
        version: '15',
        passwordRef: `file:${join(dir, 'target.password')}`,
      },
      sourceUrlRef: `file:${join(dir, 'source.url')}`,
    });
    outputsFile = join(dir, 'outputs.json');
    writeFileSync(outputsFile, JSON.stringify(outputs));
  });

  after(async () => {
    for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await silent.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('migrate run fails within the connect timeout, naming the target, its host:port and the outputs field', async () => {
    const stateDir = join(dir, 'state-timeout');
    const cli = startCli(['--outputs', outputsFile, '--state-dir', stateDir, 'run', 'runbooks/week-prior.yaml', '--yes'], {
      PGCONNECT_TIMEOUT: '2',
    });
    running.push(cli);
    const r = await exitWithin(cli, 30_000);
    assert.notEqual(r, 'hung', `migrate run still waiting after 30 s with a 2 s connect timeout: ${cli.stdout()}`);
    const result = r as CliResult;
    assert.equal(result.code, EXIT.failed, describeResult(result));
    assert.ok(
      result.stderr.includes(`target (rehearsal-target) at 127.0.0.1:${silent.port}`),
      `names the side and host:port: ${result.stderr}`,
    );
    assert.match(result.stderr, /database\.endpoint/);
    assert.match(result.stderr, /no answer within 2 s/);
    assert.doesNotMatch(result.stdout + result.stderr, /silent-(target|source)-secret/);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  });

  it('the first SIGTERM stops the wait for the lock connection at once: exit 130, journal consistent', async () => {
    const stateDir = join(dir, 'state-signal');
    const before = silent.accepted();
    const cli = startCli(['--outputs', outputsFile, '--state-dir', stateDir, 'run', 'runbooks/week-prior.yaml', '--yes'], {
      PGCONNECT_TIMEOUT: '600',
    });
    running.push(cli);
    await waitUntil('the CLI to connect to the silent server', () => (silent.accepted() > before ? true : undefined), {
      process: cli,
      timeoutMs: 60_000,
    });
    cli.child.kill('SIGTERM');
    const r = await exitWithin(cli, 5000);
    assert.notEqual(r, 'hung', 'the first SIGTERM did not stop the wait');
    const result = r as CliResult;
    assert.equal(result.code, EXIT.interrupted, describeResult(result));
    for (const journal of journalFiles(stateDir))
      assert.equal(state(journal).status, 'interrupted', `${journal} says the run was interrupted`);
  });

  it('a dry run names the unreachable servers in its findings instead of hanging', async () => {
    const cli = startCli(
      ['--outputs', outputsFile, '--state-dir', join(dir, 'state-dry'), 'run', 'runbooks/week-prior.yaml', '--dry-run'],
      { PGCONNECT_TIMEOUT: '2' },
    );
    running.push(cli);
    const r = await exitWithin(cli, 60_000);
    assert.notEqual(r, 'hung');
    const result = r as CliResult;
    assert.equal(result.code, EXIT.blocked, describeResult(result));
    assert.ok(result.stdout.includes(`127.0.0.1:${silent.port}`), describeResult(result));
    assert.doesNotMatch(result.stdout + result.stderr, /silent-(target|source)-secret/);
  });

  it('SIGTERM during a dry run stops it at once and exits 130, not as if the probes had found blockers', async () => {
    const before = silent.accepted();
    const cli = startCli(
      ['--outputs', outputsFile, '--state-dir', join(dir, 'state-dry-signal'), 'run', 'runbooks/week-prior.yaml', '--dry-run'],
      { PGCONNECT_TIMEOUT: '600' },
    );
    running.push(cli);
    await waitUntil('the dry run to connect to the silent server', () => (silent.accepted() > before ? true : undefined), {
      process: cli,
      timeoutMs: 60_000,
    });
    cli.child.kill('SIGTERM');
    const r = await exitWithin(cli, 10_000);
    assert.notEqual(r, 'hung', 'the first SIGTERM did not stop the dry run');
    const result = r as CliResult;
    assert.equal(result.code, EXIT.interrupted, describeResult(result));
    assert.doesNotMatch(result.stdout + result.stderr, /silent-(target|source)-secret/);
  });

  it('an abort stops a client tool waiting on the server (pg_dump/psql do not outlive Ctrl-C)', async () => {
    const saved = process.env.PGCONNECT_TIMEOUT;
    process.env.PGCONNECT_TIMEOUT = '600';
    try {
      const controller = new AbortController();
      const before = silent.accepted();
      const started = Date.now();
      const running = runTool(
        clientBindir(),
        'psql',
        ['-X', '-c', 'select 1'],
        new Secret(`postgres://postgres:silent-target-secret@127.0.0.1:${silent.port}/app`),
        undefined,
        controller.signal,
      );
      while (silent.accepted() === before) await delay(20);
      controller.abort(new Error('interrupted by SIGTERM'));
      await assert.rejects(running, /psql stopped: interrupted by SIGTERM/);
      assert.ok(Date.now() - started < 10_000, 'stopped well before the connect timeout');
    } finally {
      if (saved === undefined) delete process.env.PGCONNECT_TIMEOUT;
      else process.env.PGCONNECT_TIMEOUT = saved;
    }
  });
});

describe('pg_dump and psql wait as long as the CLI', () => {
  it('their libpq environment carries PGCONNECT_TIMEOUT (15 s unless set)', () => {
    const saved = process.env.PGCONNECT_TIMEOUT;
    try {
      process.env.PGCONNECT_TIMEOUT = '3';
      assert.equal(libpqEnv(new Secret('postgres://u:p@127.0.0.1:1/d')).PGCONNECT_TIMEOUT, '3');
      delete process.env.PGCONNECT_TIMEOUT;
      assert.equal(libpqEnv(new Secret('postgres://u:p@127.0.0.1:1/d')).PGCONNECT_TIMEOUT, '15');
    } finally {
      if (saved === undefined) delete process.env.PGCONNECT_TIMEOUT;
      else process.env.PGCONNECT_TIMEOUT = saved;
    }
  });
});
