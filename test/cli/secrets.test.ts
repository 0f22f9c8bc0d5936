/**
 * A planted secret never appears in anything the CLI writes: the servers' superuser password and
 * the app roles' password are distinctive strings with characters that change under percent-encoding
 * ('@', '/', '+'), and every command — human and --json, successful and failing — is scanned for
 * them, along with every journal, the lock file and the secret-free copies of the outputs.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXIT } from '../../migrate/commands/exit-codes.ts';
import { freePort } from '../../migrate/local/postgres-server.ts';
import { type CliResult, cli, describeResult, STACK, type Stack, startCli, startStack, waitUntil } from './support.ts';

const SERVER_PASSWORD = 'Pl4nted@Srv/Pw+9x';
const APP_PASSWORD = 'Pl4nted@App/Pw+7y';
const FORBIDDEN = [SERVER_PASSWORD, APP_PASSWORD].flatMap((s) => [s, encodeURIComponent(s)]);

/** Files under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

function assertClean(label: string, text: string): void {
  for (const secret of FORBIDDEN)
    assert.ok(!text.includes(secret), `${label} contains the planted secret ${JSON.stringify(secret)}:\n${text.slice(0, 3000)}`);
}

describe('a planted secret never appears', () => {
  let stack: Stack;
  /** Everything the CLI printed or wrote, by where it came from. */
  const seen: [string, string][] = [];
  const record = (label: string, r: CliResult) => seen.push([`${label} stdout`, r.stdout], [`${label} stderr`, r.stderr]);

  before(async () => {
    stack = await startStack({ customers: 1000, serverPassword: SERVER_PASSWORD, appPassword: APP_PASSWORD });
  });
  after(async () => {
    await stack?.stop();
  });

  it('in the output of plan, dry runs, preflight, run, status, runs, verify, failing runs, or any journal or lock file', async () => {
    const global = (stateDir = stack.stateDir, outputsFile = stack.outputsFile) => ['--outputs', outputsFile, '--state-dir', stateDir];
    const D_DAY_SETS = ['--set', 'appUser=app_writer'];
    /** Wrong exit codes are reported after the scan, so a crashing command cannot hide a leak elsewhere. */
    const wrongExits: string[] = [];
    /** Runs commands side by side (they must not compete for the lock) and records everything they print. */
    const runAll = async (commands: [label: string, args: string[], exit: number][]) => {
      const results = await Promise.all(commands.map(([, args]) => cli(args)));
      commands.forEach(([label, , exit], i) => {
        record(label, results[i]!);
        if (results[i]!.code !== exit) wrongExits.push(`${label}: expected exit ${exit}, got ${describeResult(results[i]!)}`);
      });
      return results;
    };

    const [, planDDay, , , , preflightJson] = await runAll([
      ['plan week-prior', [...global(), 'plan', 'runbooks/week-prior.yaml'], EXIT.ok],
      ['plan d-day --json', [...global(), ...D_DAY_SETS, '--json', 'plan', 'runbooks/d-day.yaml'], EXIT.ok],
      ['dry run week-prior', [...global(), 'run', 'runbooks/week-prior.yaml', '--dry-run'], EXIT.ok],
      ['dry run week-prior --json', [...global(), '--json', 'run', 'runbooks/week-prior.yaml', '--dry-run'], EXIT.ok],
      ['preflight', [...global(), 'preflight', '-p', 'replicaIdentityFull=true'], EXIT.ok],
      // Without replicaIdentityFull the key-less analytics.events blocks the cutover.
      ['preflight --json', [...global(), '--json', 'preflight'], EXIT.blocked],
    ]);
    // The app password goes into Parameter Store inside a URL: the plan shows where, never what.
    assert.match(planDDay!.stdout, /postgresql:\/\/app_writer:\*\*\*@/);
    assert.match(preflightJson!.stdout, /analytics\.events/);

    // The subscription's connection string carries the source password into the target's catalog.
    const run = startCli([...global(), '--json', 'run', 'runbooks/week-prior.yaml', '--yes']);
    const lockFile = join(stack.stateDir, STACK, 'lock');
    const readLock = () => (existsSync(lockFile) ? readFileSync(lockFile, 'utf8') || undefined : undefined);
    seen.push(['lock file', await waitUntil('the lock file', readLock, { process: run })]);
    const ran = await run.done;
    record('run week-prior', ran);
    assert.equal(ran.code, EXIT.ok, describeResult(ran));

    const [, statusJson] = await runAll([
      ['status', [...global(), 'status'], EXIT.ok],
      ['status --json', [...global(), '--json', 'status'], EXIT.ok],
      ['runs', [...global(), 'runs'], EXIT.ok],
      ['runs --json', [...global(), '--json', 'runs'], EXIT.ok],
      ['verify', [...global(), 'verify'], EXIT.ok],
    ]);
    assert.match(statusJson!.stdout, /migrate_sub/, 'status shows the subscription');
    await runAll([['verify --json', [...global(), '--json', 'verify'], EXIT.ok]]);

    // Failing runs: the servers' errors travel through the same sinks.
    const outputs = JSON.parse(readFileSync(stack.outputsFile, 'utf8'));
    const deadPort = await freePort();
    const noTarget = join(stack.dir, 'outputs-no-target.json');
    writeFileSync(noTarget, JSON.stringify({ ...outputs, database: { ...outputs.database, port: deadPort } }));
    const noSourceUrl = join(stack.dir, 'source-wrong-port.url');
    writeFileSync(noSourceUrl, stack.source.url('app').replace(`:${stack.source.port}/`, `:${deadPort}/`), { mode: 0o600 });
    const noSource = join(stack.dir, 'outputs-no-source.json');
    writeFileSync(noSource, JSON.stringify({ ...outputs, source: { urlRef: `file:${noSourceUrl}` } }));
    await runAll([
      ['verify, target down', [...global(join(stack.dir, 'state-no-target'), noTarget), 'verify'], EXIT.failed],
      // Preflight finds the source unreachable: the run stops blocked, before any change.
      [
        'run week-prior --json, source down',
        [...global(join(stack.dir, 'state-no-source'), noSource), '--json', 'run', 'runbooks/week-prior.yaml', '--yes'],
        EXIT.blocked,
      ],
    ]);

    // Every journal of every state dir; the outputs and copies written by this test hold only references.
    const written = filesUnder(stack.dir).filter((f) => !/\.(url|password)$/.test(f));
    // A verify whose target is down never starts (its lock connection fails first) and journals nothing.
    assert.ok(written.filter((f) => f.endsWith('.jsonl')).length >= 4, `journals: ${written.join(', ')}`);
    for (const file of written) seen.push([file, readFileSync(file, 'utf8')]);

    for (const [label, text] of seen) assertClean(label, text);
    assert.deepEqual(wrongExits, []);
  });
});
