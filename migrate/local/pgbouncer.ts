/**
 * A throwaway PgBouncer (the Debian binary) for the tests and the rehearsal: an ini we write in a
 * temp dir, one [databases] entry for the app database, password auth from a userlist, an admin
 * user for the console, a free loopback port. PgBouncer refuses to run as root, so as root it runs
 * as the `postgres` OS user, like the local PostgreSQL servers.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  chownSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { type Backend, rewriteBackend } from '../pgbouncer/ini.ts';
import { freePort } from './postgres-server.ts';
import { alive, track, waitGoneSync } from './running.ts';

const execFileAsync = promisify(execFile);

export interface LocalPgbouncerOptions {
  /** The [databases] entry name clients connect to (also the server database unless `backend.database`). */
  database: string;
  backend: Backend;
  /** Client login checked against the userlist; PgBouncer logs into the server with the same. */
  user: string;
  password: string;
  authType?: 'scram-sha-256' | 'md5';
  poolMode?: 'transaction' | 'session';
  /** Seconds a client may wait for a server (during a pause); 0 = forever. */
  queryWaitTimeout?: number;
  /** The pgbouncer executable; `pgbouncerBinary()` when absent. */
  binary?: string;
  /** Where the ini, userlist, log and pid file go (created if missing); a fresh temp dir when absent. */
  dir?: string;
  /** The console password; random when absent. Pods of one deployment share theirs. */
  adminPassword?: string;
}

export interface LocalPgbouncer {
  host: string;
  port: number;
  /** The ini file: pass it to pgbouncer.reload as `configFile` to switch the backend. */
  configFile: string;
  dir: string;
  adminUser: string;
  /** `postgres://admin:…@127.0.0.1:port/pgbouncer`: the console, for outputs.pgbouncer.adminUrlRef. */
  adminUrl: string;
  /** A client URL for the app database through PgBouncer. */
  url(): string;
  /** Points the [databases] entry at another server and reloads (what the rehearsal's restart hook does). */
  switchBackend(backend: Backend): Promise<void>;
  /** The running process's log, for diagnosing a failed test. */
  log(): string;
  stop(): Promise<void>;
  /** Leaves it running past this process on purpose (rehearse --keep): no longer killed and reported at exit. */
  release(): void;
}

const OS_USER = 'postgres';
const asRoot = () => userInfo().uid === 0;

