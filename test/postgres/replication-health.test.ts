/**
 * A key-less table with a json column cannot be replicated with REPLICA IDENTITY FULL: the target's
 * apply worker fails at the first UPDATE ("could not identify an equality operator for type json")
 * and retries forever. Preflight refuses such tables (inside arrays, domains and composites too);
 * and when a subscription stalls anyway, `migrate status` exits non-zero with the error and D-day's
 * go/no-go refuses before the first destructive step.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readJournal } from '../../migrate/core/journal.ts';
import { embeddedBindir } from '../../migrate/local/postgres-server.ts';
import { replicationStatus } from '../../migrate/postgres/status.ts';
import { preflight } from '../../migrate/steps/postgres/preflight.ts';
import { replicationHealthStep } from '../../migrate/steps/postgres/replication-health.ts';
import { replicationStart } from '../../migrate/steps/postgres/replication-start.ts';
import { cli, describeResult, journalFiles } from '../cli/support.ts';
import { type Pair, startPair } from './fixtures.ts';

const AWKWARD = `
create type public.geo as (label text, at point);
create domain public.document as json;
create table public.docs (id int, doc json);
create table public.places (id int, at point);
create table public.pages (id int, body xml);
create table public.tagged (id int, tags json[]);
create table public.geo_rows (g public.geo);
create table public.wrapped (d public.document);
create table public.full_json (id int primary key, doc json);
alter table public.full_json replica identity full;
create table public.ok_keyless (id int, v jsonb, t varchar(10), e text[], r int4range, n numeric, s text collate "C");
create table public.ok_keyed (id int primary key, doc json);
create table public.ok_index (id int not null, doc json);
create unique index ok_index_id on public.ok_index (id);
alter table public.ok_index replica identity using index ok_index_id;
`;

const STALL = `
create table public.stall (id int, doc json);
create table public.steady (id int primary key, v text);
`;

describe('replica identity without equality, and a stalled subscription', () => {
  let pair: Pair;
  let outputsFile: string;
  const context = (stepId = 'step') => pair.context({ stepId });

  before(async () => {
    // A logging collector so that the error's text can be read back from the target's log.
    pair = await startPair({
      target: { settings: { logging_collector: 'on', log_directory: "'log'", wal_retrieve_retry_interval: "'1s'" } },
    });
    await pair.sql('source', AWKWARD);
    outputsFile = join(pair.dir, 'outputs.json');
    writeFileSync(outputsFile, JSON.stringify(pair.outputs), { mode: 0o600 });
  });
  after(async () => {
    await pair?.stop();
  });

  it('preflight refuses key-less tables whose columns have no equality operator, with the fix, instead of setting FULL', async () => {
    const probe = await preflight.probe(context().ctx, preflight.params.parse({ replicaIdentityFull: true }));
    assert.equal(probe.state, 'blocked');
    const tables = probe.findings!.filter((f) => f.object.startsWith('table '));
    const errors = tables.filter((f) => f.severity === 'error');
    assert.deepEqual(
      errors.map((f) => f.object),
      ['docs', 'full_json', 'geo_rows', 'pages', 'places', 'tagged', 'wrapped'].map((t) => `table public.${t}`),
    );
    assert.match(errors.find((f) => f.object === 'table public.docs')!.message, /doc json has a type without an equality operator/);
    assert.match(errors.find((f) => f.object === 'table public.geo_rows')!.message, /g geo/);
    for (const f of errors) assert.match(f.fix!, /primary key.*REPLICA IDENTITY USING INDEX.*jsonb/);
    // Key-less tables of comparable types still just get FULL.
    assert.deepEqual(
      tables.filter((f) => f.severity === 'warning').map((f) => f.object),
      ['table public.ok_keyless'],
    );
  });

  it('a healthy subscription passes the go/no-go and `migrate status` exits 0', async () => {
    await pair.sql(
      'source',
      `drop table ${['docs', 'places', 'pages', 'tagged', 'geo_rows', 'wrapped', 'full_json', 'ok_keyless', 'ok_keyed', 'ok_index'].map((t) => `public.${t}`).join(', ')}; drop type public.geo; drop domain public.document;`,
    );
    await pair.sql(
      'source',
      STALL +
        "insert into public.stall values (1, '{\"a\": 1}'); insert into public.steady values (1, 'one'); alter table public.stall replica identity full;",
    );
    // The same schema on both sides (replica identity included), so D-day's schema go/no-go passes and the replication one is what refuses.
    await pair.sql('target', `${STALL}alter table public.stall replica identity full;`);
    await replicationStart.apply(context('replication').ctx, replicationStart.params.parse({ pollMs: 50 }));

    const go = await replicationHealthStep.probe(context('go-no-go').ctx, replicationHealthStep.params.parse({ observeSeconds: 10 }));
    assert.equal(go.state, 'done', JSON.stringify(go.findings));
    const status = await cli(['--outputs', outputsFile, '--state-dir', join(pair.dir, 'state'), 'status']);
    assert.equal(status.code, 0, describeResult(status));
    assert.doesNotMatch(status.stdout, /UNHEALTHY/);
  });

  it('after an UPDATE of the json table the apply worker fails: status exits non-zero with the error, the go/no-go refuses', async () => {
    await pair.sql('source', `update public.stall set doc = '{"a": 2}' where id = 1; insert into public.steady values (2, 'two');`);

    const view = (await replicationStatus(context().ctx)) as {
      health: { healthy: boolean; findings: { object: string; message: string }[] };
    };
    assert.equal(view.health.healthy, false);
    assert.ok(
      view.health.findings.some((f) => /apply worker has failed \d+ times/.test(f.message)),
      JSON.stringify(view.health.findings),
    );

    const status = await cli(['--outputs', outputsFile, '--state-dir', join(pair.dir, 'state'), 'status']);
    assert.equal(status.code, 1, describeResult(status));
    assert.match(status.stdout, /UNHEALTHY: +subscription migrate_sub \(target\) its apply worker has failed/);
    assert.match(status.stdout, /could not identify an equality operator for type json/);

    const go = await replicationHealthStep.probe(context('go-no-go').ctx, replicationHealthStep.params.parse({ observeSeconds: 4 }));
    assert.equal(go.state, 'blocked');
    const objects = go.findings!.filter((f) => f.severity === 'error').map((f) => `${f.object}: ${f.message}`);
    assert.ok(
      objects.some((o) => /did not confirm .* catch-up would not finish/.test(o)),
      objects.join('\n'),
    );
  });

  it('d-day refuses at go-no-go-replication, before redirecting webhooks or freezing anything', async () => {
    const stateDir = join(pair.dir, 'dday-state');
    const run = await cli([
      '--outputs',
      outputsFile,
      '--state-dir',
      stateDir,
      '--without',
      'aws,kube,pgbouncer,http,shell',
      'run',
      'runbooks/d-day.yaml',
      '--yes',
    ]);
    assert.notEqual(run.code, 0, describeResult(run));
    assert.match(run.stdout + run.stderr, /go-no-go-replication/);
    const [journal] = journalFiles(stateDir);
    const started = readJournal(journal!).flatMap((e) => (e.type === 'step-started' ? [e.step] : []));
    assert.deepEqual(started, ['go-no-go-forecast', 'go-no-go-schema', 'go-no-go-replication']);
    const frozen = await pair.sql('source', 'select count(*)::int as n from pg_db_role_setting');
    assert.equal(frozen.rows[0].n, 0, 'no role was frozen');
  });
});

describe('a stalled subscription on a PostgreSQL 13 target (no pg_stat_subscription_stats)', () => {
  let pair: Pair;
  const context = () => pair.context();

  before(async () => {
    pair = await startPair({ target: { bindir: embeddedBindir('pg13-bin'), settings: { wal_retrieve_retry_interval: "'1s'" } } });
    await pair.sql('source', `${STALL}insert into public.stall values (1, '{"a": 1}'); alter table public.stall replica identity full;`);
    // The same schema on both sides (replica identity included), so D-day's schema go/no-go passes and the replication one is what refuses.
    await pair.sql('target', `${STALL}alter table public.stall replica identity full;`);
    await replicationStart.apply(context().ctx, replicationStart.params.parse({ pollMs: 50 }));
  });
  after(async () => {
    await pair?.stop();
  });

  it('the go/no-go refuses from the slot never confirming its marker and the worker coming and going', async () => {
    assert.equal(
      (await replicationHealthStep.probe(context().ctx, replicationHealthStep.params.parse({ observeSeconds: 10 }))).state,
      'done',
    );
    await pair.sql('source', `update public.stall set doc = '{"a": 2}' where id = 1`);
    const go = await replicationHealthStep.probe(context().ctx, replicationHealthStep.params.parse({ observeSeconds: 4, pollMs: 50 }));
    assert.equal(go.state, 'blocked');
    const messages = go
      .findings!.filter((f) => f.severity === 'error')
      .map((f) => f.message)
      .join('\n');
    assert.match(messages, /did not confirm .* catch-up would not finish/);
    assert.match(messages, /apply worker keeps exiting|no apply worker is running/);
  });
});
