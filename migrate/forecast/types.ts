/**
 * Shapes of the forecast: what was measured, what an earlier run took, and the predicted parts of
 * each window. Type aliases, not interfaces, so a forecast is a step result (`Json`) as it is.
 */

/** Where a figure came from: measured now on these servers, taken from an earlier run's journal, assumed, or not known. */
export type FigureSource = 'measured' | 'run' | 'default' | 'unknown';

/** One predicted part of a window. */
export type Part = {
  /** Stable id: the step id of the run it came from, or the model's own (`dns-ttl`, `pods-ready`). */
  id: string;
  label: string;
  /** null: unknown (the total is then a lower bound). */
  seconds: number | null;
  /** ± seconds around `seconds`. */
  tolerance: number;
  source: FigureSource;
  /** In words: `measured now: …`, `run d-day-…: step catch-up took 0.31 s`, `default assumption`. */
  from: string;
};

export type Total = {
  /** Sum of the known parts. */
  seconds: number;
  /** Sum of the parts' tolerances (they are not independent: a slow machine is slow at every step). */
  tolerance: number;
  /** Some part is unknown: `seconds` is a lower bound. */
  lowerBound: boolean;
  parts: Part[];
};

export type Order = 'keep-serving' | 'stop-first';
export type ProofPlacement = 'after-switch' | 'before-switch';

/** A reading that could not be taken says why, never a made-up number. */
export type Reading<T> = { ok: true; value: T } | { ok: false; reason: string };

export type LongestTransaction = {
  seconds: number;
  pid: number;
  role: string | null;
  application: string | null;
  state: string | null;
};

/** `table` is `schema.name` for display; schema and name are kept apart for lookups. */
export type TableSize = { table: string; schema: string; name: string; rows: number; bytes: number };

export type VerifyRate = {
  table: string;
  rows: number;
  bytes: number | null;
  durationMs: number;
  rowsPerSecond: number;
  bytesPerSecond: number | null;
};

export type Measurements = {
  /** ISO time the measurements were taken. */
  at: string;
  walBytesPerSecond: Reading<{ bytesPerSecond: number; intervalMs: number }>;
  replicationLag: Reading<{ bytes: number | null; seconds: number | null }>;
  longestTransaction: Reading<LongestTransaction | null>;
  sequences: Reading<number>;
  tables: Reading<{ count: number; rows: number; bytes: number; largest: TableSize[] }>;
  verifyRate: Reading<VerifyRate>;
  dns: { app: { ttl: number; cutoverTtl: number }; webhooks: { ttl: number; cutoverTtl: number } };
  podStartup: Reading<{ medianSeconds: number; pods: number; namespaces: string[] }>;
  /** The stack has a PgBouncer admin console: pause/resume bound the window (else new PgBouncer pods end it). */
  pgbouncerAdmin: boolean;
};

/** An earlier run's steps, as the model reads them from its journal. */
export type RunHistory = {
  runId: string;
  runbook: string;
  stack: string;
  /** The database write window of that run (pause → resume), when it had one. */
  window: { start: number; end: number; seconds: number; from: string; to: string } | null;
  steps: HistoryStep[];
};

export type HistoryStep = {
  id: string;
  kind: string;
  status: string;
  startedAt: number | null;
  seconds: number | null;
  reason: string | null;
  /** What the model scales by: sequences synced, rows verified. */
  sequences: number | null;
  rowsVerified: number | null;
};

export type Forecast = {
  at: string;
  stack: string;
  order: Order;
  proof: ProofPlacement;
  basedOnRun: string | null;
  /** Pause → resume: no write reaches any database. */
  databaseWindow: Total;
  /** What a user whose client follows DNS sees, for both D-day orders. */
  userWindow: { 'keep-serving': Total; 'stop-first': Total };
  /** The full proof's duration, and how long the switch-point snapshots are held (vacuum held back meanwhile). */
  proofRun: Part;
  snapshotHold: Part;
  notes: string[];
};
