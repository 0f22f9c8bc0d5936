/**
 * `migrate rehearse` end to end through the CLI: the whole cutover on local servers passes, loses
 * nothing, and writes its report; and none of the passwords the rehearsal makes for itself reaches
 * its output, its report files or its journals. The rehearsal's temp dir is put under this test's
 * own TMPDIR, so the test can read those passwords (and the journals) while the rehearsal runs.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DOMParser } from '@xmldom/xmldom';
import { EXIT } from '../../migrate/commands/exit-codes.ts';
import type { RehearsalReport } from '../../migrate/rehearse/report.ts';
import { type CliResult, describeResult, startCli, waitUntil } from './support.ts';

/** Every password in a URL, a password file, or a PgBouncer userlist ("user" "password" lines). */
function passwordsIn(file: string): string[] {
  const text = readFileSync(file, 'utf8').trim();
  if (file.endsWith('.url')) return [text, decodeURIComponent(new URL(text).password)];
  if (file.endsWith('userlist.txt')) return [...text.matchAll(/^"[^"]*" "([^"]*)"$/gm)].map((m) => m[1]!);
  return [text];
}

function find(dir: string, prefix: string): string | undefined {
  const name = readdirSync(dir).find((n) => n.startsWith(prefix));
  return name === undefined ? undefined : join(dir, name);
}

for (const mode of ['default', 'rollback-after-switch'] as const)
  describe(`migrate rehearse (${mode})`, () => {
    let dir: string;
    let result: CliResult;
    const secrets = new Set<string>();
    /** The newest content seen of each journal, read while the rehearsal ran (it deletes them at the end). */
    const journals = new Map<string, string>();

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'migrate-cli-rehearse-'));
      const scratch = join(dir, 'tmp');
      // The servers run as the postgres OS user when we are root: it must reach its dirs under ours.
      chmodSync(dir, 0o711);
      mkdirSync(scratch);
      chmodSync(scratch, 0o711);
      const args = ['rehearse', '--rows', mode === 'default' ? '2000' : '1000', '--writers', '2', '--json', '--report', join(dir, 'r.md')];
      if (mode === 'rollback-after-switch') args.push('--rollback-after-switch');
      const run = startCli(args, { TMPDIR: scratch });
      let exited = false;
      void run.done.then(() => (exited = true));
      // Its secret files exist once it has written outputs.json, before the first runbook starts.
      const rehearsal = await waitUntil(
        'the rehearsal outputs',
        () => {
          const d = existsSync(scratch) ? find(scratch, 'migrate-rehearsal-') : undefined;
          return d && existsSync(join(d, 'outputs.json')) ? d : undefined;
        },
        { process: run },
      );
      const pgbouncer = join(rehearsal, 'pgbouncer');
      for (const file of [
        join(rehearsal, 'target.password'),
        join(rehearsal, 'source.url'),
        join(rehearsal, 'pgbouncer-admin.url'),
        join(pgbouncer, 'userlist.txt'),
      ]) {
        for (const s of passwordsIn(file)) secrets.add(s).add(encodeURIComponent(s));
      }
      const runs = join(rehearsal, 'state', 'rehearsal', 'runs');
      while (!exited) {
        try {
          for (const name of existsSync(runs) ? readdirSync(runs) : []) journals.set(name, readFileSync(join(runs, name), 'utf8'));
        } catch {
          /* removed between listing and reading: the rehearsal is cleaning up */
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      result = await run.done;
    });

    after(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    it('passes: nothing lost, no differences, sequences not behind, every webhook replayed; Markdown report with the timeline', () => {
      assert.equal(result.code, EXIT.ok, describeResult(result));
      const lines = result.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; report?: RehearsalReport });
      const report = lines.find((l) => l.type === 'rehearsal-report')?.report;
      assert.ok(report, 'the last JSON line is the report');
      assert.equal(report.outcome, 'passed', report.failure);
      assert.equal(report.writes.lost, 0);
      // foundOnTarget counts them on the database that ends up primary: the source after a rollback.
      assert.ok(report.writes.committed > 0 && report.writes.foundOnTarget === report.writes.committed);
      if (mode === 'rollback-after-switch') {
        assert.ok(report.rollback, 'the rollback ran');
        assert.equal(report.rollback.lost, 0);
        assert.equal(report.rollback.onSource, report.writes.committed, 'every write either side took is on the source');
        assert.equal(report.rollback.userWritesLost, 0);
        assert.ok(report.timeline.some((t) => t.runbook === 'rollback' && t.step === 'undo-d-day' && t.outcome === 'applied'));
      } else assert.equal(report.rollback, null);
      // The proof ran after writes resumed, pinned to the switch point, and its snapshots were released.
      assert.equal(report.verification?.step, 'prove');
      assert.equal(report.verification?.afterSwitch, true);
      assert.ok((report.verification?.snapshotHoldMs ?? 0) > 0);
      assert.ok(report.forecast, 'the go/no-go forecast is set beside the run');
      const svg = new DOMParser().parseFromString(readFileSync(report.timelineFile!, 'utf8'), 'image/svg+xml');
      assert.equal(svg.documentElement?.nodeName, 'svg');
      assert.ok(svg.getElementsByTagName('g').length > 10, 'one element per step at least');
      assert.equal(report.verification?.differences, 0);
      assert.ok((report.verification?.rows ?? 0) > 0);
      assert.equal(report.sequencesBehind, 0);
      assert.equal(report.privilegeDifferences, 0, 'owners and privileges compared, none differ');
      assert.deepEqual(
        report.goNoGo.map((g) => g.step),
        ['go-no-go-schema', 'go-no-go-replication'],
      );
      for (const g of report.goNoGo) assert.ok(['applied', 'already-done'].includes(g.outcome), `${g.step}: ${g.outcome} ${g.detail}`);
      assert.ok(report.webhooks, 'the rehearsal streams webhooks');
      assert.ok(report.webhooks.received > 0, 'webhooks arrived during D-day');
      assert.equal(report.webhooks.replayed, report.webhooks.received);
      // The user resolving the app's name went from the legacy app to the new one without a failed request.
      assert.ok(report.users, 'a DNS-following user wrote through the whole D-day');
      assert.ok((report.users.servedBy.legacy ?? 0) > 0 && (report.users.servedBy.new ?? 0) > 0, JSON.stringify(report.users.servedBy));
      assert.equal(report.users.failed, 0);
      assert.equal(report.users.lost, 0);
      assert.ok(report.users.longestGapMs > 0);

      const markdown = readFileSync(join(dir, 'r.md'), 'utf8');
      assert.match(markdown, /go\/no-go `go-no-go-schema` \| go: \d+ objects equal/);
      for (const step of [
        'preflight',
        'replication',
        'freeze',
        'catch-up',
        'pin',
        'reverse-replication',
        'prove',
        'split-brain',
        'sequences',
        'stop-replication',
      ]) {
        assert.ok(markdown.includes(step), `the Markdown timeline lists ${step}`);
      }
      const twin = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')) as RehearsalReport;
      assert.equal(twin.outcome, 'passed');
      assert.equal(twin.timeline.length, report.timeline.length);
    });

    it("never shows the rehearsal's own passwords in its output, reports or journals", () => {
      assert.ok(secrets.size >= 4, 'the passwords were read while the rehearsal ran');
      assert.ok(journals.size >= 3, `journals seen: ${[...journals.keys()].join(', ')}`);
      const sinks: [string, string][] = [
        ['stdout', result.stdout],
        ['stderr', result.stderr],
        ['r.md', readFileSync(join(dir, 'r.md'), 'utf8')],
        ['r.json', readFileSync(join(dir, 'r.json'), 'utf8')],
        ...[...journals].map(([name, text]) => [`journal ${name}`, text] as [string, string]),
      ];
      for (const [label, text] of sinks) for (const s of secrets) assert.ok(!text.includes(s), `${label} contains a rehearsal password`);
    });
  });