function ownByServerUser(path: string): void {
  if (!asRoot()) return;
  const uid = Number(execFileSync('id', ['-u', OS_USER], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', OS_USER], { encoding: 'utf8' }).trim());
  chownSync(path, uid, gid);
}

const quoted = (s: string) => `"${s.replace(/"/g, '""')}"`;

function iniText(
  o: Required<Omit<LocalPgbouncerOptions, 'binary' | 'dir' | 'adminPassword'>>,
  dir: string,
  port: number,
  adminUser: string,
): string {
  const backend = o.backend;
  return [
    '[databases]',
    `${o.database} = host=${backend.host} port=${backend.port} dbname=${backend.database ?? o.database}`,
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    `unix_socket_dir = ${dir}`,
    `auth_type = ${o.authType}`,
    `auth_file = ${join(dir, 'userlist.txt')}`,
    `admin_users = ${adminUser}`,
    `pool_mode = ${o.poolMode}`,
    `logfile = ${join(dir, 'pgbouncer.log')}`,
    `pidfile = ${join(dir, 'pgbouncer.pid')}`,
    'max_client_conn = 500',
    'default_pool_size = 20',
    `query_wait_timeout = ${o.queryWaitTimeout}`,
    // node-postgres sends no other startup parameters; psql/JDBC clients may send these.
    'ignore_startup_parameters = extra_float_digits,options',
    '',
  ].join('\n');
}

async function waitForListen(port: number, pidfile: string, logfile: string): Promise<void> {
  const until = Date.now() + 15_000;
  for (;;) {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'probe', database: 'probe', connectionTimeoutMillis: 1000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.end();
      return;
    } catch (error) {
      // Else the refused login's socket stays open until PgBouncer's client_login_timeout (60 s).
      await client.end().catch(() => {});
      // Any answer from PgBouncer (even "no such user") means it is listening.
      if ((error as { code?: string }).code !== 'ECONNREFUSED') return;
    }
    if (Date.now() > until) {
      const log = existsSync(logfile) ? readFileSync(logfile, 'utf8').slice(-2000) : '(no log)';
      throw new Error(
        `PgBouncer did not listen on 127.0.0.1:${port} within 15 s (pidfile ${existsSync(pidfile) ? 'present' : 'absent'}). Log:\n${log}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const PGBOUNCER_INSTALL = 'install it (Debian/Ubuntu: sudo apt-get install pgbouncer) or set PGBOUNCER_BIN to its path';

/**
 * The pgbouncer executable: PGBOUNCER_BIN, else `pgbouncer` on PATH, else /usr/sbin/pgbouncer
 * (Debian installs it there, and /usr/sbin is not on every user's PATH).
 */
export function pgbouncerBinary(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.PGBOUNCER_BIN;
  if (explicit) {
    if (!isExecutable(explicit)) throw new Error(`PGBOUNCER_BIN=${explicit} is not an executable file: ${PGBOUNCER_INSTALL}`);
    return explicit;
  }
  const candidates = [
    ...(env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((d) => join(d, 'pgbouncer')),
    '/usr/sbin/pgbouncer',
  ];
  const found = candidates.find(isExecutable);
  if (!found) throw new Error(`PgBouncer not found (looked on PATH and in /usr/sbin): ${PGBOUNCER_INSTALL}`);
  return found;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export async function startPgbouncer(options: LocalPgbouncerOptions): Promise<LocalPgbouncer> {
  const binary = options.binary ?? pgbouncerBinary();
  if (!isExecutable(binary)) throw new Error(`${binary} is not an executable file: ${PGBOUNCER_INSTALL}`);
  const o = { authType: 'scram-sha-256' as const, poolMode: 'transaction' as const, queryWaitTimeout: 0, ...options };
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'migrate-pgbouncer-'));
  mkdirSync(dir, { recursive: true });
  ownByServerUser(dir);
  const port = await freePort();
  const adminUser = 'pgb_admin';
  const adminPassword = options.adminPassword ?? randomBytes(12).toString('base64url');
  const userlist = join(dir, 'userlist.txt');
  writeFileSync(userlist, `${quoted(o.user)} ${quoted(o.password)}\n${quoted(adminUser)} ${quoted(adminPassword)}\n`, { mode: 0o600 });
  ownByServerUser(userlist);
  const configFile = join(dir, 'pgbouncer.ini');
  writeFileSync(configFile, iniText(o, dir, port, adminUser), { mode: 0o600 });
  ownByServerUser(configFile);
  const pidfile = join(dir, 'pgbouncer.pid');
  const logfile = join(dir, 'pgbouncer.log');
  const [cmd, args] = asRoot() ? ['runuser', ['-u', OS_USER, '--', binary, '-d', configFile]] : [binary, ['-d', configFile]];
  const running = {
    description: `PgBouncer on 127.0.0.1:${port} in front of ${o.backend.host}:${o.backend.port}, config ${configFile}`,
    kill: () => killPgbouncer(pidfile),
  };
  const untrack = track(running);
  try {
    await execFileAsync(cmd, args);
  } catch (error) {
    running.kill();
    untrack();
    const e = error as { stderr?: string; message: string };
    throw new Error(`pgbouncer failed to start: ${(e.stderr || e.message).trim()}`);
  }
  try {
    await waitForListen(port, pidfile, logfile);
  } catch (error) {
    running.kill();
    untrack();
    throw error;
  }
  const adminUrl = `postgres://${adminUser}:${encodeURIComponent(adminPassword)}@127.0.0.1:${port}/pgbouncer`;

  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
    client.on('error', () => {});
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };

  return {
    host: '127.0.0.1',
    port,
    configFile,
    dir,
    adminUser,
    adminUrl,
    url: () =>
      `postgres://${encodeURIComponent(o.user)}:${encodeURIComponent(o.password)}@127.0.0.1:${port}/${encodeURIComponent(o.database)}`,
    async switchBackend(backend) {
      writeFileSync(configFile, rewriteBackend(readFileSync(configFile, 'utf8'), o.database, backend));
      await admin('RELOAD');
    },
    log: () => (existsSync(logfile) ? readFileSync(logfile, 'utf8') : ''),
    async stop() {
      const pid = existsSync(pidfile) ? Number(readFileSync(pidfile, 'utf8').trim()) : undefined;
      if (pid) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* already gone */
        }
        const until = Date.now() + 10_000;
        while (Date.now() < until) {
          try {
            process.kill(pid, 0);
          } catch {
            break;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      untrack();
      rmSync(dir, { recursive: true, force: true });
    },
    release: untrack,
  };
}

/** SIGKILL (PgBouncer has no children to leave behind); false when it was not running. */
function killPgbouncer(pidfile: string): boolean {
  const pid = existsSync(pidfile) ? Number(readFileSync(pidfile, 'utf8').trim()) : 0;
  if (!pid || !alive(pid)) return false;
  process.kill(pid, 'SIGKILL');
  if (!waitGoneSync(pid, 5000)) throw new Error(`pgbouncer ${pid} survived SIGKILL`);
  return true;
}
