/**
 * Verification compares every built-in type the way the application reads it. The data reaches the
 * target as the migration moves it (COPY in text form, like the snapshot copy and replication), so a
 * value whose stored form changes on the way while reading the same, such as xml with a declaration,
 * must match; and a real difference in any of those columns is still found. Between equal versions
 * and from 13 to 17.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { localOutputs } from '../../migrate/local/outputs.ts';
import { embeddedBindir, type PostgresServer } from '../../migrate/local/postgres-server.ts';
import type { VerifyReport } from '../../migrate/postgres/compare/types.ts';
import { verify } from '../../migrate/steps/postgres/verify.ts';
import { testContext } from '../support/context.ts';
import { startServers } from '../support/servers.ts';

/** Column name → type and two values (the second also used to plant a difference). */
const COLUMNS: [string, string, string, string][] = [
  ['c_int2', 'smallint', '-32768', '7'],
  ['c_int4', 'integer', '2147483647', '8'],
  ['c_int8', 'bigint', '-9223372036854775808', '9'],
  ['c_numeric', 'numeric', '1.50', '1.5'],
  ['c_real', 'real', '3.14159', '-0'],
  ['c_float8', 'double precision', '0.1', '1e-300'],
  ['c_money', 'money', '12.34', '0.01'],
  ['c_text', 'text', 'plain \\ tab\t"quote"', ''],
  ['c_varchar', 'varchar(10)', 'short', 'x'],
  ['c_char', 'char(5)', 'ab', 'abcde'],
  ['c_qchar', '"char"', 'z', 'A'],
  ['c_name', 'name', 'some_name', 'other'],
  ['c_bytea', 'bytea', '\\x00ff10', '\\x'],
  ['c_bool', 'boolean', 'true', 'false'],
  ['c_date', 'date', '2024-02-29', '1999-12-31'],
  ['c_time', 'time', '23:59:59.999999', '00:00'],
  ['c_timetz', 'timetz', '12:00+05:30', '01:02:03-08'],
  ['c_timestamp', 'timestamp', '2024-01-01 12:34:56.789', 'infinity'],
  ['c_timestamptz', 'timestamptz', '2024-06-01 00:00:00+02', '-infinity'],
  ['c_interval', 'interval', '1 day 02:03:04', '1 mon -3 days'],
  ['c_uuid', 'uuid', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '00000000-0000-0000-0000-000000000000'],
  ['c_json', 'json', '{"b": 1,  "a": [1, 2]}', '[]'],
  ['c_jsonb', 'jsonb', '{"b": 1, "a": [1, 2]}', '{}'],
  ['c_xml', 'xml', '<?xml version="1.0" encoding="UTF-8"?>\n<doc a="1">x</doc>', '<other/>'],
  ['c_xml_fragment', 'xml', 'text <b>bold</b>', '<a/>'],
  ['c_inet', 'inet', '192.168.0.1', '10.0.0.0/8'],
  ['c_cidr', 'cidr', '10.1.0.0/16', '::/0'],
  ['c_macaddr', 'macaddr', '08:00:2b:01:02:03', '00:00:00:00:00:00'],
  ['c_macaddr8', 'macaddr8', '08:00:2b:01:02:03:04:05', '00:00:00:00:00:00:00:01'],
  ['c_point', 'point', '(1.5,2)', '(0,0)'],
  ['c_line', 'line', '{1,-1,0}', '{1,2,3}'],
  ['c_lseg', 'lseg', '[(0,0),(1,1)]', '[(1,1),(2,2)]'],
  ['c_box', 'box', '(1,1),(0,0)', '(2,2),(1,1)'],
  ['c_path', 'path', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1))'],
  ['c_polygon', 'polygon', '((0,0),(1,1),(1,0))', '((0,0),(2,2),(2,0))'],
  ['c_circle', 'circle', '<(0,0),1>', '<(1,1),2>'],
  ['c_bit', 'bit(4)', '1010', '0001'],
  ['c_varbit', 'varbit', '10101', ''],
  ['c_tsvector', 'tsvector', 'a fat cat', 'rat'],
  ['c_tsquery', 'tsquery', 'fat & (rat | cat)', 'cat'],
  ['c_int4range', 'int4range', '[1,10)', 'empty'],
  ['c_numrange', 'numrange', '(1.5,2.5]', '[0,)'],
  ['c_tstzrange', 'tstzrange', '[2024-01-01 00:00+00,2024-02-01 00:00+00)', 'empty'],
  ['c_daterange', 'daterange', '[2024-01-01,2024-12-31]', 'empty'],
  ['c_oid', 'oid', '4294967295', '0'],
  ['c_regtype', 'regtype', 'integer', 'text'],
  ['c_pg_lsn', 'pg_lsn', '16/B374D848', '0/0'],
  ['c_txid_snapshot', 'txid_snapshot', '10:20:10,14,15', '1:1:'],
  ['c_jsonpath', 'jsonpath', '$.a[*] ? (@ > 1)', '$'],
  ['c_int_array', 'integer[]', '{1,NULL,3}', '[0:1]={1,2}'],
  ['c_text_array', 'text[]', '{"a b","",NULL}', '{}'],
  ['c_xml_array', 'xml[]', '{"<a/>","<b>x</b>"}', '{}'],
  ['c_composite', 'types.pair', '(1,"<x/>")', '(,)'],
  ['c_enum', 'types.mood', 'happy', 'sad'],
  ['c_domain_xml', 'types.document', '<?xml version="1.0"?><d/>', '<e/>'],
];

