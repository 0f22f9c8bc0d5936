/** Exit codes of the migrate CLI (documented in README). */
export const EXIT = {
  ok: 0,
  /** A step failed, or verification found differences. */
  failed: 1,
  /** Bad input: usage, runbook, outputs or parameters; nothing was changed. */
  usage: 2,
  /** Another run holds the stack's lock. */
  locked: 3,
  /** A dry run or preflight found problems that would block the run. */
  blocked: 4,
  /** Interrupted (SIGINT/SIGTERM); the journal is consistent: `migrate resume` continues. */
  interrupted: 130,
} as const;
