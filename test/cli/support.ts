/**
 * End-to-end harness for the `migrate` CLI: runs `node migrate/bin.mjs` as a child process (so a
 * test can SIGKILL it), a pair of real PostgreSQL servers seeded with the rehearsal's schema, the
 * outputs file the CLI reads, and readers for the journal the CLI writes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { StackOutputs } from '../../infra/contract.ts';
import { type Entry, type RunState, readJournal, runState } from '../../migrate/core/journal.ts';
import { localOutputs } from '../../migrate/local/outputs.ts';
import type { PostgresServer } from '../../migrate/local/postgres-server.ts';
import { APP_DATABASE, prepareTargetRoles, seedSource } from '../../migrate/rehearse/seed.ts';
import { orStop, startServers } from '../support/servers.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'migrate', 'bin.mjs');
/** `localOutputs()` names the stack after its environment. */
export const STACK = 'rehearsal';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliProcess {
  child: ChildProcess;
  /** What the CLI has printed so far. */
  stdout(): string;
  /** Resolves when the process has exited, whatever the outcome. */
  done: Promise<CliResult>;
}

/** Starts the CLI without waiting; stdout and stderr are collected for the result. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    // node --test sets FORCE_COLOR=1 for test files when it writes to a colour terminal; FORCE_COLOR would win over NO_COLOR.
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: undefined, MIGRATE_STATE_DIR: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<CliResult>((resolvePromise, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
  });
  return { child, stdout: () => stdout, done };
}

export function cli(args: string[]): Promise<CliResult> {
  return startCli(args).done;
}

/** A failed expectation on a CLI call shows what the CLI said, not only the exit code. */
export function describeResult(r: CliResult): string {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- stdout ---\n${r.stdout.slice(-4000)}\n--- stderr ---\n${r.stderr.slice(-4000)}`;
}

/** Polls until `probe` returns a value; fails with `what` when the CLI process exits first or time runs out. */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  options: { process?: CliProcess; timeoutMs?: number } = {},
): Promise<T> {
  const until = Date.now() + (options.timeoutMs ?? 120_000);
  let exited: CliResult | undefined;
  void options.process?.done.then((r) => (exited = r));
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (exited) throw new Error(`the CLI exited before ${what}: ${describeResult(exited)}`);
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

export function journalFiles(stateDir: string): string[] {
  const dir = join(stateDir, STACK, 'runs');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .map((f) => join(dir, f));
}

/** The journal of the one run of `runbook` in the state dir. */
export function journalOf(stateDir: string, runbook: string): string | undefined {
  const files = journalFiles(stateDir).filter((f) => f.slice(f.lastIndexOf('/') + 1).startsWith(`${runbook}-`));
  if (files.length > 1) throw new Error(`expected one ${runbook} run in ${stateDir}, found ${files.length}`);
  return files[0];
}

export function entries(journal: string): Entry[] {
  return readJournal(journal);
}

/** For polling a live journal: the CLI creates the file a moment before it writes the first event. */
export function entriesSoFar(journal: string): Entry[] {
  return readFileSync(journal, 'utf8').trim() === '' ? [] : readJournal(journal);
}

export function state(journal: string): RunState {
  return runState(journal);
}

/** How often each step reached `type` in the journal (e.g. step-finished). */
export function countPerStep(journal: string, type: Entry['type']): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of entries(journal)) if (e.type === type && 'step' in e) counts.set(e.step!, (counts.get(e.step!) ?? 0) + 1);
  return counts;
}

export interface Stack {
  dir: string;
  stateDir: string;
  outputsFile: string;
  outputs: StackOutputs;
  source: PostgresServer;
  target: PostgresServer;
  appPassword: string;
  /** A superuser connection to the app database on one side (cached; closed by `stop`). */
  sql(side: 'source' | 'target', text: string, values?: unknown[]): Promise<pg.QueryResult>;
  connect(side: 'source' | 'target'): Promise<pg.Client>;
  stop(): Promise<void>;
}

/** Two servers, the source seeded with the rehearsal schema, the app roles on the target, an outputs file. */
export async function startStack(options: { customers: number; serverPassword?: string; appPassword?: string }): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'migrate-cli-test-'));
  const opened: pg.Client[] = [];
  const [source, target] = await startServers(
    [
      { name: 'source', password: options.serverPassword },
      { name: 'target', password: options.serverPassword },
    ],
    { database: APP_DATABASE },
  );
  const connect = async (side: 'source' | 'target') => {
    const c = new pg.Client({ connectionString: (side === 'source' ? source : target).url(APP_DATABASE) });
    c.on('error', () => {});
    await c.connect();
    opened.push(c);
    return c;
  };
  const appPassword = options.appPassword ?? 'app-writer-password';
  await orStop([source, target], async () => {
    await seedSource(await connect('source'), options.customers, appPassword);
    await prepareTargetRoles(await connect('target'), appPassword);
  });
  const outputs = localOutputs({ dir, source, target, database: APP_DATABASE });
  const outputsFile = join(dir, 'outputs.json');
  writeFileSync(outputsFile, JSON.stringify(outputs, null, 2), { mode: 0o600 });
  const cached = new Map<string, Promise<pg.Client>>();
  return {
    dir,
    stateDir: join(dir, 'state'),
    outputsFile,
    outputs,
    source,
    target,
    appPassword,
    sql: async (side, text, values) => {
      if (!cached.has(side)) cached.set(side, connect(side));
      return (await cached.get(side)!).query(text, values);
    },
    connect,
    async stop() {
      for (const c of opened) await c.end().catch(() => {});
      await Promise.all([source.stop().catch(() => {}), target.stop().catch(() => {})]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every user table of the app database (partitions are compared through their parent). */
export async function appTables(stack: Stack): Promise<string[]> {
  const { rows } = await stack.sql(
    'source',
    `select format('%I.%I', n.nspname, c.relname) as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p') and not c.relispartition and n.nspname not in ('pg_catalog', 'information_schema') order by 1`,
  );
  return rows.map((r) => r.name as string);
}

/** Per table: row count and an md5 of every row in a fixed order, computed by each server itself. */
export async function tableDigests(stack: Stack, side: 'source' | 'target', tables: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of tables) {
    const { rows } = await stack.sql(
      side,
      `select count(*) || ':' || coalesce(md5(string_agg(t::text, '' order by t::text)), '-') as digest from ${table} t`,
    );
    out[table] = rows[0].digest;
  }
  return out;
}

/** Enough of a server for `localOutputs` that nothing listens on (port 1), or at a host that never resolves. */
export function placeholderServer(name: string, at: { host: string; port: number } = { host: '127.0.0.1', port: 1 }): PostgresServer {
  const url = (database = 'postgres') => `postgres://postgres:unused@${at.host}:${at.port}/${database}`;
  return { name, ...at, user: 'postgres', password: 'unused', dataDir: '', bindir: '', major: 15, url } as unknown as PostgresServer;
}
