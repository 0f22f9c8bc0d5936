/**
 * Running PostgreSQL's client programs (pg_dump, psql) against a side: the connection goes through
 * libpq environment variables, so the password is never on a command line (visible in `ps`) and a
 * connection string is never printed.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Secret } from '../core/secret.ts';
import { redact } from '../core/secret.ts';
import type { Finding } from '../core/step.ts';
import { connectTimeoutSeconds } from './connections.ts';

const execFileAsync = promisify(execFile);

const INSTALL_CLIENT =
  "install the PostgreSQL client tools (Debian/Ubuntu: sudo apt-get install postgresql-client), or point PG_BINDIR (or --set pgBinDir=DIR, or the step's with.pgBinDir) at a directory holding pg_dump, pg_restore and psql";

/**
 * Where pg_dump, pg_restore and psql are: the step's `pgBinDir` when given, else PG_BINDIR (which
 * `--set pgBinDir=DIR` sets), else `pg_config --bindir`. A directory named explicitly must hold them.
 */
export function clientBindir(explicit?: string): string {
  if (explicit) return explicit;
  if (process.env.PG_BINDIR) return process.env.PG_BINDIR;
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    throw new Error(`pg_dump not found: pg_config is not on PATH and PG_BINDIR is not set; ${INSTALL_CLIENT}.`);
  }
}

const CLIENT_TOOLS = ['pg_dump', 'pg_restore', 'psql'] as const;

/**
 * Preflight's findings about the client tools the schema copy runs: missing ones block (the copy
 * would fail after preflight already changed the source); a pg_dump older than the source cannot
 * dump it (reported with the versions); older than the target, it is a warning.
 */
export async function clientToolFindings(
  explicit: string | undefined,
  target?: { major: number },
): Promise<{ findings: Finding[]; bindir: string | null; dumpMajor: number | null }> {
  let bindir: string;
  try {
    bindir = clientBindir(explicit);
  } catch (error) {
    return {
      bindir: null,
      dumpMajor: null,
      findings: [
        {
          severity: 'error',
          object: 'client tools (pg_dump, pg_restore, psql)',
          message: (error as Error).message.replace(/;.*$/, ''),
          fix: INSTALL_CLIENT,
        },
      ],
    };
  }
  const missing = CLIENT_TOOLS.filter((tool) => !existsSync(join(bindir, tool)));
  if (missing.length > 0) {
    return {
      bindir,
      dumpMajor: null,
      findings: [
        { severity: 'error', object: `client tools in ${bindir}`, message: `${missing.join(', ')} not found there`, fix: INSTALL_CLIENT },
      ],
    };
  }
  const dumpMajor = await toolMajor(bindir, 'pg_dump');
  const findings: Finding[] = [];
  if (target && dumpMajor < target.major) {
    findings.push({
      severity: 'warning',
      object: `${join(bindir, 'pg_dump')}`,
      message: `pg_dump ${dumpMajor} is older than the target (PostgreSQL ${target.major}); it dumps the source correctly, but the schema is written in ${dumpMajor}'s terms`,
      fix: `to use PostgreSQL ${target.major}'s client tools, install them and set PG_BINDIR (or --set pgBinDir=DIR) to their bin directory`,
    });
  }
  return { bindir, dumpMajor, findings };
}

/** Major version of a client program, from `pg_dump --version` ("pg_dump (PostgreSQL) 15.18 (Debian ...)"). */
export async function toolMajor(bindir: string, tool: 'pg_dump' | 'psql'): Promise<number> {
  const path = join(bindir, tool);
  if (!existsSync(path)) throw new Error(`${path} does not exist: ${INSTALL_CLIENT}`);
  const { stdout } = await execFileAsync(path, ['--version']);
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(stdout);
  if (!match) throw new Error(`cannot read the version of ${path} from '${stdout.trim()}'`);
  return Number(match[1]);
}

/** libpq environment for a postgres:// URL; the caller's environment must not leak other PG* settings in. */
export function libpqEnv(url: Secret): NodeJS.ProcessEnv {
  const parsed = new URL(url.reveal());
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PG')) env[key] = value;
  env.PGHOST = decodeURIComponent(parsed.hostname.replace(/^\[|\]$/g, ''));
  env.PGPORT = parsed.port || '5432';
  env.PGUSER = decodeURIComponent(parsed.username);
  env.PGPASSWORD = decodeURIComponent(parsed.password);
  env.PGDATABASE = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  const sslmode = parsed.searchParams.get('sslmode');
  if (sslmode) env.PGSSLMODE = sslmode;
  env.PGAPPNAME = 'migrate';
  env.PGCONNECT_TIMEOUT = String(connectTimeoutSeconds());
  return env;
}

/** Runs a client program and returns its stdout; failures carry its (redacted) stderr. */
export async function runTool(
  bindir: string,
  tool: string,
  args: string[],
  url: Secret,
  stdin?: string,
  signal?: AbortSignal,
): Promise<{ stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await runToolStatus(bindir, tool, args, url, stdin, signal);
  if (code !== 0) throw new Error(`${tool} exited with ${code}: ${stderr || '(no message)'}`);
  return { stdout, stderr };
}

/**
 * Runs a client program to its end, whatever its exit code; stderr is redacted. An abort (Ctrl-C)
 * terminates it, so an interrupted step does not leave pg_dump or pg_restore working behind the CLI.
 */
export function runToolStatus(
  bindir: string,
  tool: string,
  args: string[],
  url: Secret,
  stdin?: string,
  signal?: AbortSignal,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const path = join(bindir, tool);
  return new Promise((resolve, reject) => {
    const child = spawn(path, args, {
      env: libpqEnv(url),
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(signal ? { signal, killSignal: 'SIGTERM' as const } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error) =>
      reject(
        error.name === 'AbortError'
          ? new Error(`${tool} stopped: ${(signal?.reason as Error)?.message ?? 'interrupted'}`)
          : new Error(`${tool} could not start: ${error.message}`),
      ),
    );
    child.on('close', (code) => {
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: redact(Buffer.concat(err).toString('utf8').trim()) });
    });
    // A tool that exits early (bad connection) closes stdin under us; its exit code tells the story.
    child.stdin.on('error', () => {});
    child.stdin.end(stdin ?? '');
  });
}
