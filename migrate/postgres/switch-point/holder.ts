/**
 * Starts, inspects and releases the snapshot holder (../snapshot-holder.mjs): a detached process,
 * in its own process group with no stdio tied to the CLI, so that neither Ctrl-C nor kill -9 of the
 * CLI ends the transactions that keep the switch point's snapshots importable.
 *
 * The holder is reached two ways, both recorded in the pin's result: its process id on the machine
 * that pinned (SIGTERM releases it), and its two sessions, named by an application_name carrying a
 * random tag (pg_terminate_backend releases it from any machine, and a reused backend pid is never
 * mistaken for it).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { alive } from '../../local/running.ts';

export const HOLDER_SCRIPT = fileURLToPath(new URL('../snapshot-holder.mjs', import.meta.url));
export const HOLDER_APPLICATION = 'migrate-snapshot-holder';

export type HeldSide = { snapshot: string; backendPid: number; lsn: string };

export type Held = {
  /** Random, in both sessions' application_name: `migrate-snapshot-holder <tag>`. */
  tag: string;
  pid: number;
  host: string;
  pinnedAtMs: number;
  /** When the holder lets go on its own. */
  releaseByMs: number;
  source: HeldSide;
  target: HeldSide;
};

export function newTag(): string {
  return randomBytes(6).toString('hex');
}

export function applicationName(tag: string): string {
  return `${HOLDER_APPLICATION} ${tag}`;
}

/**
 * Spawns the holder on this Node and waits for its one line: the snapshot ids, or why it could not
 * export them. `configs` carry the password: they go to the holder's stdin only.
 */
export async function startHolder(
  configs: { source: pg.ClientConfig; target: pg.ClientConfig },
  tag: string,
  maxHoldMs: number,
): Promise<Held> {
  const child = spawn(process.execPath, [HOLDER_SCRIPT], { detached: true, stdio: ['pipe', 'pipe', 'ignore'] });
  const line = new Promise<string>((resolve, reject) => {
    let text = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('\n')) resolve(text.slice(0, text.indexOf('\n')));
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => reject(new Error(`the snapshot holder exited before answering (${signal ?? `exit code ${code}`})`)));
  });
  child.stdin!.on('error', () => {});
  child.stdin!.end(JSON.stringify({ tag, maxHoldMs, sides: configs }));
  let answer:
    | { ready: true; pid: number; pinnedAtMs: number; sides: { source: HeldSide; target: HeldSide } }
    | { ready: false; error: string };
  try {
    answer = JSON.parse(await line);
  } finally {
    // From here on the holder lives on its own: nothing of this process may keep it, or wait for it.
    child.stdout!.destroy();
    child.removeAllListeners('exit');
    child.unref();
  }
  if (!answer.ready) throw new Error(`the snapshot holder could not export the snapshots: ${answer.error}`);
  return {
    tag,
    pid: answer.pid,
    host: hostname(),
    pinnedAtMs: answer.pinnedAtMs,
    releaseByMs: answer.pinnedAtMs + maxHoldMs,
    source: answer.sides.source,
    target: answer.sides.target,
  };
}

/** How to reach a holder: its sessions by tag, its process when it was started on this machine. */
export type HolderRef = { tag: string; pid?: number; host?: string };

/**
 * The holder process on this machine, still there (a reused pid running something else is not it;
 * one that is exiting, its command line already gone, still is).
 */
export function holderRunning(ref: HolderRef, options: { exiting: boolean } = { exiting: true }): boolean {
  if (ref.pid === undefined || ref.host !== hostname() || !alive(ref.pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${ref.pid}/cmdline`, 'utf8');
    return (options.exiting && cmdline === '') || cmdline.includes('snapshot-holder');
  } catch {
    return options.exiting;
  }
}

export type Sessions = { source: pg.Pool; target: pg.Pool };

/** The holder's session on one server, when it is still there: its state and the xmin age it pins. */
export async function holderSession(
  db: pg.Pool,
  ref: HolderRef,
): Promise<{ pid: number; state: string; xminAge: number | null } | undefined> {
  const { rows } = await db.query(
    'SELECT pid, state, age(backend_xmin)::int8 AS xmin_age FROM pg_stat_activity WHERE application_name = $1',
    [applicationName(ref.tag)],
  );
  const row = rows[0];
  return row ? { pid: row.pid, state: row.state, xminAge: row.xmin_age === null ? null : Number(row.xmin_age) } : undefined;
}

/**
 * Ends the holder: SIGTERM when it runs on this machine (it commits and exits), its sessions
 * terminated otherwise (it exits when a connection ends). Idempotent: a holder already gone is fine.
 * Resolves once neither the process nor a session is left; after `waitMs`, by force.
 */
export async function releaseHolder(sessions: Partial<Sessions>, ref: HolderRef, waitMs = 10_000): Promise<void> {
  const pools = [sessions.source, sessions.target].filter((db): db is pg.Pool => db !== undefined);
  const terminate = () =>
    Promise.all(
      pools.map((db) =>
        db
          .query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [applicationName(ref.tag)])
          .catch(() => {}),
      ),
    );
  const signal = (name: NodeJS.Signals) => {
    // Only a process that is certainly the holder gets a signal.
    if (!holderRunning(ref, { exiting: false })) return false;
    try {
      process.kill(ref.pid!, name);
    } catch {}
    return true;
  };
  if (!signal('SIGTERM')) await terminate();
  for (const until = Date.now() + waitMs; ; ) {
    const left = await Promise.all(pools.map(async (db) => (await holderSession(db, ref).catch(() => undefined)) !== undefined));
    if (!holderRunning(ref) && !left.some(Boolean)) return;
    if (Date.now() > until) {
      signal('SIGKILL');
      await terminate();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
