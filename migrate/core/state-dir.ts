/**
 * The state dir (journals and the lock) must be a directory this process can read, and write before a
 * run. A permission error is an error naming the path and the fix, never "no runs": after a crash,
 * switching between sudo and not is the usual way to end up with a state dir you cannot read.
 */
import { accessSync, constants, type Stats, statSync } from 'node:fs';
import { dirname, relative, resolve, sep } from 'node:path';

export class StateDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateDirError';
  }
}

const code = (error: unknown) => (error as NodeJS.ErrnoException).code;

function owner(path: string): string {
  try {
    const stat = statSync(path);
    return ` (owned by uid ${stat.uid}, mode ${(stat.mode & 0o777).toString(8).padStart(4, '0')}; you are uid ${process.getuid?.() ?? '?'})`;
  } catch {
    return '';
  }
}

const OWNERSHIP_FIX = (stateDir: string) =>
  `run migrate as the user that owns it (a run started with sudo needs sudo to be inspected or resumed), or take it over: sudo chown -R "$(id -u):$(id -g)" ${stateDir}`;

/** Turns a file-system error on `path` (inside the state dir) into a message naming the path and the fix. */
export function stateDirFailure(error: unknown, path: string, stateDir: string): Error {
  switch (code(error)) {
    case 'EACCES':
    case 'EPERM':
      return new StateDirError(`State dir ${stateDir}: permission denied on ${path}${owner(path)}. Fix: ${OWNERSHIP_FIX(stateDir)}`);
    case 'ENOTDIR':
      return notADirectory(stateDir);
    case 'EROFS':
      return new StateDirError(
        `State dir ${stateDir} is on a read-only file system (${path}). Fix: pass --state-dir (or MIGRATE_STATE_DIR) naming a directory on a writable disk`,
      );
    default:
      return error as Error;
  }
}

function notADirectory(stateDir: string, path = stateDir): StateDirError {
  return new StateDirError(
    `State dir ${stateDir}: ${path} is a file, not a directory. Fix: pass --state-dir (or MIGRATE_STATE_DIR) naming a directory, or move that file away`,
  );
}

/** The state dir and each directory below it down to `dir`. */
function chain(stateDir: string, dir: string): string[] {
  const parts = relative(stateDir, dir).split(sep).filter(Boolean);
  return [stateDir, ...parts.map((_, i) => resolve(stateDir, ...parts.slice(0, i + 1)))];
}

function statOf(path: string, stateDir: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (error) {
    if (code(error) === 'ENOENT') return undefined;
    throw stateDirFailure(error, path, stateDir);
  }
}

/** Whether `dir` (inside the state dir) exists; throws when it or a directory above it cannot be read. */
export function readableStateDir(stateDir: string, dir: string): boolean {
  for (const path of chain(stateDir, dir)) {
    const stat = statOf(path, stateDir);
    if (!stat) return false;
    if (!stat.isDirectory()) throw notADirectory(stateDir, path);
    try {
      accessSync(path, constants.R_OK | constants.X_OK);
    } catch (error) {
      throw stateDirFailure(error, path, stateDir);
    }
  }
  return true;
}

/**
 * Before a run: the state dir's directories down to `dir` that exist are writable (the lock, the
 * journal); when none exists yet, the nearest existing directory above, where they will be created.
 */
export function writableStateDir(stateDir: string, dir: string): void {
  readableStateDir(stateDir, dir);
  const existing = chain(stateDir, dir).filter((path) => statOf(path, stateDir));
  let holder = dirname(stateDir);
  while (existing.length === 0 && !statOf(holder, stateDir)) holder = dirname(holder);
  if (existing.length === 0 && !statOf(holder, stateDir)!.isDirectory()) throw notADirectory(stateDir, holder);
  for (const path of existing.length > 0 ? existing : [holder]) {
    try {
      accessSync(path, constants.R_OK | constants.W_OK | constants.X_OK);
    } catch (error) {
      if (code(error) !== 'EACCES' && code(error) !== 'EPERM') throw stateDirFailure(error, path, stateDir);
      throw new StateDirError(
        `State dir ${stateDir}: ${path} is not writable for you${owner(path)}, and a run writes its lock and journal there. ` +
          `Fix: ${OWNERSHIP_FIX(stateDir)}; or pass --state-dir naming a directory you can write`,
      );
    }
  }
}
