/**
 * Two real PostgreSQL servers holding the same seeded database, for comparing them: every test
 * database is created fresh on both sides from the same deterministic script, then the test
 * changes the target the way a broken replication would.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import type { StackOutputs } from '../../infra/contract.ts';
import { localOutputs } from '../../migrate/local/outputs.ts';
import type { PostgresServer, PostgresServerOptions } from '../../migrate/local/postgres-server.ts';
import { startServers } from '../support/servers.ts';

export const ROWS = 20_000;

/**
 * The seed: several schemas; enum, domain, generated column, jsonb, numeric, float, interval,
 * timestamptz; a text column stored out of line (TOAST); a composite key, a text key, a table
 * without a key (with duplicate rows) and a partitioned table. `dropped` puts a dropped column in
 * the middle of accounts, as a restored schema often differs from its origin in attnums only.
 */
export function seedSql(options: { dropped: boolean }): string {
  return `
CREATE SCHEMA app;
CREATE SCHEMA billing;
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN app.positive AS integer CHECK (VALUE > 0);
CREATE TABLE app.accounts (
  id bigint PRIMARY KEY,
  email text NOT NULL,
  ${options.dropped ? 'legacy_flag boolean,' : ''}
  profile jsonb,
  balance numeric(12, 2),
  ratio float8,
  created timestamptz,
  mood app.mood,
  visits app.positive,
  session interval,
  doc text,
  doubled numeric GENERATED ALWAYS AS (balance * 2) STORED
);
${options.dropped ? 'ALTER TABLE app.accounts DROP COLUMN legacy_flag;' : ''}
ALTER TABLE app.accounts ALTER COLUMN doc SET STORAGE EXTERNAL;
INSERT INTO app.accounts (id, email, profile, balance, ratio, created, mood, visits, session, doc)
SELECT g, 'user' || g || '@example.test',
       jsonb_build_object('plan', (ARRAY['free', 'pro', 'team'])[1 + g % 3], 'n', g * 1.5, 'tags', jsonb_build_array(g % 7, 'x')),
       (g % 10000) / 100.0, g / 7.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '37 seconds',
       (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::app.mood, 1 + g % 50, g * interval '1 minute',
       CASE WHEN g % 100 = 45 THEN repeat(md5(g::text), 150) ELSE 'short ' || g END
  FROM generate_series(1, ${ROWS}) AS g;

CREATE TABLE billing.lines (invoice int, line int, sku text NOT NULL, qty int NOT NULL, PRIMARY KEY (invoice, line));
INSERT INTO billing.lines SELECT i, l, 'sku-' || (i * l) % 97, l FROM generate_series(1, 2000) i, generate_series(1, 3) l;

CREATE TABLE app.tags (name text PRIMARY KEY, uses int NOT NULL);
INSERT INTO app.tags SELECT 'tag-' || g, g FROM generate_series(1, 3000) g;

CREATE TABLE app.audit_log (at timestamptz, kind text, detail jsonb);
INSERT INTO app.audit_log SELECT timestamptz '2024-02-01 00:00:00+00' + (g % 500) * interval '1 hour', 'kind-' || g % 5, jsonb_build_object('g', g % 500)
  FROM generate_series(1, 4000) g;

CREATE TABLE app.measurements (id int, at date, value float8, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE app.measurements_2023 PARTITION OF app.measurements FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE app.measurements_2024 PARTITION OF app.measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO app.measurements SELECT g, date '2023-06-01' + (g % 400), g * 0.1 FROM generate_series(1, 5000) g;
ANALYZE;
`;
}

export interface Pair {
  source: PostgresServer;
  target: PostgresServer;
  /** Creates a fresh database on both servers from the seed and returns outputs pointing at it. */
  database(name: string): Promise<{ outputs: StackOutputs; source: pg.Client; target: pg.Client }>;
  stop(): Promise<void>;
}

export async function startPair(options: { source?: PostgresServerOptions; target?: PostgresServerOptions } = {}): Promise<Pair> {
  const [source, target] = await startServers([
    { name: 'verify-source', ...options.source },
    { name: 'verify-target', ...options.target },
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'verify-outputs-'));
  const clients: pg.Client[] = [];
  const seed = async (server: PostgresServer, name: string, dropped: boolean) => {
    const admin = await server.client();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const client = await server.client(name);
    clients.push(client);
    await client.query(seedSql({ dropped }));
    return client;
  };
  return {
    source,
    target,
    async database(name) {
      const [s, t] = await Promise.all([seed(source, name, true), seed(target, name, false)]);
      return { outputs: localOutputs({ dir, source, target, database: name }), source: s, target: t };
    },
    async stop() {
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
      await Promise.all([source.stop(), target.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