const DDL = `
create schema types;
create type types.pair as (n int, doc xml);
create type types.mood as enum ('sad', 'happy');
create domain types.document as xml;
create table types.every (id int primary key, ${COLUMNS.map(([name, type]) => `${name} ${type}`).join(', ')});
`;

const literal = (value: string) => `'${value.replace(/'/g, "''")}'`;
const SEED = `
insert into types.every values
  (1, ${COLUMNS.map(([, type, a]) => `${literal(a)}::${type}`).join(', ')}),
  (2, ${COLUMNS.map(([, type, , b]) => `${literal(b)}::${type}`).join(', ')}),
  (3, ${COLUMNS.map(() => 'null').join(', ')});
`;

async function copyTable(source: pg.Client, target: pg.Client, table: string): Promise<void> {
  // Text form, as the snapshot copy between different versions and the subscription's table sync move rows.
  await pipeline(source.query(copyTo(`copy ${table} to stdout`)), target.query(copyFrom(`copy ${table} from stdin`)));
}

async function scenario(label: string, sourceBindir: string | undefined, targetBindir: string | undefined) {
  const servers: PostgresServer[] = [];
  const clients: pg.Client[] = [];
  after(async () => {
    for (const c of clients) await c.end().catch(() => {});
    await Promise.all(servers.map((s) => s.stop()));
  });
  const run = async (outputs: ReturnType<typeof localOutputs>) => {
    const t = testContext({ outputs });
    try {
      return (await verify.apply(t.ctx, verify.params.parse({}))) as VerifyReport;
    } finally {
      await t.close();
    }
  };

  it(`${label}: every built-in type copied as the migration copies it verifies identical, xml declarations included`, async () => {
    const [source, target] = await startServers([
      { name: 'types-source', ...(sourceBindir ? { bindir: sourceBindir } : {}) },
      { name: 'types-target', ...(targetBindir ? { bindir: targetBindir } : {}) },
    ]);
    servers.push(source, target);
    for (const server of [source, target]) {
      const admin = await server.client();
      await admin.query('create database typed');
      await admin.end();
      const c = await server.client('typed');
      clients.push(c);
      await c.query(DDL);
    }
    const [s, t] = clients.slice(-2) as [pg.Client, pg.Client];
    await s.query(SEED);
    await copyTable(s, t, 'types.every');
    // The premise: the stored xml differs (the declaration is gone), what a client reads does not.
    const stored = async (c: pg.Client) => (await c.query('select c_xml::text as stored, c_xml from types.every where id = 1')).rows[0];
    assert.notEqual((await stored(t)).stored, (await stored(s)).stored);
    assert.equal((await stored(t)).c_xml, (await stored(s)).c_xml);

    const outputs = localOutputs({ dir: mkdtempSync(join(tmpdir(), 'verify-types-')), source, target, database: 'typed' });
    const report = await run(outputs);
    const every = report.tables.find((x) => x.table === 'types.every')!;
    assert.deepEqual([every.counts, every.checksum, every.differences.rows], ['match', 'match', []]);

    // And a real difference in a column printed through its output function is still found, by key.
    for (const [column, type, value] of [
      ['c_xml', 'xml', '<doc a="1">y</doc>'],
      ['c_point', 'point', '(1.5,2.5)'],
      ['c_composite', 'types.pair', '(1,"<y/>")'],
      ['c_qchar', '"char"', 'y'],
    ] as const) {
      const before = (await t.query(`select ${column}::text as v from types.every where id = 1`)).rows[0].v;
      await t.query(`update types.every set ${column} = ${literal(value)}::${type} where id = 1`);
      const changed = await run(outputs);
      assert.deepEqual(
        changed.tables.find((x) => x.table === 'types.every')!.differences.rows,
        [{ key: { id: '1' }, kind: 'changed' }],
        column,
      );
      await t.query(`update types.every set ${column} = $1::${type} where id = 1`, [before]);
    }
  });
}

describe('verify compares every built-in type as the application reads it', () => {
  scenario('PostgreSQL 15 → 15', undefined, undefined);
  scenario('PostgreSQL 13 → 17', embeddedBindir('pg13-bin'), embeddedBindir('pg17-bin'));
});
