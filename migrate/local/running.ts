/**
 * The local PostgreSQL servers and PgBouncers this process has started and not yet stopped. They
 * run detached, so nothing else notices one left behind: under the test runner (which sets
 * NODE_TEST_CONTEXT in each test file's process; MIGRATE_LEAK_CHECK=1 or 0 forces the check on or
 * off), whatever still runs when the process exits is killed, named on stderr, and fails the process.
 */
import { readFileSync, writeSync } from 'node:fs';

export interface Stoppable {
  stop(): Promise<void>;
}

export interface Running {
  /** What it is and where, for the report: name, port, data or config dir. */
  description: string;
  /** Ends it at once, synchronously (it runs in an exit handler); false when it was not running. */
  kill(): boolean;
}

const running = new Set<Running>();
let checking = false;

function leakCheckWanted(): boolean {
  const flag = process.env.MIGRATE_LEAK_CHECK;
  return flag ? flag !== '0' : Boolean(process.env.NODE_TEST_CONTEXT);
}

/** Registers a started process; the returned function forgets it (it was stopped, or is kept on purpose). */
export function track(entry: Running): () => void {
  running.add(entry);
  if (!checking && leakCheckWanted()) {
    checking = true;
    process.on('exit', killLeftovers);
  }
  return () => {
    running.delete(entry);
  };
}

function killLeftovers(): void {
  for (const entry of running) {
    let outcome: string;
    try {
      if (!entry.kill()) continue;
      outcome = 'killed at exit';
    } catch (error) {
      outcome = `could not be killed at exit (${(error as Error).message})`;
    }
    writeSync(2, `Left running by this process, ${outcome}: ${entry.description}. Stop it where it was started (an after hook).\n`);
    if (!process.exitCode) process.exitCode = 1;
  }
  running.clear();
}

/** Whether `pid` is a live process (a zombie is not: where PID 1 does not reap, one stays). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as { code?: string }).code !== 'EPERM') return false;
  }
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return true;
  }
  return stat[stat.lastIndexOf(') ') + 2] !== 'Z';
}

/** Blocks until `pid` is gone or `ms` have passed (for the exit handler, which cannot await). */
export function waitGoneSync(pid: number, ms: number): boolean {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (const until = Date.now() + ms; alive(pid); ) {
    if (Date.now() > until) return false;
    Atomics.wait(sleeper, 0, 0, 20);
  }
  return true;
}

/**
 * Starts several servers side by side. If one fails, those that did start are stopped before the
 * first failure is rethrown: with `Promise.all` they would be lost, still running.
 */
export async function startAll<T extends readonly Stoppable[]>(starting: { readonly [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(starting);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (!failed) return settled.map((s) => (s as PromiseFulfilledResult<Stoppable>).value) as unknown as T;
  await Promise.allSettled(settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.stop()] : [])));
  throw failed.reason;
}
