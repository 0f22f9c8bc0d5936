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
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
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

type Answer =
  | { ready: true; pid: number; pinnedAtMs: number; sides: { source: HeldSide; target: HeldSide } }
  | { ready: true; prepared: true; pid: number }
  | { ready: false; error: string };

/**
 * Spawns the holder on this Node and waits for its one line. `request` carries the passwords: it
 * goes to the holder's stdin only.
 */
async function spawnHolder(request: Record<string, unknown>): Promise<Answer> {
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
  child.stdin!.end(JSON.stringify(request));
  try {
    return JSON.parse(await line);
  } finally {
    // From here on the holder lives on its own: nothing of this process may keep it, or wait for it.
    child.stdout!.destroy();
    child.removeAllListeners('exit');
    child.unref();
  }
}

function held(tag: string, maxHoldMs: number, answer: Answer): Held {
  if (!answer.ready) throw new Error(`the snapshot holder could not export the snapshots: ${answer.error}`);
  if (!('sides' in answer)) throw new Error('the snapshot holder answered without snapshots');
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

/** Spawns the holder and has it export the snapshots at once. */
export async function startHolder(
  configs: { source: pg.ClientConfig; target: pg.ClientConfig },
  tag: string,
  maxHoldMs: number,
): Promise<Held> {
  return held(tag, maxHoldMs, await spawnHolder({ tag, maxHoldMs, sides: configs }));
}

/** A holder started ahead of the write window, connected and idle, exporting when told (exportPrepared). */
export type PreparedHolder = {
  tag: string;
  pid: number;
  host: string;
  /** The holder's 0700 directory on `host`: the export request and its answer. */
  dir: string;
  /** When it lets go on its own if nobody told it to export. */
  waitUntilMs: number;
};

export async function prepareHolder(
  configs: { source: pg.ClientConfig; target: pg.ClientConfig },
  tag: string,
  maxWaitMs: number,
): Promise<PreparedHolder> {
  // mkdtemp: private to this user, so neither the request nor the answer can be planted or read.
  const dir = mkdtempSync(join(tmpdir(), 'migrate-holder-'));
  let answer: Answer;
  try {
    answer = await spawnHolder({ tag, maxHoldMs: maxWaitMs, sides: configs, prepared: { dir, maxWaitMs } });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  if (!answer.ready) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`the snapshot holder could not connect: ${answer.error}`);
  }
  return { tag, pid: answer.pid, host: hostname(), dir, waitUntilMs: Date.now() + maxWaitMs };
}

/** The holder's answer; undefined until it is there (renamed into place whole), or once the holder removed it. */
function readAnswer(file: string): Answer | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Answer;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Tells a prepared holder to export, and waits for the snapshot ids. Undefined when it cannot be
 * told (another machine, no longer running, or it ended before answering): the caller starts one.
 */
export async function exportPrepared(ref: PreparedHolder, maxHoldMs: number, waitMs = 60_000): Promise<Held | undefined> {
  if (!holderRunning(ref, { exiting: false })) return undefined;
  const answerFile = join(ref.dir, 'point.json');
  try {
    writeFileSync(join(ref.dir, 'export.json'), JSON.stringify({ maxHoldMs }), { mode: 0o600 });
    process.kill(ref.pid, 'SIGUSR2');
  } catch {
    return undefined;
  }
  for (const until = Date.now() + waitMs; ; ) {
    const answer = readAnswer(answerFile);
    if (answer) return held(ref.tag, maxHoldMs, answer);
    // Gone without an answer (a server went away between prepare and pin): not this pin's failure.
    if (!holderRunning(ref) && !existsSync(answerFile)) return undefined;
    if (Date.now() > until) throw new Error(`the prepared snapshot holder (process ${ref.pid}) did not export within ${waitMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
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
