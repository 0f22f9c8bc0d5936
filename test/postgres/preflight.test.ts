/**
 * Preflight against a badly configured pair lists every problem at once, each with its fix; and no
 * failure, down to a refused connection, lets the source password into a message.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { embeddedBindir, freePort } from '../../migrate/local/postgres-server.ts';
import { preflight } from '../../migrate/steps/postgres/preflight.ts';
import { replicationStart } from '../../migrate/steps/postgres/replication-start.ts';
import { schemaCopy } from '../../migrate/steps/postgres/schema-copy.ts';
import { DATABASE, type Pair, startPair } from './fixtures.ts';

const PLANTED = 'Planted-Secret-9f3kQ';

describe('postgres.preflight on a badly configured pair', () => {
  let pair: Pair;
  const context = (outputs = pair.outputs) => pair.context({ outputs });

  before(async () => {
    pair = await startPair({
      source: { settings: { wal_level: 'replica' }, password: PLANTED },
      // PostgreSQL 17 no longer ships adminpack, which the Debian 15 source has.
      target: { bindir: embeddedBindir('pg17-bin') },
    });
    await pair.sql(
      'source',
      `create table public.no_key (x int);
       create table public.keyed (id int primary key);
       select lo_from_bytea(0, 'a large object');
       create extension adminpack;
       create publication migrate_pub for all tables;`,
    );
    await pair.sql('target', 'create table public.keyed (id int primary key); insert into public.keyed values (1);');
  });
  after(async () => {
    await pair?.stop();
  });

  it('lists every problem at once, each with a fix', async () => {
    const probe = await preflight.probe(context().ctx, preflight.params.parse({}));
    assert.equal(probe.state, 'blocked');
    const errors = probe.findings!.filter((f) => f.severity === 'error');
    assert.deepEqual(errors.map((f) => f.object).sort(), [
      'extension adminpack',
      'publication migrate_pub (source)',
      'source large objects',
      'source parameter wal_level',
      'table public.no_key',
      'target tables public.keyed',
    ]);
    for (const finding of errors) assert.ok(finding.fix, `${finding.object} has a fix`);
    assert.match(errors.find((f) => f.object === 'source parameter wal_level')!.fix!, /wal_level = 'logical'/);
    assert.ok(probe.findings!.some((f) => f.severity === 'info' && /source PostgreSQL 15\..*target PostgreSQL 17\./.test(f.message)));
  });

  it('refuses to apply while blocked', async () => {
    await assert.rejects(
      preflight.apply(context().ctx, preflight.params.parse({ replicaIdentityFull: true })),
      /Unable to pass the PostgreSQL preflight: 5 preflight checks failed/,
    );
  });

  it('keeps the source password out of every failure', async () => {
    const unreachable = `postgres://postgres:${encodeURIComponent(PLANTED)}@127.0.0.1:${await freePort()}/${DATABASE}`;
    writeFileSync(join(pair.dir, 'unreachable.url'), unreachable, { mode: 0o600 });
    const ref = `file:${join(pair.dir, 'unreachable.url')}`;
    const texts: string[] = [];

    const down = context({ ...pair.outputs, source: { urlRef: ref } });
    const probe = await preflight.probe(down.ctx, preflight.params.parse({}));
    const connection = probe.findings!.find((f) => f.object === 'source connection')!;
    assert.match(connection.message, /cannot connect: .*ECONNREFUSED/);
    texts.push(JSON.stringify(probe));

    const dump = schemaCopy.apply(down.ctx, schemaCopy.params.parse({}));
    await assert.rejects(dump, (error: Error) => {
      texts.push(error.message);
      return /Unable to copy the schema/.test(error.message);
    });

    // The publication is reachable; the subscription's own connection to the source is not.
    const subscribe = context({ ...pair.outputs, source: { urlRef: pair.outputs.source.urlRef, subscriptionUrlRef: ref } });
    const start = replicationStart.apply(subscribe.ctx, replicationStart.params.parse({}));
    await assert.rejects(start, (error: Error) => {
      texts.push(error.message);
      return /could not connect to the publisher/.test(error.message);
    });

    for (const t of pair.contexts) texts.push(...t.lines, JSON.stringify(t.changes), JSON.stringify(t.progress));
    for (const text of texts) {
      assert.ok(!text.includes(PLANTED), `leaked: ${text.slice(0, 200)}`);
      assert.ok(!text.includes(encodeURIComponent(PLANTED)));
    }
  });
});
