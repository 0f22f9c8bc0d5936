/**
 * Usage errors through the real CLI process: one line on stderr naming the thing at fault, exit 2,
 * no stack trace, nothing started or written, no secret echoed. Also what the help shows, and
 * `migrate outputs` for two servers of one's own.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXIT } from '../../migrate/commands/exit-codes.ts';
import { cli, describeResult, ROOT, startCli, type CliResult } from './support.ts';

function oneLineUsageError(r: CliResult, names: RegExp): void {
  assert.equal(r.code, EXIT.usage, describeResult(r));
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0]!, names);
  assert.doesNotMatch(r.stderr, /\n\s+at |Error:/, 'no stack trace');
}

describe('usage errors and help', { concurrency: true }, () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'migrate-cli-usage-'));
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('rehearse --rows 0: one line naming the option, exit 2, nothing started', async () => {
    const r = await startCli(['rehearse', '--rows', '0'], { TMPDIR: dir }).done;
    oneLineUsageError(r, /--rows.*0.*at least 1/);
    assert.equal(r.stdout, '');
  });

  it('rehearse --set with a key no runbook has: exit 2 before any server starts', async () => {
    const scratch = mkdtempSync(join(dir, 'set-'));
    const r = await startCli(['rehearse', '--set', 'catchUpDeadline=5'], { TMPDIR: scratch }).done;
    oneLineUsageError(r, /--set catchUpDeadline: .*catchUpDeadlineSeconds/);
    assert.deepEqual(readdirSync(scratch).filter((n) => n.startsWith('migrate-')), [], 'no temp dir was made');
  });

  it('unknown command, unknown option, missing argument: one line each, exit 2', async () => {
    const [a, b, c] = await Promise.all([cli(['teleport']), cli(['runs', '--nope']), cli(['run'])]);
    oneLineUsageError(a, /unknown command 'teleport'/);
    oneLineUsageError(b, /unknown option '--nope'/);
    oneLineUsageError(c, /missing required argument 'runbook'/);
  });

  it('bad global options and outputs: exit 2, naming the file, option or variable, nothing written', async () => {
    const outputs = join(dir, 'env-ref.json');
    const made = await cli(['outputs', '--source', 'env:MIGRATE_TEST_UNSET_SOURCE', '--target', 'postgres://postgres@127.0.0.1:1/app', '--target-password', 'env:MIGRATE_TEST_UNSET_PW']);
    writeFileSync(outputs, made.stdout);
    const state = join(dir, 'state-bad');
    const [missingFile, without, set, notJson] = await Promise.all([
      cli(['--outputs', join(dir, 'nope.json'), '--state-dir', state, 'plan', 'runbooks/week-prior.yaml']),
      cli(['--outputs', outputs, '--state-dir', state, '--without', 'aws,teleport', 'plan', 'runbooks/week-prior.yaml']),
      cli(['--outputs', outputs, '--state-dir', state, '--set', 'copyJobs', 'plan', 'runbooks/week-prior.yaml']),
      cli(['--outputs', join(ROOT, 'package.json'), '--state-dir', state, 'plan', 'runbooks/week-prior.yaml']),
    ]);
    oneLineUsageError(missingFile, /nope\.json.*ENOENT/);
    oneLineUsageError(without, /--without teleport: unknown capability/);
    oneLineUsageError(set, /--set copyJobs: expected key=value/);
    assert.equal(notJson.code, EXIT.usage, describeResult(notJson));
    assert.ok(notJson.stderr.includes('package.json'), notJson.stderr);
    assert.ok(!existsSync(state), 'no state dir, journal or lock was written');
  });

  it('a subcommand --help lists the global options', async () => {
    const r = await cli(['run', '--help']);
    assert.equal(r.code, EXIT.ok, describeResult(r));
    for (const option of ['--outputs', '--stack', '--state-dir', '--set', '--without', '--json']) assert.ok(r.stdout.includes(option), `run --help lists ${option}`);
  });

  describe('migrate outputs', () => {
    it('refuses a password inside --target or a literal --source URL without echoing it', async () => {
      const [a, b] = await Promise.all([
        cli(['outputs', '--source', 'env:SOURCE_URL', '--target', 'postgres://postgres:Sup3rSecretPw@db:5432/app', '--target-password', 'env:TP']),
        cli(['outputs', '--source', 'postgres://app:Sup3rSecretPw@old:5432/app', '--target', 'postgres://postgres@db:5432/app', '--target-password', 'env:TP']),
      ]);
      oneLineUsageError(a, /--target: the URL holds a password.*--target-password env:NAME/);
      oneLineUsageError(b, /--source: expected a reference \(env:NAME, file:\/path or ssm:\/name\)/);
      for (const r of [a, b]) assert.doesNotMatch(r.stdout + r.stderr, /Sup3rSecretPw/);
    });

    it('writes a valid outputs file with references only, which plan reads; --set pgBinDir is accepted', async () => {
      const r = await cli(['outputs', '--source', 'env:MY_SOURCE_URL', '--target', 'postgres://postgres@db.example.com:5433/app?sslmode=require', '--target-password', 'file:/etc/target.pw', '--name', 'mine']);
      assert.equal(r.code, EXIT.ok, describeResult(r));
      const outputs = JSON.parse(r.stdout);
      assert.equal(outputs.source.urlRef, 'env:MY_SOURCE_URL');
      assert.deepEqual([outputs.database.endpoint, outputs.database.port, outputs.database.name, outputs.database.sslMode, outputs.database.masterPasswordRef], ['db.example.com', 5433, 'app', 'require', 'file:/etc/target.pw']);
      const file = join(dir, 'mine.json');
      writeFileSync(file, r.stdout);
      const plan = await cli(['--outputs', file, '--state-dir', join(dir, 'state'), '--set', `pgBinDir=${dir}`, 'plan', 'runbooks/week-prior.yaml']);
      assert.equal(plan.code, EXIT.ok, describeResult(plan));
      assert.match(plan.stdout, /preflight/);
      assert.equal(readFileSync(file, 'utf8'), r.stdout);
    });
  });
});
