/**
 * What the rehearsal and the tests need on this machine besides Node: PostgreSQL's server and client
 * programs and PgBouncer. On Debian/Ubuntu a missing one is installed with apt-get (as root, or
 * through sudo when it needs no password), after one line saying what and why; otherwise the CLI
 * stops with the exact command to run. MIGRATE_INSTALL=no never installs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pgbouncerBinary } from './pgbouncer.ts';

const SERVER_PROGRAMS = ['initdb', 'pg_ctl', 'postgres', 'pg_dump', 'pg_restore', 'psql'];

/** Debian packages for what is missing: `postgresql` brings the server, the client tools and the postgres OS user. */
export function missingPackages(env: NodeJS.ProcessEnv = process.env): string[] {
  const missing: string[] = [];
  let bindir = env.PG_BINDIR;
  if (!bindir) {
    try {
      bindir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      bindir = undefined;
    }
  }
  if (!bindir || SERVER_PROGRAMS.some((p) => !existsSync(join(bindir!, p)))) missing.push('postgresql');
  try {
    pgbouncerBinary(env);
  } catch {
    missing.push('pgbouncer');
  }
  return missing;
}

const succeeds = (command: string, args: string[]) => spawnSync(command, args, { stdio: 'ignore' }).status === 0;

/**
 * Installs what is missing, or throws with the command to run. `say` gets the one line announcing
 * an install.
 */
export function ensureTools(why: string, say: (line: string) => void, env: NodeJS.ProcessEnv = process.env): void {
  const packages = missingPackages(env);
  if (packages.length === 0) return;
  const command = `sudo apt-get install -y ${packages.join(' ')}`;
  const refuse = (reason: string) => {
    throw new Error(
      `${packages.join(' and ')} ${packages.length > 1 ? 'are' : 'is'} missing (${why}), and ${reason}. Install ${packages.length > 1 ? 'them' : 'it'}: ${command}  (elsewhere: your system's PostgreSQL server + client and PgBouncer packages; PG_BINDIR and PGBOUNCER_BIN point at other installs)`,
    );
  };
  if (env.MIGRATE_INSTALL === 'no') refuse('MIGRATE_INSTALL=no forbids installing them');
  if (!succeeds('apt-get', ['--version'])) refuse('this machine has no apt-get');
  const root = process.getuid?.() === 0;
  if (!root && !succeeds('sudo', ['-n', 'true'])) refuse('installing needs root (sudo asks for a password)');
  say(`Installing ${packages.join(' ')} with apt-get (${why})`);
  const prefix = root ? [] : ['sudo', '-n'];
  for (const args of [
    ['apt-get', 'update', '-qq'],
    ['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...packages],
  ]) {
    const [cmd, ...rest] = [...prefix, ...args];
    const result = spawnSync(cmd!, rest, {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (result.status !== 0)
      throw new Error(`${[...prefix, ...args].join(' ')} failed (exit ${result.status}); install by hand: ${command}`);
  }
  const still = missingPackages(env);
  if (still.length > 0)
    throw new Error(`${still.join(' and ')} still not found after installing; set PG_BINDIR (PostgreSQL's bin directory) or PGBOUNCER_BIN`);
}
