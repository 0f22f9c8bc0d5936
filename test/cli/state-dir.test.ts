/**
 * A state dir the CLI cannot use is an error naming the path and the fix (exit 2), never "No runs" or
 * "Nothing to resume". Tests run as root, which reads anything: the CLI runs here as the unprivileged
 * `nobody` user (through runuser), so permissions are checked by the kernel, not simulated.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXIT } from '../../migrate/commands/exit-codes.ts';
import { localOutputs } from '../../migrate/local/outputs.ts';
import { type CliResult, cli, describeResult, journalFiles, placeholderServer, ROOT } from './support.ts';

const NOBODY = { uid: 65534, gid: 65534 };

/** The CLI as the `nobody` user. */
function cliAsNobody(args: string[]): Promise<CliResult> {
  const child = spawn('runuser', ['-u', 'nobody', '--', process.execPath, join(ROOT, 'migrate', 'bin.mjs'), ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: undefined, MIGRATE_STATE_DIR: '', HOME: tmpdir() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function chownTree(path: string, owner: { uid: number; gid: number }, dirMode: number) {
  chownSync(path, owner.uid, owner.gid);
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) chownTree(child, owner, dirMode);
    else chownSync(child, owner.uid, owner.gid);
  }
  chmodSync(path, dirMode);
}

/** Why the CLI cannot run as nobody here, if it cannot: not root, or the checkout (and the Node in it) is private. */
function whyNobodyCannotRun(): string | false {
  if (userInfo().uid !== 0) return 'needs root to run the CLI as nobody';
  const reachable = spawnSync('runuser', [
    '-u',
    'nobody',
    '--',
    'test',
    '-x',
    process.execPath,
    '-a',
    '-r',
    join(ROOT, 'migrate', 'bin.mjs'),
  ]);
  return reachable.status === 0
    ? false
    : `nobody cannot reach ${process.execPath} or this checkout (a parent directory is private); clone under a readable path`;
}

describe('a state dir the CLI cannot use', { skip: whyNobodyCannotRun() }, () => {
  let dir: string;
  let outputsFile: string;
  let runbook: string;
  const globalFor = (stateDir: string) => ['--outputs', outputsFile, '--state-dir', stateDir];

  /** A state dir holding one finished run, made by root. */
  async function stateDirWithRun(name: string): Promise<string> {
    const stateDir = join(dir, name);
    const r = await cli([...globalFor(stateDir), '--without', 'postgres', 'run', runbook, '--yes']);
    assert.equal(r.code, EXIT.ok, describeResult(r));
    return stateDir;
  }

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'migrate-cli-state-dir-'));
    chmodSync(dir, 0o755);
    const outputs = localOutputs({ dir, source: placeholderServer('source'), target: placeholderServer('target'), database: 'app' });
    for (const file of ['target.password', 'source.url']) chmodSync(join(dir, file), 0o644);
    outputsFile = join(dir, 'outputs.json');
    writeFileSync(outputsFile, JSON.stringify(outputs, null, 2), { mode: 0o644 });
    runbook = join(dir, 'local.yaml');
    writeFileSync(
      runbook,
      'name: local\nsteps:\n  - id: verify\n    uses: postgres.verify\n  - id: note\n    uses: source.stop\n    with: { command: "true" }\n',
      { mode: 0o644 },
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('side by side', { concurrency: true }, () => {
    it("unreadable (root's, after a run under sudo): runs, resume, status and rollback name the path and the fix", async () => {
      const stateDir = await stateDirWithRun('state-root');
      chmodSync(stateDir, 0o700);
      const results = await Promise.all([
        cliAsNobody([...globalFor(stateDir), 'runs']),
        cliAsNobody([...globalFor(stateDir), 'resume', '--yes']),
        cliAsNobody([...globalFor(stateDir), 'status']),
        cliAsNobody([...globalFor(stateDir), 'rollback', '--runbook', 'local', '--yes']),
      ]);
      for (const r of results) {
        assert.equal(r.code, EXIT.usage, describeResult(r));
        assert.ok(
          r.stderr.includes(`State dir ${stateDir}: permission denied on ${stateDir} (owned by uid 0, mode 0700; you are uid 65534)`),
          describeResult(r),
        );
        assert.match(r.stderr, /Fix: run migrate as the user that owns it .*sudo chown -R/);
        assert.doesNotMatch(r.stdout + r.stderr, /No runs|Nothing to resume|no runs yet|EACCES/);
      }
    });

    it('a file where the state dir should be: every command says so, exit 2', async () => {
      const stateDir = join(dir, 'state-file');
      writeFileSync(stateDir, 'not a directory');
      for (const args of [
        ['runs'],
        ['resume', '--yes'],
        ['run', runbook, '--yes', '--without', 'postgres'],
        ['rollback', '--runbook', 'local', '--yes'],
      ]) {
        const r = await cli([...globalFor(stateDir), ...args]);
        assert.equal(r.code, EXIT.usage, `${args[0]}: ${describeResult(r)}`);
        assert.ok(
          r.stderr.includes(`State dir ${stateDir}: ${stateDir} is a file, not a directory. Fix: pass --state-dir`),
          describeResult(r),
        );
        assert.doesNotMatch(r.stderr, /ENOTDIR|EEXIST|\n\s+at /);
      }
    });

    it('read-only for this user: runs lists the run, a new run is refused before anything is written', async () => {
      const stateDir = await stateDirWithRun('state-read-only');
      chownTree(stateDir, NOBODY, 0o555);
      const before = journalFiles(stateDir);
      const runs = await cliAsNobody([...globalFor(stateDir), 'runs']);
      assert.equal(runs.code, EXIT.ok, describeResult(runs));
      assert.match(runs.stdout, /^local-\S+\s+local\s+finished/);
      const r = await cliAsNobody([...globalFor(stateDir), '--without', 'postgres', 'run', runbook, '--yes']);
      assert.equal(r.code, EXIT.usage, describeResult(r));
      assert.ok(
        r.stderr.includes(
          `State dir ${stateDir}: ${stateDir} is not writable for you (owned by uid 65534, mode 0555; you are uid 65534), and a run writes its lock and journal there.`,
        ),
        describeResult(r),
      );
      assert.deepEqual(journalFiles(stateDir), before);
    });
  });
});
