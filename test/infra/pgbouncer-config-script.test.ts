/**
 * Runs the PgBouncer init container's script under bash with stub `aws` and `curl` commands, and
 * checks the config it renders from a writer URL: backend from the URL, TLS verify-full, and the
 * (percent-decoded) credentials only in the 0600 auth file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PGBOUNCER_CONFIG_SCRIPT } from '../../infra/pgbouncer-config-script.ts';

const dirs: string[] = [];
after(() =>
  dirs.forEach((d) => {
    rmSync(d, { recursive: true, force: true });
  }),
);

function render(writerUrl: string) {
  const dir = mkdtempSync(join(tmpdir(), 'pgbouncer-script-'));
  dirs.push(dir);
  const bin = join(dir, 'bin');
  spawnSync('mkdir', [bin]);
  // The stub answers only the exact call the script must make.
  writeFileSync(
    join(bin, 'aws'),
    `#!/bin/bash\n[ "$*" = "ssm get-parameter --with-decryption --name /cutover/prod/database/writer-url --query Parameter.Value --output text" ] || { echo "unexpected: $*" >&2; exit 9; }\nprintf '%s\\n' '${writerUrl}'\n`,
  );
  writeFileSync(
    join(bin, 'curl'),
    `#!/bin/bash\nwhile [ $# -gt 0 ]; do [ "$1" = -o ] && { echo CA > "$2"; shift; }; last=$1; shift; done\necho "$last" > "$CONFIG_DIR/ca-url"\n`,
  );
  chmodSync(join(bin, 'aws'), 0o755);
  chmodSync(join(bin, 'curl'), 0o755);
  const result = spawnSync('bash', ['-c', PGBOUNCER_CONFIG_SCRIPT], {
    env: {
      PATH: `${bin}:/usr/bin:/bin`,
      WRITER_URL_PARAMETER: '/cutover/prod/database/writer-url',
      AWS_REGION: 'eu-west-1',
      CONFIG_DIR: dir,
    },
    encoding: 'utf8',
  });
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');
  return { result, dir, read };
}

describe('PgBouncer config script', () => {
  it("renders the backend from the writer URL with TLS verify-full against the region's RDS CA bundle", () => {
    const { result, read, dir } = render(
      'postgresql://app_admin:s3cr%40t%22x@cutover-prod-postgres.cmock.eu-west-1.rds.amazonaws.com:5432/app?sslmode=verify-full',
    );
    assert.equal(result.status, 0, result.stderr);
    const ini = read('pgbouncer.ini');
    assert.match(ini, /^app = host=cutover-prod-postgres\.cmock\.eu-west-1\.rds\.amazonaws\.com port=5432 dbname=app$/m);
    assert.match(ini, /^server_tls_sslmode = verify-full$/m);
    assert.match(ini, new RegExp(`^server_tls_ca_file = ${dir}/rds-ca.pem$`, 'm'));
    assert.equal(read('ca-url').trim(), 'https://truststore.pki.rds.amazonaws.com/eu-west-1/eu-west-1-bundle.pem');
    assert.equal(read('userlist.txt'), '"app_admin" "s3cr@t""x"\n', 'decoded password, quote doubled');
    assert.ok(!ini.includes('s3cr'), 'the password stays out of pgbouncer.ini');
    assert.ok(!result.stdout.includes('s3cr') && !result.stderr.includes('s3cr'), 'and out of the logs');
    assert.equal(statSync(join(dir, 'userlist.txt')).mode & 0o077, 0);
  });

  it('defaults the port and fails on a parameter that is not a PostgreSQL URL', () => {
    const { result, read } = render('postgresql://u:p@db.internal/app');
    assert.equal(result.status, 0, result.stderr);
    assert.match(read('pgbouncer.ini'), /^app = host=db\.internal port=5432 dbname=app$/m);
    const bad = render('source-url-not-set');
    assert.notEqual(bad.result.status, 0);
    assert.match(bad.result.stderr, /does not hold a postgresql:\/\/ URL/);
  });
});
