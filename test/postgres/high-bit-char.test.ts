/**
 * A "char" value of 128 or more on a PostgreSQL 13 source is printed as a raw byte, which the
 * target's UTF-8 database refuses: preflight names the column before anything starts, and a copy
 * that meets one anyway names the table.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { embeddedBindir } from '../../migrate/local/postgres-server.ts';
import { preflight } from '../../migrate/steps/postgres/preflight.ts';
import { snapshotCopy } from '../../migrate/steps/postgres/snapshot-copy.ts';
import { type Pair, startPair } from './fixtures.ts';

const DDL = `
create table public.flags (id int primary key, f "char", note text);
create table public.fine (id int primary key, f "char");
`;

describe('high-bit "char" values on a PostgreSQL 13 source', () => {
  let pair: Pair;
  const context = () => pair.context();

  before(async () => {
    pair = await startPair({ source: { bindir: embeddedBindir('pg13-bin') } });
    await pair.sql(
      'source',
      `${DDL} insert into public.flags values (1, 'a', 'ok'), (2, (-56)::"char", 'high bit'); insert into public.fine values (1, 'z');`,
    );
    await pair.sql('target', DDL);
  });
  after(async () => {
    await pair?.stop();
  });

  it('preflight blocks, naming the table and column, with a fix', async () => {
    const probe = await preflight.probe(context().ctx, preflight.params.parse({}));
    const findings = probe.findings!.filter((f) => f.object.startsWith('column '));
    assert.deepEqual(
      findings.map((f) => [f.severity, f.object]),
      [['error', 'column public.flags.f']],
    );
    assert.match(findings[0]!.message, /1 rows hold a "char" value of 128 or more/);
    assert.match(findings[0]!.fix!, /smallint or text/);
  });

  it('a copy that meets one names the table and the likely cause', async () => {
    const t = context();
    await assert.rejects(snapshotCopy.apply(t.ctx, snapshotCopy.params.parse({})), (error: Error) => {
      assert.match(
        error.message,
        /copying table public\.flags: invalid byte sequence for encoding "UTF8".*COPY flags, line \d+.*"char" column/s,
      );
      return true;
    });
  });
});
