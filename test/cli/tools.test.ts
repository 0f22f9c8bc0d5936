/**
 * A newcomer's machine: when PostgreSQL's programs or PgBouncer cannot be found, `migrate tools`
 * (npm test's pretest) and `migrate rehearse` install them with apt-get after saying so, or refuse
 * with the exact command. Proven here with PATH and PG_BINDIR hiding the installed ones and
 * MIGRATE_INSTALL=no, so nothing is installed or removed. And where PgBouncer is looked up.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pgbouncerBinary } from '../../migrate/local/pgbouncer.ts';
import { missingPackages } from '../../migrate/local/tools.ts';
import { describeResult, startCli } from './support.ts';

describe('tools a newcomer lacks', () => {
  let dir: string;
  let hidden: NodeJS.ProcessEnv;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'migrate-cli-tools-'));
    mkdirSync(join(dir, 'empty'));
    // No pg_config on PATH, no PG_BINDIR, and PgBouncer pointed at nothing (its /usr/sbin fallback is not on PATH).
    hidden = {
      PATH: join(dir, 'empty'),
      PG_BINDIR: '',
      PGBOUNCER_BIN: join(dir, 'empty', 'pgbouncer'),
      MIGRATE_INSTALL: 'no',
      TMPDIR: dir,
    };
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('migrate tools and migrate rehearse refuse in one line with the exact apt-get command, starting nothing', async () => {
    const [tools, rehearse] = await Promise.all([startCli(['tools'], hidden).done, startCli(['rehearse', '--rows', '10'], hidden).done]);
    for (const r of [tools, rehearse]) {
      assert.equal(r.code, 1, describeResult(r));
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /postgresql and pgbouncer are missing \(.*pg_dump.*\)/);
      assert.match(lines[0]!, /sudo apt-get install -y postgresql pgbouncer/);
    }
    assert.equal(rehearse.stdout, '', 'the rehearsal did not start');
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('migrate-')),
      [],
    );
  });

  it('a PG_BINDIR without the server and client programs counts as missing PostgreSQL', () => {
    assert.deepEqual(
      missingPackages({ ...process.env, PG_BINDIR: join(dir, 'empty') }).filter((p) => p === 'postgresql'),
      ['postgresql'],
    );
  });

  it('PgBouncer: PGBOUNCER_BIN, then PATH, then /usr/sbin; a bad override says how to install it', () => {
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    const fake = join(bin, 'pgbouncer');
    writeFileSync(fake, '#!/bin/sh\n');
    chmodSync(fake, 0o755);
    assert.equal(pgbouncerBinary({ PATH: `${join(dir, 'empty')}:${bin}` }), fake, 'found on PATH');
    assert.equal(pgbouncerBinary({ PATH: join(dir, 'empty'), PGBOUNCER_BIN: fake }), fake, 'the override');
    assert.throws(
      () => pgbouncerBinary({ PATH: bin, PGBOUNCER_BIN: join(dir, 'nope') }),
      /PGBOUNCER_BIN=.*nope.*apt-get install pgbouncer/,
    );
    if (existsSync('/usr/sbin/pgbouncer'))
      assert.equal(pgbouncerBinary({ PATH: join(dir, 'empty') }), '/usr/sbin/pgbouncer', 'Debian puts it outside a user PATH');
  });
});
