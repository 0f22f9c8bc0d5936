/**
 * A test file that leaves a PostgreSQL server or a PgBouncer running fails: each scenario runs
 * left-running-child.ts as its own process with the environment the test runner gives a test file,
 * and the process must exit non-zero, name what it left, and leave nothing running behind it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { alive } from '../../migrate/local/running.ts';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'left-running-child.ts');

interface Child {
  code: number | null;
  stderr: string;
  printed: { pid?: number; pids?: number[]; port?: number; dataDir?: string; dir?: string; error?: string };
}

function child(scenario: string): Promise<Child> {
  // What `node --test` sets in each test file's process, and nothing that would force the check.
  const env = { ...process.env, NODE_TEST_CONTEXT: 'child-v8', MIGRATE_LEAK_CHECK: undefined };
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CHILD, scenario], { env, timeout: 120_000 }, (error, stdout, stderr) => {
      const lines = stdout.trim().split('\n');
      resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stderr, printed: JSON.parse(lines.at(-1) || '{}') });
    });
  });
}

/** `pg_ctl stop -w` returns once the pid file is gone, a moment before the postmaster itself. */
async function gone(pid: number): Promise<boolean> {
  for (const until = Date.now() + 10_000; alive(pid); await delay(50)) if (Date.now() > until) return false;
  return true;
}

describe('a server or PgBouncer left running fails the process that started it', () => {
  it('a forgotten PostgreSQL server: exit 1, named with its port and data dir, and killed', async () => {
    const r = await child('forget-postgres');
    assert.equal(r.code, 1, r.stderr);
    const { pid, port, dataDir } = r.printed;
    assert.match(
      r.stderr,
      new RegExp(`Left running by this process, killed at exit: PostgreSQL server 'forgotten' on 127\\.0\\.0\\.1:${port}, data ${dataDir}`),
    );
    assert.ok(await gone(pid!), 'the postmaster is gone');
    rmSync(dirname(dataDir!), { recursive: true, force: true });
  });

  it('a forgotten PgBouncer: exit 1, named with its port and config, and killed', async () => {
    const r = await child('forget-pgbouncer');
    assert.equal(r.code, 1, r.stderr);
    const { pid, port, dir } = r.printed;
    assert.match(
      r.stderr,
      new RegExp(
        `killed at exit: PgBouncer on 127\\.0\\.0\\.1:${port} in front of 127\\.0\\.0\\.1:1, config ${join(dir!, 'pgbouncer.ini')}`,
      ),
    );
    assert.ok(await gone(pid!), 'pgbouncer is gone');
    rmSync(dir!, { recursive: true, force: true });
  });

  it('servers started together and stopped: exit 0, nothing reported, nothing left', async () => {
    const r = await child('stop-both');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /Left running/);
    assert.equal(r.printed.pids!.length, 2);
    for (const pid of r.printed.pids!) assert.ok(await gone(pid), `${pid} is gone`);
  });

  it('startAll: when one start fails, the sibling that did start is stopped before the error is rethrown', async () => {
    const r = await child('sibling-fails');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.printed.error ?? '', /\/nonexistent\/initdb does not exist/);
    assert.doesNotMatch(r.stderr, /Left running/);
  });

  it('a released PgBouncer (kept on purpose, as rehearse --keep does) is neither killed nor reported', async () => {
    const r = await child('release-pgbouncer');
    const { pid, dir } = r.printed;
    try {
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /Left running/);
      assert.equal(alive(pid!), true, 'still running after its process exited');
    } finally {
      // Whoever keeps it stops it: here, this test.
      if (pid && alive(pid)) process.kill(pid, 'SIGTERM');
      if (dir && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    }
  });
});
