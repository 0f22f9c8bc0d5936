/**
 * Shapes shared by the comparison library and the `postgres.verify` step (all JSON-able): type
 * aliases, not interfaces, because only an alias is assignable to the step result's `Json`.
 */

/** A primary-key value as text, by column name: `{ "id": "42" }`. Never any non-key column. */
export type KeyValue = { [column: string]: string };

/** One row that differs, named by its key only: which side holds it, and whether the contents match. */
export type RowDifference = {
  key: KeyValue;
  /** missing-on-target: only the source has the key; extra-on-target: only the target; changed: both, contents differ. */
  kind: 'missing-on-target' | 'extra-on-target' | 'changed';
};

export type KeyRange = { from: KeyValue | null; to: KeyValue | null };

export type TableDifferences = {
  /** Rows found to differ; for a keyless table a lower bound (the count difference, at least 1 on a checksum mismatch). */
  count: number;
  /** True when listing stopped at maxDifferences; more rows may differ. */
  truncated: boolean;
  /**
   * The key ranges the bisection narrowed the differences to, in key order: `from` inclusive, `to`
   * exclusive, null for the start or end of the table. Empty for keyless tables.
   */
  ranges: KeyRange[];
  rows: RowDifference[];
};

export type TableReport = {
  /** `schema.table`, quoted as PostgreSQL would print it. */
  table: string;
  /** Rows on each side; null when that side could not be counted (table missing). */
  rows: { source: number | null; target: number | null };
  counts: 'match' | 'mismatch';
  checksum: 'match' | 'mismatch' | 'skipped';
  /** Primary-key columns used for narrowing; empty for a keyless table (whole-table multiset checksum only). */
  key: string[];
  durationMs: number;
  differences: TableDifferences;
  /** Why the table could not be compared (missing on the target, missing columns); absent when it was. */
  problem?: string;
};

export type VerifyMode = 'counts' | 'checksum' | 'full';

export type VerifyReport = {
  mode: VerifyMode;
  /** How each row was hashed on both sides (see row-hash.ts). */
  hash: 'record' | 'text' | 'none';
  tables: TableReport[];
  summary: {
    tables: number;
    tablesDiffering: number;
    /** Source rows compared. */
    rows: number;
    durationMs: number;
    rowsPerSecond: number;
  };
};

/** How a verification at a pinned switch point went, beside the tables: what it proved and what holding it cost. */
export type PinnedProof = {
  /** When both snapshots were exported (postgres.pin-switch-point). */
  pinnedAt: string;
  source: { snapshot: string; lsn: string };
  target: { snapshot: string; lsn: string };
  /** From the pin to the end of the proof: how long vacuum was held back. */
  holdMs: number;
  /**
   * The most transactions vacuum was held back by on each server (age(backend_xmin) of the holder's
   * session, sampled through the verification); null when it could not be read.
   */
  xminAge: { source: number | null; target: number | null };
  /** The holder was released once the proof completed. */
  released: boolean;
};
