/**
 * A rehearsal that fails, or is interrupted, still prints its report with the failure, stops its
 * servers and PgBouncer, and removes its temp dir with the secret files in it; with --keep it says
 * where everything is and how to stop it. Every rehearsal's temp files go under this test's TMPDIR,
 * so "nothing left" is checked there and in the process table.
 */
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXIT } from '../../migrate/commands/exit-codes.ts';
import { describeResult, startCli, waitUntil } from './support.ts';

/** Processes whose command line mentions `path` (servers and PgBouncer started under it). */
function processesUnder(path: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(path)) found.push(`${pid}: ${cmdline}`);
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

describe('a failed or interrupted rehearsal cleans up after itself', () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'migrate-cli-rehearse-fail-'));
    // The servers run as the postgres OS user when we are root: it must reach its dirs under ours.
    chmodSync(dir, 0o711);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  const scratchFor = (name: string) => {
    const scratch = join(dir, name);
    mkdirSync(scratch);
    chmodSync(scratch, 0o711);
    return scratch;
  };

  it('a runbook failing mid-rehearsal: report with the failure, exit 1, no server, no file left', async () => {
    const scratch = scratchFor('mid-run');
    const report = join(scratch, 'report.md');
    const r = await startCli(
      ['rehearse', '--rows', '50', '--writers', '1', '--report', report, '--set', 'stopSourceCommand=exit 3', '--set', 'order=stop-first'],
      {
        TMPDIR: scratch,
      },
    ).done;
    assert.equal(r.code, EXIT.failed, describeResult(r));
    assert.match(r.stdout, /Rehearsal FAILED: d-day failed at step stop-source/);
    assert.match(r.stdout, /week-prior\s+replication\s+applied/, 'the timeline shows what ran before the failure');
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.match(readFileSync(report, 'utf8'), /\*\*FAILED\*\*/);
    assert.deepEqual(
      readdirSync(scratch).filter((n) => n.startsWith('migrate-')),
      [],
      'the temp dir (data dirs, outputs.json, passwords) is gone',
    );
    assert.deepEqual(processesUnder(scratch), [], 'no server or PgBouncer left running');
  });

  it('SIGTERM during the rehearsal: report, exit 130, nothing left', async () => {
    const scratch = scratchFor('signal');
    const cli = startCli(['rehearse', '--rows', '50', '--writers', '1', '--report', join(scratch, 'report.md')], { TMPDIR: scratch });
    await waitUntil('a runbook to start', () => (cli.stdout().includes('Running runbooks/week-prior.yaml') ? true : undefined), {
      process: cli,
    });
    cli.child.kill('SIGTERM');
    const r = await cli.done;
    assert.equal(r.code, EXIT.interrupted, describeResult(r));
    assert.match(r.stdout, /Rehearsal FAILED: [^\n]*interrupted/);
    assert.deepEqual(
      readdirSync(scratch).filter((n) => n.startsWith('migrate-')),
      [],
    );
    assert.deepEqual(processesUnder(scratch), []);
  });

  // A runbook option that fails validation after the servers started: the path where rehearse() throws.
  it('--keep on failure: says where the servers, outputs and PgBouncer are and how to stop them; the commands work', async () => {
    const scratch = scratchFor('keep');
    const r = await startCli(
      ['rehearse', '--rows', '20', '--writers', '1', '--keep', '--report', join(scratch, 'report.md'), '--set', 'copyJobs=0'],
      { TMPDIR: scratch },
    ).done;
    assert.equal(r.code, EXIT.failed, describeResult(r));
    const kept = readdirSync(scratch).find((n) => n.startsWith('migrate-rehearsal-'));
    assert.ok(kept, 'the temp dir is kept');
    assert.ok(existsSync(join(scratch, kept, 'outputs.json')));
    const stops = [...r.stdout.matchAll(/; stop: (.+)$/gm)].map((m) => m[1]!);
    assert.equal(stops.length, 3, `a stop command for the source, the target and PgBouncer:\n${r.stdout}`);
    assert.ok(processesUnder(scratch).length >= 3, 'the servers and PgBouncer still run');
    for (const command of stops) execSync(command, { stdio: 'ignore' });
    await waitUntil('the kept processes to stop', () => (processesUnder(scratch).length === 0 ? true : undefined), { timeoutMs: 30_000 });
    assert.match(r.stdout, new RegExp(`rm -rf ${join(scratch, kept)}`));
  });
});
