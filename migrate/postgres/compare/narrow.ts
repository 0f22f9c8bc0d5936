/**
 * Finds which rows of a keyed table differ, without reading the table twice: bisect the key range
 * on both sides in lockstep, descending only into halves whose (count, checksum) disagree, until a
 * range is small enough to compare row by row (key and row hash only; no column value leaves the
 * server). Cost: one scan of each disagreeing range per level, so a handful of differences costs a
 * few scans of the table; maxDifferences stops the walk early when there are many.
 */

import type { Checksum, Range, TableQueries } from './queries.ts';
import { checksum, keyAt, rowHashes, sortKeys, WHOLE_TABLE } from './queries.ts';
import type { Sides } from './session.ts';
import type { KeyRange, KeyValue, RowDifference, TableDifferences } from './types.ts';

/** A range with at most this many rows (both sides together) is compared row by row. */
export const LEAF_ROWS = 2000;

export async function narrowDifferences(
  sides: Sides,
  tables: { source: TableQueries; target: TableQueries },
  whole: { source: Checksum; target: Checksum },
  maxDifferences: number,
): Promise<TableDifferences> {
  const rows: RowDifference[] = [];
  const ranges: KeyRange[] = [];
  let truncated = false;
  const names = tables.source.key.map((c) => c.name);
  const keyValue = (values: string[]): KeyValue => Object.fromEntries(names.map((n, i) => [n, values[i] ?? '']));

  const listLeaf = async (range: Range) => {
    // A target without a unique key could hold more rows under one key than any split separates.
    const limit = LEAF_ROWS + maxDifferences;
    const [s, t] = await Promise.all([
      rowHashes(sides.source, tables.source, range, limit),
      rowHashes(sides.target, tables.target, range, limit),
    ]);
    if (s.length === limit || t.length === limit) truncated = true;
    const unsorted = diffRows(s, t);
    if (unsorted.length === 0) return;
    const found = await sortKeys(sides.source, tables.source, unsorted);
    ranges.push({ from: range.lo ? keyValue(range.lo) : null, to: range.hi ? keyValue(range.hi) : null });
    for (const difference of found) {
      if (rows.length >= maxDifferences) {
        truncated = true;
        return;
      }
      rows.push({ key: keyValue(difference.key), kind: difference.kind });
    }
  };

  const visit = async (range: Range, counted: { source: Checksum; target: Checksum }): Promise<void> => {
    const { source: s, target: t } = counted;
    if (s.count === t.count && s.sum === t.sum) return;
    if (rows.length >= maxDifferences) {
      truncated = true;
      return;
    }
    if (s.count + t.count <= LEAF_ROWS) return listLeaf(range);
    // Split at the median key of the side holding more rows: that side's half-ranges are non-empty.
    const larger = s.count >= t.count ? 'source' : 'target';
    const middle = await keyAt(sides[larger], tables[larger], range, Math.floor(Math.max(s.count, t.count) / 2));
    const halves: Range[] = [
      { lo: range.lo, hi: middle },
      { lo: middle, hi: range.hi },
    ];
    for (const half of halves) {
      const [hs, ht] = await Promise.all([checksum(sides.source, tables.source, half), checksum(sides.target, tables.target, half)]);
      const unsplit = hs.count === s.count && ht.count === t.count;
      await (unsplit ? listLeaf(half) : visit(half, { source: hs, target: ht }));
    }
  };

  await visit(WHOLE_TABLE, whole);
  return { count: rows.length, truncated, ranges, rows };
}

type Keyed = { key: string[]; hash: string };

/** Rows of one range that differ, source rows first (the caller sorts them). */
function diffRows(source: Keyed[], target: Keyed[]): { key: string[]; kind: RowDifference['kind'] }[] {
  const group = (list: Keyed[]) => {
    const map = new Map<string, { key: string[]; hashes: string[] }>();
    for (const row of list) {
      const id = JSON.stringify(row.key);
      const entry = map.get(id) ?? { key: row.key, hashes: [] };
      entry.hashes.push(row.hash);
      map.set(id, entry);
    }
    return map;
  };
  const s = group(source);
  const t = group(target);
  const out: { key: string[]; kind: RowDifference['kind'] }[] = [];
  for (const id of new Set([...s.keys(), ...t.keys()])) {
    const a = s.get(id);
    const b = t.get(id);
    if (!b) out.push({ key: a!.key, kind: 'missing-on-target' });
    else if (!a) out.push({ key: b.key, kind: 'extra-on-target' });
    else if ([...a.hashes].sort().join() !== [...b.hashes].sort().join()) out.push({ key: a.key, kind: 'changed' });
  }
  return out;
}
