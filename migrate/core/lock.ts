/**
 * One operator at a time per stack. Two layers: a lock file in the state dir (same machine, names
 * the holder) and, for runs that touch PostgreSQL, an advisory lock on the target database (any
 * machine: operators with separate state dirs still exclude each other). A lock file left by a
 * process that no longer exists on this host is taken over; the server drops an advisory lock when
 * its session dies, so `kill -9` never leaves a run locked out.
 */

import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { stateDirFailure, writableStateDir } from './state-dir.ts';

export class LockHeldError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LockHeldError';
  }
}

interface Holder {
  pid: number;
  host: string;
  runId: string;
  since: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface Lock {
  release(): void;
  /** Set when a stale lock of a dead process was taken over. */
  takenOverFrom?: Holder;
}

export function acquireLock(stateDir: string, stack: string, runId: string): Lock {
  const dir = join(stateDir, stack);
  writableStateDir(stateDir, join(dir, 'runs'));
  try {
    mkdirSync(join(dir, 'runs'), { recursive: true });
  } catch (error) {
    throw stateDirFailure(error, dir, stateDir);
  }
  const path = join(dir, 'lock');
  const me: Holder = { pid: process.pid, host: hostname(), runId, since: new Date().toISOString() };
  let takenOverFrom: Holder | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, JSON.stringify(me));
      closeSync(fd);
      return {
        takenOverFrom,
        release: () => {
          try {
            const holder = JSON.parse(readFileSync(path, 'utf8')) as Holder;
            if (holder.pid === me.pid && holder.runId === runId) rmSync(path);
          } catch {
            /* already gone */
          }
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw stateDirFailure(error, path, stateDir);
      let holder: Holder | undefined;
      try {
        holder = JSON.parse(readFileSync(path, 'utf8')) as Holder;
      } catch {
        holder = undefined;
      }
      const stale = holder === undefined || (holder.host === me.host && !alive(holder.pid));
      if (!stale) {
        throw new LockHeldError(
          `Stack '${stack}' is locked by run ${holder!.runId} (pid ${holder!.pid} on ${holder!.host}, since ${holder!.since}). ` +
            `Wait for it to finish; if that process is gone on another host, remove ${path}.`,
        );
      }
      takenOverFrom = holder;
      rmSync(path, { force: true });
    }
  }
  throw new LockHeldError(`Could not take the lock ${path}: another process keeps creating it.`);
}
