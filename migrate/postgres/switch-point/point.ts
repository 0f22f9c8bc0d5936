/**
 * The switch point as `postgres.pin-switch-point` returns it and `postgres.verify` takes it back
 * (`at: ${{ steps.pin.switchPoint }}`): journal-safe (no secret), enough to import both snapshots
 * again, to find and release the holder, and to explain why a point can no longer be proven.
 */
import { z } from 'zod';

const side = z.strictObject({
  /** pg_export_snapshot() of the holder's transaction on that server. */
  snapshot: z.string().min(1),
  backendPid: z.number().int(),
  /** pg_current_wal_lsn() at the pin. */
  lsn: z.string(),
});

const sequence = z.strictObject({
  name: z.string(),
  last: z.string().nullable(),
  called: z.boolean(),
  increment: z.string(),
  min: z.string(),
  max: z.string(),
  cycle: z.boolean(),
});

export const switchPointSchema = z.strictObject({
  pinnedAt: z.string(),
  pinnedAtMs: z.number(),
  /** The holder lets go on its own then (maxHoldMinutes after the pin). */
  releaseBy: z.string(),
  releaseByMs: z.number(),
  holder: z.strictObject({
    pid: z.number().int(),
    host: z.string(),
    /** In both sessions' application_name: `migrate-snapshot-holder <tag>`. */
    tag: z.string().min(1),
  }),
  source: side,
  target: side,
  /** Sequences are not snapshot-bound: their positions as read at the pin. */
  sequences: z.strictObject({ source: z.array(sequence), target: z.array(sequence) }),
});

export type SwitchPoint = z.infer<typeof switchPointSchema>;

/**
 * The holder `postgres.prepare-switch-point` started ahead of the window, as it returns it and the
 * pin takes it back (`prepared: ${{ steps.<id>.holder }}`): journal-safe, enough to signal it.
 */
export const preparedHolderSchema = z.strictObject({
  tag: z.string().min(1),
  pid: z.number().int(),
  host: z.string(),
  dir: z.string().startsWith('/'),
  waitUntil: z.string(),
  waitUntilMs: z.number(),
});

export type PreparedHolderRef = z.infer<typeof preparedHolderSchema>;
