/**
 * Usage errors through the real CLI process: one line on stderr naming the thing at fault, exit 2,
 * no stack trace, nothing started or written, no secret echoed. Also what the help shows, --version,
 * a closed stdout, the one --json shape (JSON lines with a type), colours, and `migrate outputs` for
 * two servers of one's own.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXIT } from '../../migrate/commands/exit-codes.ts';
import { type CliResult, cli, describeResult, ROOT, startCli, state } from './support.ts';

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
    assert.deepEqual(
      readdirSync(scratch).filter((n) => n.startsWith('migrate-')),
      [],
      'no temp dir was made',
    );
  });

  it('unknown command, unknown option, missing argument: one line each, exit 2', async () => {
    const [a, b, c] = await Promise.all([cli(['teleport']), cli(['runs', '--nope']), cli(['run'])]);
    oneLineUsageError(a, /unknown command 'teleport'/);
    oneLineUsageError(b, /unknown option '--nope'/);
    oneLineUsageError(c, /missing required argument 'runbook'/);
  });

  it('bad global options and outputs: exit 2, naming the file, option or variable, nothing written', async () => {
    const outputs = join(dir, 'env-ref.json');
    const made = await cli([
      'outputs',
      '--source',
      'env:MIGRATE_TEST_UNSET_SOURCE',
      '--target',
      'postgres://postgres@127.0.0.1:1/app',
      '--target-password',
      'env:MIGRATE_TEST_UNSET_PW',
    ]);
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

  it('every subcommand: unknown option, missing option argument, too many arguments, missing required option: one line each, exit 2', async () => {
    const cases: [string[], RegExp][] = [
      ...[
        'plan',
        'run',
        'resume',
        'preflight',
        'verify',
        'schema-sync',
        'rollback',
        'status',
        'runs',
        'kinds',
        'iam-policy',
        'rehearse',
        'tools',
        'forecast',
      ].map((command): [string[], RegExp] => [[command, '--nope'], /unknown option '--nope'/]),
      // Commander checks required options before unknown ones.
      [
        ['outputs', '--source', 'env:S', '--target', 'postgres://p@db/app', '--target-password', 'env:T', '--nope'],
        /unknown option '--nope'/,
      ],
      [['plan', 'x.yaml', '--from'], /option '--from <step>' argument missing/],
      [['resume', '--run'], /option '--run <id>' argument missing/],
      [['status', 'extra'], /too many arguments for 'status'/],
      [['outputs', '--source', 'env:S'], /required option '--target <url>' not specified/],
      [['--state-dir'], /option '--state-dir <dir>' argument missing/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    cases.forEach(([, names], i) => {
      oneLineUsageError(results[i]!, names);
    });
    for (const r of results) assert.equal(r.stdout, '');
  });

  it('--version prints the version in package.json; --help exits 0', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const [v, help, sub] = await Promise.all([cli(['--version']), cli(['--help']), cli(['kinds', '--help'])]);
    assert.equal(v.code, EXIT.ok, describeResult(v));
    assert.equal(v.stdout, `${version}\n`);
    for (const r of [help, sub]) {
      assert.equal(r.code, EXIT.ok, describeResult(r));
      assert.match(r.stdout, /^Usage: migrate/);
    }
  });

  it('a subcommand --help lists the global options', async () => {
    const r = await cli(['run', '--help']);
    assert.equal(r.code, EXIT.ok, describeResult(r));
    for (const option of ['--outputs', '--stack', '--state-dir', '--set', '--without', '--json'])
      assert.ok(r.stdout.includes(option), `run --help lists ${option}`);
  });

  describe('migrate outputs', () => {
    it('refuses a password inside --target or a literal --source URL without echoing it', async () => {
      const [a, b] = await Promise.all([
        cli([
          'outputs',
          '--source',
          'env:SOURCE_URL',
          '--target',
          'postgres://postgres:Sup3rSecretPw@db:5432/app',
          '--target-password',
          'env:TP',
        ]),
        cli([
          'outputs',
          '--source',
          'postgres://app:Sup3rSecretPw@old:5432/app',
          '--target',
          'postgres://postgres@db:5432/app',
          '--target-password',
          'env:TP',
        ]),
      ]);
      oneLineUsageError(a, /--target: the URL holds a password.*--target-password env:NAME/);
      oneLineUsageError(b, /--source: expected a reference \(env:NAME, file:\/path or ssm:\/name\)/);
      for (const r of [a, b]) assert.doesNotMatch(r.stdout + r.stderr, /Sup3rSecretPw/);
    });

    it('writes a valid outputs file with references only, which plan reads; --set pgBinDir is accepted', async () => {
      const r = await cli([
        'outputs',
        '--source',
        'env:MY_SOURCE_URL',
        '--target',
        'postgres://postgres@db.example.com:5433/app?sslmode=require',
        '--target-password',
        'file:/etc/target.pw',
        '--name',
        'mine',
      ]);
      assert.equal(r.code, EXIT.ok, describeResult(r));
      const outputs = JSON.parse(r.stdout);
      assert.equal(outputs.source.urlRef, 'env:MY_SOURCE_URL');
      assert.deepEqual(
        [
          outputs.database.endpoint,
          outputs.database.port,
          outputs.database.name,
          outputs.database.sslMode,
          outputs.database.masterPasswordRef,
        ],
        ['db.example.com', 5433, 'app', 'require', 'file:/etc/target.pw'],
      );
      const file = join(dir, 'mine.json');
      writeFileSync(file, r.stdout);
      const plan = await cli([
        '--outputs',
        file,
        '--state-dir',
        join(dir, 'state'),
        '--set',
        `pgBinDir=${dir}`,
        'plan',
        'runbooks/week-prior.yaml',
      ]);
      assert.equal(plan.code, EXIT.ok, describeResult(plan));
      assert.match(plan.stdout, /preflight/);
      assert.equal(readFileSync(file, 'utf8'), r.stdout);
    });
  });
});

describe('output conventions: a closed stdout, JSON lines, colours', { concurrency: true }, () => {
  let dir: string;
  let global: (stateDir: string) => string[];
  // The outputs' references resolve; nothing listens on port 1, so a connection is refused at once.
  const refs = { MIGRATE_TEST_SOURCE_URL: 'postgres://app:pw@127.0.0.1:1/app', MIGRATE_TEST_TARGET_PW: 'pw' };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'migrate-cli-output-'));
    const made = await cli([
      'outputs',
      '--source',
      'env:MIGRATE_TEST_SOURCE_URL',
      '--target',
      'postgres://postgres@127.0.0.1:1/app',
      '--target-password',
      'env:MIGRATE_TEST_TARGET_PW',
    ]);
    assert.equal(made.code, EXIT.ok, describeResult(made));
    writeFileSync(join(dir, 'outputs.json'), made.stdout);
    global = (stateDir) => ['--outputs', join(dir, 'outputs.json'), '--state-dir', join(dir, stateDir)];
    // Shell steps only: no database, so no run lock on one; each step takes a second.
    const step = (id: string, command: string) => `  - id: ${id}\n    uses: source.stop\n    with: { command: "${command}" }\n`;
    writeFileSync(
      join(dir, 'slow.yaml'),
      `name: slow\nsteps:\n${step('first', 'sleep 1')}${step('second', 'sleep 1')}${step('third', `touch ${join(dir, 'third-ran')}`)}`,
    );
    writeFileSync(join(dir, 'quick.yaml'), `name: quick\nsteps:\n${step('only', 'true')}`);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  /** The CLI with its stdout closed, like `migrate … | head -n`: before it writes (lines 0) or after `lines` lines. */
  function stdoutClosedAfter(lines: number, args: string[]): Promise<CliResult & { read: string }> {
    const child = spawn(process.execPath, [join(ROOT, 'migrate', 'bin.mjs'), ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: undefined, MIGRATE_STATE_DIR: '', ...refs },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let read = '';
    let stderr = '';
    if (lines === 0) child.stdout.destroy();
    else
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        read += d;
        if (read.split('\n').length > lines) child.stdout.destroy();
      });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    return new Promise((resolvePromise, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => resolvePromise({ code, signal, stdout: read, stderr, read }));
    });
  }

  it('a closed stdout ends kinds, runs, status and plan quietly with exit 0', async () => {
    const results = await Promise.all([
      stdoutClosedAfter(0, ['kinds']),
      stdoutClosedAfter(0, [...global('state-closed'), 'runs']),
      stdoutClosedAfter(0, [...global('state-closed'), '--json', 'status']),
      stdoutClosedAfter(0, [...global('state-closed'), 'plan', join(dir, 'slow.yaml')]),
    ]);
    for (const r of results) {
      assert.equal(r.code, EXIT.ok, describeResult(r));
      assert.equal(r.stderr, '', 'no EPIPE, no stack trace');
    }
  });

  it('run --json | head -1: the run goes on to the end without its stdout, journaled, exit 0', async () => {
    const stateDir = join(dir, 'state-pipe');
    const r = await stdoutClosedAfter(1, [...global('state-pipe'), '--json', 'run', join(dir, 'slow.yaml'), '--yes']);
    assert.equal(r.code, EXIT.ok, describeResult(r));
    assert.equal(JSON.parse(r.read.split('\n')[0]!).type, 'run-start');
    assert.match(r.stderr, /^migrate: stdout was closed; run goes on without it/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /EPIPE|\n\s+at /);
    const runs = join(stateDir, 'local', 'runs');
    const run = state(join(runs, readdirSync(runs).find((f) => f.endsWith('.jsonl'))!));
    assert.equal(run.status, 'finished');
    assert.deepEqual(
      run.steps.map((s) => s.status),
      ['applied', 'applied', 'applied'],
    );
    assert.ok(existsSync(join(dir, 'third-ran')), 'the last step ran');
  });

  it('every command with --json prints JSON lines, each an object with a type and a time', async () => {
    const g = global('state-json');
    const first = await startCli([...g, '--json', 'run', join(dir, 'quick.yaml'), '--yes'], refs).done;
    assert.equal(first.code, EXIT.ok, describeResult(first));
    const commands: [string[], number, string[]][] = [
      [['run', join(dir, 'quick.yaml'), '--dry-run'], EXIT.ok, ['run-start', 'run-end']],
      [['plan', join(dir, 'quick.yaml')], EXIT.ok, ['run-start', 'step-plan']],
      [['runs'], EXIT.ok, ['run']],
      [['kinds'], EXIT.ok, ['kind']],
      [['status'], EXIT.failed, ['status']],
      [['preflight'], EXIT.blocked, ['run-start', 'finding', 'run-end']],
      [['--without', 'postgres', 'verify'], EXIT.ok, ['run-start', 'step-end', 'run-end']],
      [['rollback', '--runbook', 'quick', '--dry-run'], EXIT.ok, ['run-start', 'run-end']],
      [['iam-policy'], EXIT.ok, ['iam-policy']],
      [['outputs', '--source', 'env:S', '--target', 'postgres://postgres@db:5432/app', '--target-password', 'env:T'], EXIT.ok, ['outputs']],
      // A failure ends the lines with an error event; the message is on stderr too.
      [['rollback', '--runbook', 'nope'], EXIT.usage, ['error']],
    ];
    const results = await Promise.all(commands.map(([args]) => startCli([...g, '--json', ...args], refs).done));
    commands.forEach(([args, code, types], i) => {
      const r = results[i]!;
      assert.equal(r.code, code, `${args.join(' ')}: ${describeResult(r)}`);
      const events = r.stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as { type: unknown; t: unknown });
      for (const e of events) {
        assert.equal(typeof e.type, 'string', `${args.join(' ')}: ${JSON.stringify(e)}`);
        assert.equal(typeof e.t, 'number', `${args.join(' ')}: ${JSON.stringify(e)}`);
      }
      for (const type of types)
        assert.ok(
          events.some((e) => e.type === type),
          `${args.join(' ')} emits ${type}: ${r.stdout}`,
        );
    });
    assert.equal(results.at(-1)!.stdout.trim().split('\n').length, 1);
    assert.match(results.at(-1)!.stderr, /rollback --runbook nope/);
  });

  it('colours: FORCE_COLOR=1 colours piped output, NO_COLOR=1 or FORCE_COLOR=0 or a pipe alone do not', async () => {
    const plan = (env: NodeJS.ProcessEnv) =>
      startCli([...global('state-colour'), 'plan', join(dir, 'quick.yaml')], { ...refs, ...env }).done;
    const [forced, none, off, piped] = await Promise.all([
      plan({ NO_COLOR: '', FORCE_COLOR: '1' }),
      plan({ NO_COLOR: '1', FORCE_COLOR: undefined }),
      plan({ NO_COLOR: '', FORCE_COLOR: '0' }),
      plan({ NO_COLOR: '', FORCE_COLOR: undefined }),
    ]);
    for (const r of [forced, none, off, piped]) assert.equal(r.code, EXIT.ok, describeResult(r));
    // ANSI SGR sequences (ESC [ n m), written with the escape character spelled out.
    const esc = String.fromCharCode(27);
    assert.match(forced.stdout, new RegExp(`${esc}\\[\\d+m`));
    for (const r of [none, off, piped]) assert.doesNotMatch(r.stdout, new RegExp(`${esc}\\[`), r.stdout);
    assert.equal(forced.stdout.replace(new RegExp(`${esc}\\[\\d+m`, 'g'), ''), none.stdout, 'the same text, only coloured');
  });
});
