/**
 * Reads the row changes out of pgoutput's messages (logical replication protocol version 1, as
 * `pg_logical_slot_peek_binary_changes` returns them one per row). pgoutput rather than
 * test_decoding: it is built into every server that can publish, contrib or not, and its messages
 * say which columns form each table's replica identity, so a change can be named by its key.
 *
 * A transaction that a subscription's apply worker committed carries its replication origin: pgoutput
 * sends an ORIGIN message right after BEGIN (pgoutput_begin_txn → send_repl_origin, protocol 1 on),
 * naming it `pg_<subscription oid>`. The decoder keeps it until COMMIT and gives it to each change.
 */

/** One INSERT, UPDATE, DELETE or TRUNCATE found in the stream. */
export interface RowChange {
  action: 'insert' | 'update' | 'delete' | 'truncate';
  /** `schema.name` as the server spells it (unquoted). */
  table: string;
  /** `(id)=(42)`: the replica identity's columns, or every column of a table without one; empty for TRUNCATE. */
  key: string;
  /** The replication origin of the change's transaction (`pg_16401`); absent for a local write. */
  origin?: string;
}

interface Relation {
  table: string;
  columns: { name: string; key: boolean }[];
}

/** Longest value shown in a key; longer ones are cut, so a stray blob cannot flood a report. */
const MAX_VALUE = 60;

class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  byte(): number {
    return this.buf.readUInt8(this.at++);
  }
  int16(): number {
    const v = this.buf.readInt16BE(this.at);
    this.at += 2;
    return v;
  }
  int32(): number {
    const v = this.buf.readInt32BE(this.at);
    this.at += 4;
    return v;
  }
  skip(n: number): void {
    this.at += n;
  }
  get remaining(): number {
    return this.buf.length - this.at;
  }
  string(): string {
    const end = this.buf.indexOf(0, this.at);
    const s = this.buf.toString('utf8', this.at, end);
    this.at = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }
}

/** A TupleData: one value per column, as text; null for SQL NULL, undefined for an unchanged TOAST value. */
function tuple(r: Reader): (string | null | undefined)[] {
  const values: (string | null | undefined)[] = [];
  for (let n = r.int16(); n > 0; n--) {
    const kind = String.fromCharCode(r.byte());
    if (kind === 'n') values.push(null);
    else if (kind === 'u') values.push(undefined);
    else {
      const data = r.bytes(r.int32());
      values.push(kind === 't' ? data.toString('utf8') : `\\x${data.toString('hex')}`);
    }
  }
  return values;
}

function describeKey(relation: Relation, values: (string | null | undefined)[]): string {
  const keyed = relation.columns.some((c) => c.key);
  const shown = relation.columns.map((c, i) => ({ ...c, value: values[i] })).filter((c) => (keyed ? c.key : c.value !== undefined));
  const value = (v: string | null | undefined) =>
    v === null ? 'null' : v === undefined ? '(unchanged)' : v.length > MAX_VALUE ? `${v.slice(0, MAX_VALUE)}…` : v;
  return `(${shown.map((c) => c.name).join(', ')})=(${shown.map((c) => value(c.value)).join(', ')})`;
}

/** Decodes messages in stream order; Relation messages precede the first change of each table. */
export class PgoutputDecoder {
  private readonly relations = new Map<number, Relation>();
  /** The origin of the transaction being read, between its BEGIN (or ORIGIN) and COMMIT. */
  private origin: string | undefined;

  /** The row changes one message carries: none for BEGIN, COMMIT, RELATION, TYPE, ORIGIN. */
  decode(message: Buffer): RowChange[] {
    const r = new Reader(message);
    const changes = this.message(r);
    // BEGIN and ORIGIN may come in one buffer; every other message fills its own.
    while (r.remaining > 0 && String.fromCharCode(message[message.length - r.remaining]!) === 'O') changes.push(...this.message(r));
    const origin = this.origin;
    return origin === undefined ? changes : changes.map((c) => ({ ...c, origin }));
  }

  private message(r: Reader): RowChange[] {
    const type = String.fromCharCode(r.byte());
    const relation = (id: number): Relation => this.relations.get(id) ?? { table: `relation ${id}`, columns: [] };
    switch (type) {
      case 'B': {
        r.skip(8 + 8 + 4); // final LSN, commit time, xid
        this.origin = undefined;
        return [];
      }
      case 'O': {
        r.skip(8); // the commit LSN on the origin
        this.origin = r.string();
        return [];
      }
      case 'C': {
        r.skip(1 + 8 + 8 + 8); // flags, commit LSN, end LSN, commit time
        this.origin = undefined;
        return [];
      }
      case 'R': {
        const id = r.int32();
        const schema = r.string();
        const name = r.string();
        r.byte(); // replica identity setting
        const columns: Relation['columns'] = [];
        for (let n = r.int16(); n > 0; n--) {
          const flags = r.byte();
          columns.push({ name: r.string(), key: (flags & 1) === 1 });
          r.skip(8); // type oid, typmod
        }
        this.relations.set(id, { table: `${schema}.${name}`, columns });
        return [];
      }
      case 'I': {
        const rel = relation(r.int32());
        r.byte(); // 'N'
        return [{ action: 'insert', table: rel.table, key: describeKey(rel, tuple(r)) }];
      }
      case 'U': {
        const rel = relation(r.int32());
        // The old key (K) or old row (O) comes only when the key changed or the identity is FULL.
        const old = String.fromCharCode(r.byte()) === 'N' ? undefined : tuple(r);
        if (old) r.byte(); // 'N'
        const row = tuple(r);
        return [{ action: 'update', table: rel.table, key: describeKey(rel, old ?? row) }];
      }
      case 'D': {
        const rel = relation(r.int32());
        r.byte(); // 'K' or 'O'
        return [{ action: 'delete', table: rel.table, key: describeKey(rel, tuple(r)) }];
      }
      case 'T': {
        const count = r.int32();
        r.byte(); // options: CASCADE, RESTART IDENTITY
        return Array.from({ length: count }, () => ({ action: 'truncate' as const, table: relation(r.int32()).table, key: '' }));
      }
      default:
        return [];
    }
  }
}
